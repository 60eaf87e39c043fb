//! The HTTP side: the Webhook API as the vendor guide documents it, and the sandbox-only
//! trigger endpoint.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State as Extract};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use knolyx_webhook_client::validate_webhook_url;
use knolyx_webhook_core::SecretToken;
use knolyx_webhook_core::testing::TestEvent;
use knolyx_webhook_core::token::TokenVerifier;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::task::JoinSet;

use super::sender::{self, Message, Policy};
use super::state::{State, StoredWebhook};
use super::{
    Attempt, AttemptLog, MAX_RETRY_STEPS, MAX_WAIT, TRIGGER_PATH, TriggerLine, TriggerSummary,
};

/// Everything a request handler needs.
#[derive(Clone)]
pub(crate) struct Shared {
    pub(crate) state: State,
    pub(crate) api_key: Option<Arc<TokenVerifier>>,
    pub(crate) strict: bool,
    pub(crate) http: reqwest::Client,
    pub(crate) ping_timeout: Duration,
    pub(crate) log: AttemptLog,
}

impl Shared {
    /// Prints an attempt on stdout, as `log` says.
    fn print(&self, attempt: &Attempt) {
        match self.log {
            AttemptLog::Quiet => {}
            AttemptLog::Text => println!("{}", attempt.line()),
            AttemptLog::Json => match serde_json::to_string(attempt) {
                Ok(line) => println!("{line}"),
                Err(e) => eprintln!("sandbox: cannot print an attempt: {e}"),
            },
        }
    }
}

/// The routes.
pub(crate) fn router(shared: Shared) -> Router {
    Router::new()
        .route("/public/api/v1/webhook", post(create).get(list))
        .route("/public/api/v1/webhook/ping", post(ping_all))
        .route("/public/api/v1/webhook/{id}", get(get_one).delete(delete))
        .route("/public/api/v1/webhook/{id}/ping", post(ping_one))
        .route(TRIGGER_PATH, post(trigger))
        .fallback(|| async { reject(StatusCode::NOT_FOUND, "no such endpoint") })
        .method_not_allowed_fallback(|| async {
            reject(StatusCode::METHOD_NOT_ALLOWED, "method not allowed here")
        })
        .with_state(shared)
}

/// A refusal: the status and `{"error": message}`.
#[derive(Debug)]
struct Refusal {
    status: StatusCode,
    message: String,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        (self.status, axum::Json(json!({ "error": self.message }))).into_response()
    }
}

fn reject(status: StatusCode, message: impl Into<String>) -> Refusal {
    Refusal {
        status,
        message: message.into(),
    }
}

/// What a handler answers: its response, or a refusal.
type Answer = Result<Response, Refusal>;

/// The project a request is for, once its `X-Api-Key` and `X-Project-Id` are checked:
/// a missing or empty header is 400, a key other than `--api-key`'s is 401.
fn project(shared: &Shared, headers: &HeaderMap) -> Result<String, Refusal> {
    let header = |name: &str| -> Result<String, Refusal> {
        match headers.get(name).map(|v| v.to_str()) {
            Some(Ok(value)) if !value.trim().is_empty() => Ok(value.trim().to_owned()),
            Some(Err(_)) => Err(reject(
                StatusCode::BAD_REQUEST,
                format!("the {name} header is not visible ASCII"),
            )),
            _ => Err(reject(
                StatusCode::BAD_REQUEST,
                format!("the {name} header is required"),
            )),
        }
    };
    let key = header("X-Api-Key")?;
    if let Some(verifier) = &shared.api_key
        && !verifier.verify(key.as_bytes())
    {
        return Err(reject(StatusCode::UNAUTHORIZED, "invalid API key"));
    }
    header("X-Project-Id")
}

/// A webhook id from the path; anything but a number names no webhook.
fn webhook(shared: &Shared, project: &str, id: &str) -> Result<StoredWebhook, Refusal> {
    id.parse::<u64>()
        .ok()
        .and_then(|n| shared.state.get(project, n))
        .ok_or_else(|| no_webhook(project, id))
}

fn no_webhook(project: &str, id: &str) -> Refusal {
    reject(
        StatusCode::NOT_FOUND,
        format!("no webhook {id} in project {project}"),
    )
}

/// A saved change that could not be written.
fn unsaved(error: &super::SandboxError) -> Refusal {
    eprintln!("sandbox: {error}");
    reject(
        StatusCode::INTERNAL_SERVER_ERROR,
        "the sandbox could not save its state",
    )
}

fn required_string<'a>(body: &'a Value, field: &str) -> Result<&'a str, Refusal> {
    match body.get(field) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s),
        Some(Value::String(_)) => Err(reject(
            StatusCode::BAD_REQUEST,
            format!("`{field}` is empty"),
        )),
        Some(_) => Err(reject(
            StatusCode::BAD_REQUEST,
            format!("`{field}` must be a string"),
        )),
        None => Err(reject(
            StatusCode::BAD_REQUEST,
            format!("`{field}` is required"),
        )),
    }
}

/// Checks a webhook URL: the platform's rules with `--strict`, else any http(s) URL with a
/// host (`http://localhost…` is the point).
fn check_url(strict: bool, url: &str) -> Result<(), Refusal> {
    if strict {
        return validate_webhook_url(url)
            .map(drop)
            .map_err(|e| reject(StatusCode::UNPROCESSABLE_ENTITY, format!("`url`: {e}")));
    }
    match url::Url::parse(url) {
        Ok(parsed) if matches!(parsed.scheme(), "http" | "https") && parsed.host().is_some() => {
            Ok(())
        }
        Ok(_) => Err(reject(
            StatusCode::UNPROCESSABLE_ENTITY,
            "`url` must be an http or https URL with a host",
        )),
        Err(e) => Err(reject(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("`url` is not a URL: {e}"),
        )),
    }
}

/// `POST /public/api/v1/webhook` with `{"name", "url", "securityToken"}`: registers the
/// webhook, then sends it a PING (as Knolyx does) before answering.
async fn create(Extract(shared): Extract<Shared>, headers: HeaderMap, body: Bytes) -> Answer {
    let project = project(&shared, &headers)?;
    let body: Value = match serde_json::from_slice(&body) {
        Ok(value @ Value::Object(_)) => value,
        _ => {
            return Err(reject(
                StatusCode::BAD_REQUEST,
                "the body must be a JSON object {\"name\", \"url\", \"securityToken\"}",
            ));
        }
    };
    let name = required_string(&body, "name")?;
    let url = required_string(&body, "url")?;
    let token = required_string(&body, "securityToken")?;
    check_url(shared.strict, url)?;
    SecretToken::new(token).map_err(|e| {
        reject(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("`securityToken`: {e}"),
        )
    })?;
    let webhook = shared
        .state
        .create(&project, name.to_owned(), url.to_owned(), token.to_owned())
        .map_err(|e| unsaved(&e))?;
    ping(&shared, &project, vec![webhook.clone()]).await;
    Ok((StatusCode::CREATED, axum::Json(webhook.to_json())).into_response())
}

/// `GET /public/api/v1/webhook`: the project's webhooks, as a JSON array.
async fn list(Extract(shared): Extract<Shared>, headers: HeaderMap) -> Answer {
    let project = project(&shared, &headers)?;
    let webhooks: Vec<Value> = shared
        .state
        .list(&project)
        .iter()
        .map(StoredWebhook::to_json)
        .collect();
    Ok(axum::Json(Value::Array(webhooks)).into_response())
}

/// `GET /public/api/v1/webhook/{id}`.
async fn get_one(
    Extract(shared): Extract<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Answer {
    let project = project(&shared, &headers)?;
    let webhook = webhook(&shared, &project, &id)?;
    Ok(axum::Json(webhook.to_json()).into_response())
}

/// `DELETE /public/api/v1/webhook/{id}`: 204.
async fn delete(
    Extract(shared): Extract<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Answer {
    let project = project(&shared, &headers)?;
    let webhook = webhook(&shared, &project, &id)?;
    if shared
        .state
        .delete(&project, webhook.id)
        .map_err(|e| unsaved(&e))?
    {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        // Deleted by a concurrent call between the lookup and now.
        Err(no_webhook(&project, &id))
    }
}

/// `POST /public/api/v1/webhook/ping`: a PING to every webhook of the project.
async fn ping_all(Extract(shared): Extract<Shared>, headers: HeaderMap) -> Answer {
    let project = project(&shared, &headers)?;
    let webhooks = shared.state.list(&project);
    Ok(pinged(ping(&shared, &project, webhooks).await))
}

/// `POST /public/api/v1/webhook/{id}/ping`: a PING to one webhook.
async fn ping_one(
    Extract(shared): Extract<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Answer {
    let project = project(&shared, &headers)?;
    let webhook = webhook(&shared, &project, &id)?;
    Ok(pinged(ping(&shared, &project, vec![webhook]).await))
}

/// The answer of the ping endpoints: 200 with what each PING got.
fn pinged(attempts: Vec<Attempt>) -> Response {
    axum::Json(json!({ "pinged": attempts })).into_response()
}

/// Sends a PING (a new message id each) to each of `webhooks`, once, and waits for the
/// answers.
async fn ping(shared: &Shared, project: &str, webhooks: Vec<StoredWebhook>) -> Vec<Attempt> {
    let policy = Policy {
        schedule: Vec::new(),
        duplicate_rate: 0.0,
        attempt_timeout: shared.ping_timeout,
    };
    let collected = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut pings = JoinSet::new();
    for webhook in webhooks {
        let event = TestEvent::ping();
        let message = Message {
            id: event.message_id().to_owned(),
            event_type: "PING".to_owned(),
            body: event.to_body(),
        };
        let collected = Arc::clone(&collected);
        spawn_delivery(
            &mut pings,
            shared,
            project,
            webhook,
            message,
            &policy,
            move |attempt| {
                collected
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(attempt);
            },
        );
    }
    while pings.join_next().await.is_some() {}
    let mut attempts = std::mem::take(&mut *collected.lock().unwrap_or_else(|p| p.into_inner()));
    attempts.sort_by_key(|a| a.webhook_id);
    attempts
}

/// Delivers `message` to `webhook` in a task of `set`, printing every attempt (as the
/// sandbox's `log` says) and handing it to `report`; the task ends with whether the
/// webhook answered 2xx.
fn spawn_delivery(
    set: &mut JoinSet<bool>,
    shared: &Shared,
    project: &str,
    webhook: StoredWebhook,
    message: Message,
    policy: &Policy,
    report: impl Fn(Attempt) + Send + Sync + 'static,
) {
    let (shared, project, policy) = (shared.clone(), project.to_owned(), policy.clone());
    set.spawn(async move {
        let printer = shared.clone();
        let report = move |attempt: Attempt| {
            printer.print(&attempt);
            report(attempt);
        };
        sender::deliver(
            &shared.http,
            &shared.state,
            &project,
            webhook,
            &message,
            &policy,
            &report,
        )
        .await
    });
}

/// The body of `POST /sandbox/v1/trigger`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct TriggerRequest {
    /// The event's JSON envelope, `{"id", "type", "data"}`, delivered as given.
    event: Value,
    /// Milliseconds to wait before each retransmission; absent: the default schedule.
    retry_schedule_ms: Option<Vec<u64>>,
    #[serde(default)]
    duplicate_rate: f64,
    attempt_timeout_ms: Option<u64>,
}

/// `POST /sandbox/v1/trigger`: delivers the event to every webhook of the project, with
/// retransmissions, and streams every attempt back as one JSON line
/// ([`TriggerLine::Attempt`]), then the [`TriggerLine::Summary`], once every delivery is
/// settled.
async fn trigger(Extract(shared): Extract<Shared>, headers: HeaderMap, body: Bytes) -> Answer {
    let project = project(&shared, &headers)?;
    let request: TriggerRequest = serde_json::from_slice(&body)
        .map_err(|e| reject(StatusCode::BAD_REQUEST, format!("bad trigger request: {e}")))?;
    let (message, policy) = trigger_plan(request)?;
    let webhooks = shared.state.list(&project);
    let (lines, mut stream) = tokio::sync::mpsc::unbounded_channel::<Bytes>();
    tokio::spawn(async move {
        let send = move |line: &TriggerLine| {
            if let Ok(mut text) = serde_json::to_vec(line) {
                text.push(b'\n');
                // The caller may have gone: the deliveries go on all the same.
                let _ = lines.send(Bytes::from(text));
            }
        };
        let mut summary = TriggerSummary {
            message_id: message.id.clone(),
            event_type: message.event_type.clone(),
            webhooks: webhooks.len(),
            delivered: 0,
            failed: 0,
            attempts: 0,
        };
        let attempts = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut deliveries = JoinSet::new();
        for webhook in webhooks {
            let (send, attempts) = (send.clone(), Arc::clone(&attempts));
            spawn_delivery(
                &mut deliveries,
                &shared,
                &project,
                webhook,
                message.clone(),
                &policy,
                move |attempt| {
                    attempts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    send(&TriggerLine::Attempt(attempt));
                },
            );
        }
        while let Some(done) = deliveries.join_next().await {
            if done.unwrap_or(false) {
                summary.delivered += 1;
            } else {
                summary.failed += 1;
            }
        }
        summary.attempts = attempts.load(std::sync::atomic::Ordering::Relaxed);
        send(&TriggerLine::Summary(summary));
    });
    let body = Body::from_stream(futures_util::stream::poll_fn(move |cx| {
        stream
            .poll_recv(cx)
            .map(|line| line.map(Ok::<_, Infallible>))
    }));
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        body,
    )
        .into_response())
}

/// The message and the retransmission policy of a trigger request, checked.
fn trigger_plan(request: TriggerRequest) -> Result<(Message, Policy), Refusal> {
    let envelope = match &request.event {
        Value::Object(map) => map,
        _ => {
            return Err(reject(
                StatusCode::BAD_REQUEST,
                "`event` must be a JSON object {\"id\", \"type\", \"data\"}",
            ));
        }
    };
    let text = |field: &str| match envelope.get(field) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        _ => Err(reject(
            StatusCode::BAD_REQUEST,
            format!("`event.{field}` must be a non-empty string"),
        )),
    };
    let (id, event_type) = (text("id")?, text("type")?);
    if !(0.0..=1.0).contains(&request.duplicate_rate) {
        return Err(reject(
            StatusCode::UNPROCESSABLE_ENTITY,
            "`duplicateRate` must be from 0.0 to 1.0",
        ));
    }
    let schedule = match request.retry_schedule_ms {
        Some(steps) => steps.into_iter().map(Duration::from_millis).collect(),
        None => super::DEFAULT_RETRY_SCHEDULE.to_vec(),
    };
    if schedule.len() > MAX_RETRY_STEPS || schedule.iter().any(|w| *w > MAX_WAIT) {
        return Err(reject(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "`retryScheduleMs`: at most {MAX_RETRY_STEPS} steps of at most {} ms each",
                MAX_WAIT.as_millis()
            ),
        ));
    }
    let attempt_timeout = match request.attempt_timeout_ms {
        None => super::DEFAULT_ATTEMPT_TIMEOUT,
        Some(ms) if (1..=MAX_WAIT.as_millis() as u64).contains(&ms) => Duration::from_millis(ms),
        Some(_) => {
            return Err(reject(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!(
                    "`attemptTimeoutMs` must be from 1 to {}",
                    MAX_WAIT.as_millis()
                ),
            ));
        }
    };
    let body = serde_json::to_vec(&request.event)
        .map_err(|e| reject(StatusCode::BAD_REQUEST, format!("bad event: {e}")))?;
    Ok((
        Message {
            id,
            event_type,
            body: Bytes::from(body),
        },
        Policy {
            schedule,
            duplicate_rate: request.duplicate_rate,
            attempt_timeout,
        },
    ))
}
