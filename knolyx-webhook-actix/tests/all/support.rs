//! A real actix-web server on a loopback port, a scripted handler, and a store that fails.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::http::StatusCode;
use actix_web::{App, HttpResponse, HttpServer, web};
use knolyx_webhook_actix::{KnolyxEvent, KnolyxWebhookMiddleware};
use knolyx_webhook_core::store::IdempotencyStore;
use knolyx_webhook_core::testing::{Fault, FaultyStore, StoreOp, Times};
use knolyx_webhook_core::{MemoryStore, WebhookEvent, WebhookReceiver};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Notify;

pub(crate) const TOKEN: &str = "actix-test-token-5f2c9e";
pub(crate) const ROUTE: &str = "/webhooks/knolyx";

/// The pipeline with the test token and `store`, defaults otherwise.
pub(crate) fn receiver_with(store: impl IdempotencyStore) -> WebhookReceiver {
    WebhookReceiver::builder()
        .token(TOKEN)
        .store(store)
        .build()
        .unwrap()
}

/// What the handler does on one run.
#[derive(Clone, Debug)]
pub(crate) enum Plan {
    /// 200.
    Ok,
    /// A response with this status.
    Status(u16),
    /// An `Err` (a 500 rendered by actix-web from the handler's error).
    Error,
    /// A panic.
    Panic,
    /// Signals `started`, then waits for `release`, then 200.
    Block {
        started: Arc<Notify>,
        release: Arc<Notify>,
    },
}

type PlanFn = Box<dyn Fn(&WebhookEvent, u32) -> Plan + Send + Sync>;

/// The handler's script: what to do on the n-th run (from 1) for an event, and a record of
/// every run.
pub(crate) struct Script {
    plan: PlanFn,
    runs: Mutex<HashMap<String, u32>>,
    events: Mutex<Vec<WebhookEvent>>,
    total: AtomicUsize,
}

impl Script {
    pub(crate) fn new(
        plan: impl Fn(&WebhookEvent, u32) -> Plan + Send + Sync + 'static,
    ) -> Arc<Self> {
        Arc::new(Self {
            plan: Box::new(plan),
            runs: Mutex::default(),
            events: Mutex::default(),
            total: AtomicUsize::new(0),
        })
    }

    /// A handler that always succeeds.
    pub(crate) fn ok() -> Arc<Self> {
        Self::new(|_, _| Plan::Ok)
    }

    /// A handler whose first run (of any id) waits for `release` after notifying `started`,
    /// so it holds its claim; later runs succeed at once (and are counted).
    pub(crate) fn block_first(started: &Arc<Notify>, release: &Arc<Notify>) -> Arc<Self> {
        let (started, release) = (Arc::clone(started), Arc::clone(release));
        Self::new(move |_, run| {
            if run == 1 {
                Plan::Block {
                    started: Arc::clone(&started),
                    release: Arc::clone(&release),
                }
            } else {
                Plan::Ok
            }
        })
    }

    /// How many times the handler ran for `id`.
    pub(crate) fn runs(&self, id: &str) -> u32 {
        self.runs.lock().unwrap().get(id).copied().unwrap_or(0)
    }

    /// How many times the handler ran, all ids together.
    pub(crate) fn total(&self) -> usize {
        self.total.load(Ordering::SeqCst)
    }

    /// Every event the handler received, in order.
    pub(crate) fn events(&self) -> Vec<WebhookEvent> {
        self.events.lock().unwrap().clone()
    }

    /// Records a run of the handler for `event`, and returns what to do on it.
    pub(crate) fn start(&self, event: &WebhookEvent) -> Plan {
        self.total.fetch_add(1, Ordering::SeqCst);
        self.events.lock().unwrap().push(event.clone());
        let run = {
            let mut runs = self.runs.lock().unwrap();
            let run = runs.entry(event.id().to_owned()).or_default();
            *run += 1;
            *run
        };
        (self.plan)(event, run)
    }
}

/// The scripted handler.
pub(crate) async fn on_event(
    KnolyxEvent(event): KnolyxEvent,
    script: web::Data<Script>,
) -> Result<HttpResponse, actix_web::Error> {
    match script.start(&event) {
        Plan::Ok => Ok(HttpResponse::Ok().body("handled")),
        Plan::Status(status) => {
            Ok(HttpResponse::build(StatusCode::from_u16(status).unwrap()).body("scripted status"))
        }
        Plan::Error => Err(actix_web::error::ErrorInternalServerError(
            "scripted handler error",
        )),
        Plan::Panic => panic!("scripted panic in the handler"),
        Plan::Block { started, release } => {
            started.notify_one();
            release.notified().await;
            Ok(HttpResponse::Ok().body("handled"))
        }
    }
}

/// How the app is put together.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Setup {
    /// The documented way: `app_data(receiver)` and `wrap(KnolyxWebhookMiddleware)`.
    Complete,
    /// The receiver registered as `web::Data<WebhookReceiver>`.
    DataReceiver,
    /// No receiver in the app data.
    NoReceiver,
    /// No middleware.
    NoMiddleware,
}

/// A real server on 127.0.0.1.
pub(crate) struct TestServer {
    addr: SocketAddr,
    handle: ServerHandle,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    pub(crate) client: reqwest::Client,
}

impl TestServer {
    pub(crate) fn start(receiver: WebhookReceiver, script: &Arc<Script>) -> Self {
        Self::start_with(receiver, script, Setup::Complete, 2)
    }

    pub(crate) fn start_with(
        receiver: WebhookReceiver,
        script: &Arc<Script>,
        setup: Setup,
        workers: usize,
    ) -> Self {
        let data_receiver = web::Data::new(receiver.clone());
        Self::serve(script, workers, move |cfg| {
            match setup {
                Setup::Complete | Setup::NoMiddleware => cfg.app_data(receiver.clone()),
                Setup::DataReceiver => cfg.app_data(data_receiver.clone()),
                Setup::NoReceiver => cfg,
            };
            // Every method reaches the extractor, so the pipeline answers 405 itself.
            let resource = web::resource(ROUTE).route(web::route().to(on_event));
            match setup {
                Setup::NoMiddleware => cfg.service(resource),
                _ => cfg.service(resource.wrap(KnolyxWebhookMiddleware)),
            };
        })
    }

    /// A server whose `App` has the script as app data and what `configure` registers
    /// (app data, the webhook's resource at [`ROUTE`]).
    pub(crate) fn serve(
        script: &Arc<Script>,
        workers: usize,
        configure: impl Fn(&mut web::ServiceConfig) + Send + Clone + 'static,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let script = web::Data::from(Arc::clone(script));
        let server = HttpServer::new(move || {
            App::new()
                .app_data(script.clone())
                .configure(configure.clone())
        })
        .workers(workers)
        .disable_signals()
        .shutdown_timeout(5)
        .listen(listener)
        .unwrap()
        .run();
        let handle = server.handle();
        let task = tokio::spawn(server);
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        Self {
            addr,
            handle,
            task,
            client,
        }
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}{ROUTE}", self.addr)
    }

    /// A PUT with the right token.
    pub(crate) async fn deliver(&self, body: impl Into<reqwest::Body>) -> Response {
        self.send(reqwest::Method::PUT, &[TOKEN], body).await
    }

    /// Any method, these token headers (in order), this body.
    pub(crate) async fn send(
        &self,
        method: reqwest::Method,
        tokens: &[&str],
        body: impl Into<reqwest::Body>,
    ) -> Response {
        self.try_send(method, tokens, body)
            .await
            .expect("the server answered")
    }

    /// Like [`send`](Self::send), but a closed connection is an `Err`.
    pub(crate) async fn try_send(
        &self,
        method: reqwest::Method,
        tokens: &[&str],
        body: impl Into<reqwest::Body>,
    ) -> Result<Response, reqwest::Error> {
        let mut request = self
            .client
            .request(method, self.url())
            .header("content-type", "application/json");
        for token in tokens {
            request = request.header("x-webhook-security-token", *token);
        }
        let response = request.body(body).send().await?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.text().await?;
        Ok(Response {
            status,
            headers,
            body,
        })
    }

    /// A chunked PUT (no `Content-Length`) written by hand on a raw connection; the status.
    pub(crate) async fn deliver_chunked(&self, body: &[u8], chunk: usize) -> u16 {
        let mut request = format!(
            "PUT {ROUTE} HTTP/1.1\r\nHost: {}\r\nX-Webhook-Security-Token: {TOKEN}\r\n\
             Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\
             Connection: close\r\n\r\n",
            self.addr
        )
        .into_bytes();
        for piece in body.chunks(chunk) {
            request.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
            request.extend_from_slice(piece);
            request.extend_from_slice(b"\r\n");
        }
        request.extend_from_slice(b"0\r\n\r\n");
        let mut stream = tokio::net::TcpStream::connect(self.addr).await.unwrap();
        // The server may answer (and close) before it has read everything.
        let _ = stream.write_all(&request).await;
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "connection closed before a response head");
            head.extend_from_slice(&buf[..n]);
        }
        let head = String::from_utf8_lossy(&head);
        head.split(' ').nth(1).unwrap().parse().unwrap()
    }

    /// Stops the server gracefully and waits for it.
    pub(crate) async fn stop(self) {
        self.handle.stop(true).await;
        self.task.await.unwrap().unwrap();
    }
}

/// What came back.
#[derive(Debug)]
pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) headers: reqwest::header::HeaderMap,
    pub(crate) body: String,
}

impl Response {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    pub(crate) fn is_duplicate(&self) -> bool {
        self.header("x-knolyx-webhook-duplicate") == Some("true")
    }
}

/// A store whose backend is down: every operation fails as unavailable.
pub(crate) fn failing_store() -> FaultyStore<MemoryStore> {
    let store = FaultyStore::new(MemoryStore::new());
    for op in [StoreOp::Claim, StoreOp::Complete, StoreOp::Release] {
        store.inject(op, Fault::Unavailable, Times::UntilReset);
    }
    store
}
