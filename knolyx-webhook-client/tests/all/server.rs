//! A fake Knolyx Webhook API on 127.0.0.1 that records what it receives.
//!
//! By default it plays the documented API (paths, methods, the two headers, statuses) over
//! an in-memory table. Replies queued with [`FakeKnolyx::reply`] are returned first, in
//! order, to exercise the response shapes the client must tolerate.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use knolyx_webhook_client::KnolyxClient;
use serde_json::{Map, Value, json};

pub(crate) const API_KEY: &str = "test-api-key-0123456789";
pub(crate) const PROJECT_ID: &str = "77";
const BASE: &str = "/public/api/v1/webhook";

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub(crate) struct Recorded {
    pub(crate) method: Method,
    pub(crate) path: String,
    pub(crate) api_key: Option<String>,
    pub(crate) project_id: Option<String>,
    pub(crate) content_type: Option<String>,
    pub(crate) body: Bytes,
}

impl Recorded {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("request body is JSON")
    }
}

#[derive(Default)]
struct Inner {
    requests: Mutex<Vec<Recorded>>,
    scripted: Mutex<VecDeque<(StatusCode, Vec<u8>)>>,
    webhooks: Mutex<BTreeMap<i64, Map<String, Value>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) struct FakeKnolyx {
    pub(crate) addr: SocketAddr,
    inner: Arc<Inner>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeKnolyx {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeKnolyx {
    pub(crate) async fn start() -> Self {
        let inner = Arc::new(Inner::default());
        let app = Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&inner));
        // Bound before the task starts: connections queue until it accepts them.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, inner, task }
    }

    pub(crate) fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub(crate) fn client(&self) -> KnolyxClient {
        client_for(&self.base_url(), API_KEY)
    }

    /// Queues a reply returned to the next request, whatever it is.
    pub(crate) fn reply(&self, status: u16, body: impl Into<Vec<u8>>) {
        let status = StatusCode::from_u16(status).expect("status");
        lock(&self.inner.scripted).push_back((status, body.into()));
    }

    pub(crate) fn requests(&self) -> Vec<Recorded> {
        lock(&self.inner.requests).clone()
    }

    pub(crate) fn last_request(&self) -> Recorded {
        self.requests().pop().expect("a request was made")
    }
}

/// A client for `base_url` that ignores proxy settings of the environment.
pub(crate) fn client_for(base_url: &str, api_key: &str) -> KnolyxClient {
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("reqwest client");
    KnolyxClient::builder(base_url, api_key, PROJECT_ID)
        .http_client(http)
        .build()
        .expect("client")
}

fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .map(|v| v.to_str().expect("ASCII header").to_owned())
}

fn json_reply(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn message(status: StatusCode, text: &str) -> Response {
    json_reply(
        status,
        json!({ "status": status.as_u16(), "message": text }),
    )
}

async fn handle(
    State(inner): State<Arc<Inner>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let recorded = Recorded {
        method: method.clone(),
        path: uri.path().to_owned(),
        api_key: header_text(&headers, "x-api-key"),
        project_id: header_text(&headers, "x-project-id"),
        content_type: header_text(&headers, "content-type"),
        body: body.clone(),
    };
    lock(&inner.requests).push(recorded.clone());

    if let Some((status, body)) = lock(&inner.scripted).pop_front() {
        return (status, body).into_response();
    }

    if recorded.api_key.as_deref() != Some(API_KEY)
        || recorded.project_id.as_deref() != Some(PROJECT_ID)
    {
        return message(StatusCode::UNAUTHORIZED, "Invalid api key or project");
    }

    let Some(rest) = uri.path().strip_prefix(BASE) else {
        return message(StatusCode::NOT_FOUND, "Not found");
    };
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let mut webhooks = lock(&inner.webhooks);
    let find = |id: &str| {
        id.parse::<i64>()
            .ok()
            .filter(|id| webhooks.contains_key(id))
    };

    match (method, segments.as_slice()) {
        (Method::POST, []) => {
            if recorded.content_type.as_deref() != Some("application/json") {
                return message(StatusCode::UNSUPPORTED_MEDIA_TYPE, "Expected JSON");
            }
            let Ok(Value::Object(request)) = serde_json::from_slice::<Value>(&body) else {
                return message(StatusCode::BAD_REQUEST, "Malformed JSON");
            };
            let mut keys: Vec<&str> = request.keys().map(String::as_str).collect();
            keys.sort_unstable();
            if keys != ["name", "securityToken", "url"] || !request.values().all(Value::is_string) {
                return message(StatusCode::BAD_REQUEST, "Invalid webhook");
            }
            if !request["url"]
                .as_str()
                .is_some_and(|u| u.starts_with("https://"))
            {
                return message(
                    StatusCode::BAD_REQUEST,
                    "A valid webhook url can't be on http",
                );
            }
            let id = webhooks.keys().next_back().map_or(1, |last| last + 1);
            let mut stored = Map::new();
            stored.insert("id".into(), json!(id));
            stored.insert("name".into(), request["name"].clone());
            stored.insert("url".into(), request["url"].clone());
            stored.insert("createdAt".into(), json!("2024-05-01T10:00:00Z"));
            webhooks.insert(id, stored.clone());
            json_reply(StatusCode::CREATED, Value::Object(stored))
        }
        (Method::GET, []) => {
            let all: Vec<Value> = webhooks.values().cloned().map(Value::Object).collect();
            json_reply(StatusCode::OK, Value::Array(all))
        }
        (Method::POST, ["ping"]) => StatusCode::OK.into_response(),
        (Method::GET, [id]) => match find(id) {
            Some(id) => json_reply(StatusCode::OK, Value::Object(webhooks[&id].clone())),
            None => message(StatusCode::NOT_FOUND, "Webhook not found"),
        },
        (Method::DELETE, [id]) => match find(id) {
            Some(id) => {
                webhooks.remove(&id);
                StatusCode::NO_CONTENT.into_response()
            }
            None => message(StatusCode::NOT_FOUND, "Webhook not found"),
        },
        (Method::POST, [id, "ping"]) => match find(id) {
            Some(_) => StatusCode::OK.into_response(),
            None => message(StatusCode::NOT_FOUND, "Webhook not found"),
        },
        _ => message(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed"),
    }
}
