//! Servers, handlers, stores and requests shared by the tests.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::any;
use bytes::Bytes;
use knolyx_webhook_core::WebhookEvent;
use knolyx_webhook_core::store::{ClaimOutcome, IdempotencyStore, MemoryStore, OwnerToken};
use knolyx_webhook_core::testing::{Fault, FaultyStore, StoreOp, Times};
use knolyx_webhook_core::{WebhookReceiver, WebhookReceiverBuilder};
use knolyx_webhook_tower::{KnolyxEvent, KnolyxWebhookLayer};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub(crate) const TOKEN: &str = "integration-test-token";
pub(crate) const ROUTE: &str = "/webhooks/knolyx";
/// How long any wait may take before the test fails (a bound, never a synchronisation).
pub(crate) const WAIT: Duration = Duration::from_secs(10);

/// Awaits `future`, failing the test if it takes longer than [`WAIT`].
pub(crate) async fn bounded<F: Future>(what: &str, future: F) -> F::Output {
    match tokio::time::timeout(WAIT, future).await {
        Ok(output) => output,
        Err(_) => panic!("timed out waiting for {what}"),
    }
}

/// A server on 127.0.0.1 with a free port, stopped when dropped.
pub(crate) struct Server {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    _task: JoinHandle<()>,
}

impl Server {
    pub(crate) async fn start(app: Router) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
        Self {
            addr,
            stop: Some(stop),
            _task: task,
        }
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The webhook route's URL.
    pub(crate) fn hook(&self) -> String {
        self.url(ROUTE)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

type Behaviour = Arc<
    dyn Fn(WebhookEvent, usize) -> Pin<Box<dyn Future<Output = StatusCode> + Send>> + Send + Sync,
>;

/// The application's handler in the tests: counts its runs and answers what `behaviour`
/// says for the n-th run (1-based).
#[derive(Clone)]
pub(crate) struct Handler {
    runs: Arc<AtomicUsize>,
    behaviour: Behaviour,
}

impl Handler {
    pub(crate) fn new<F, Fut>(behaviour: F) -> Self
    where
        F: Fn(WebhookEvent, usize) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = StatusCode> + Send + 'static,
    {
        Self {
            runs: Arc::new(AtomicUsize::new(0)),
            behaviour: Arc::new(move |event, n| Box::pin(behaviour(event, n))),
        }
    }

    /// Always 200.
    pub(crate) fn ok() -> Self {
        Self::new(|_, _| async { StatusCode::OK })
    }

    pub(crate) fn runs(&self) -> usize {
        self.runs.load(Ordering::SeqCst)
    }

    pub(crate) async fn run(&self, event: WebhookEvent) -> StatusCode {
        let n = self.runs.fetch_add(1, Ordering::SeqCst) + 1;
        (self.behaviour)(event, n).await
    }
}

async fn on_event(State(handler): State<Handler>, KnolyxEvent(event): KnolyxEvent) -> StatusCode {
    handler.run(event).await
}

/// The app of the examples: the webhook route under the layer, every method routed to the
/// handler so that the pipeline answers the others.
pub(crate) fn webhook_app(receiver: WebhookReceiver, handler: Handler) -> Router {
    Router::new()
        .route(ROUTE, any(on_event))
        .route_layer(KnolyxWebhookLayer::new(receiver))
        .with_state(handler)
}

pub(crate) fn builder() -> WebhookReceiverBuilder {
    WebhookReceiver::builder().token(TOKEN)
}

pub(crate) fn receiver() -> WebhookReceiver {
    builder().build().unwrap()
}

/// Starts the webhook app with a default receiver.
pub(crate) async fn start(handler: Handler) -> Server {
    Server::start(webhook_app(receiver(), handler)).await
}

pub(crate) fn client() -> reqwest::Client {
    reqwest::Client::new()
}

/// A delivery as Knolyx sends it: PUT with the token.
pub(crate) async fn deliver(url: &str, body: impl Into<reqwest::Body>) -> reqwest::Response {
    client()
        .put(url)
        .header("x-webhook-security-token", TOKEN)
        .body(body)
        .send()
        .await
        .unwrap()
}

pub(crate) async fn text(response: reqwest::Response) -> String {
    response.text().await.unwrap()
}

pub(crate) fn header(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
}

/// Whether `store` holds `id` as completed (a fresh claim finds it so).
pub(crate) async fn is_completed(store: &Arc<dyn IdempotencyStore>, id: &str) -> bool {
    let claim = store.claim(id, OwnerToken::generate(), Duration::from_secs(1));
    claim.await.unwrap() == ClaimOutcome::Completed
}

/// A store whose backend is down: every operation fails as unavailable.
pub(crate) fn failing_store() -> FaultyStore<MemoryStore> {
    let store = FaultyStore::new(MemoryStore::new());
    for op in [StoreOp::Claim, StoreOp::Complete, StoreOp::Release] {
        store.inject(op, Fault::Unavailable, Times::UntilReset);
    }
    store
}

/// A JSON body of exactly `len` bytes: a valid event padded with spaces.
pub(crate) fn padded(body: &Bytes, len: usize) -> Bytes {
    assert!(body.len() <= len);
    let mut padded = body.to_vec();
    padded.resize(len, b' ');
    Bytes::from(padded)
}
