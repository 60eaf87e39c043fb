//! The axum receiver: the webhook route under [`KnolyxWebhookLayer`], a `/health` route
//! beside it, and a way to start it in-process ([`spawn`]) for the demo and the tests.
//!
//! This is the code to copy into an existing axum app: one `route_layer` on the webhook's
//! route, and a handler extracting [`KnolyxEvent`].

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{any, get};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use knolyx_webhook_core::WebhookReceiver;
use knolyx_webhook_tower::{KnolyxEvent, KnolyxWebhookLayer};
use tokio::sync::oneshot;

use crate::config::ROUTE;
use crate::handler::EventHandler;
use crate::running::RunningReceiver;

/// The receiver's app: [`ROUTE`] runs `handler` for every event the pipeline lets through
/// (200 when it succeeds, 500 when it fails, so Knolyx retries), and `/health` answers 200.
///
/// The webhook route takes every method (`any`) under `route_layer`, so the pipeline answers
/// the methods it refuses (405 with `Allow: PUT, POST`) and axum never sees them.
pub fn app(receiver: WebhookReceiver, handler: EventHandler) -> Router {
    Router::new()
        .route(ROUTE, any(on_event))
        .route_layer(KnolyxWebhookLayer::new(receiver))
        .with_state(handler)
        // Added after `route_layer`: not under the layer.
        .route("/health", get(|| async { "ok" }))
}

async fn on_event(
    State(handler): State<EventHandler>,
    KnolyxEvent(event): KnolyxEvent,
) -> (StatusCode, &'static str) {
    let id = event.id().to_owned();
    match handler(event).await {
        Ok(()) => (StatusCode::OK, "ok"),
        Err(error) => {
            // The claim is released: Knolyx's retry runs the handler again.
            tracing::error!(id, %error, "handler failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "handler failed")
        }
    }
}

/// The default of `KNOLYX_HEADER_READ_TIMEOUT_MS`: how long a connection may take to send
/// a request head, and stay idle between requests.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Binds `addr` (port 0 picks a free port) and serves [`app`] in the background until the
/// returned receiver is stopped, with the [default](DEFAULT_HEADER_READ_TIMEOUT)
/// header-read timeout.
pub async fn spawn(
    receiver: WebhookReceiver,
    handler: EventHandler,
    addr: SocketAddr,
) -> std::io::Result<RunningReceiver> {
    spawn_with(receiver, handler, addr, DEFAULT_HEADER_READ_TIMEOUT).await
}

/// [`spawn`] with this header-read timeout.
///
/// `axum::serve` sets no timeout: a client that sends half a request head, or opens a
/// connection and sends nothing, holds it (and a file descriptor) forever. So the server
/// here is hyper's HTTP/1 connection with a timer: a connection that has not sent a whole
/// request head within `header_read_timeout` of opening, or of its previous response (an
/// idle keep-alive connection), is closed. The body's own read is bounded by the
/// pipeline's body limit and the client's patience, as with any hyper server. Graceful
/// shutdown: stop accepting, let each connection finish its request, close idle ones.
pub async fn spawn_with(
    receiver: WebhookReceiver,
    handler: EventHandler,
    addr: SocketAddr,
    header_read_timeout: Duration,
) -> std::io::Result<RunningReceiver> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = oneshot::channel::<()>();
    let app = app(receiver.clone(), handler);
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout);
    let server = tokio::spawn(serve(listener, app, http, stopped));
    let abort = server.abort_handle();
    Ok(RunningReceiver::new(
        addr,
        "axum",
        receiver,
        move || async move {
            let _ = stop.send(());
            let _ = server.await;
        },
        // Stops waiting for open connections; what still runs in them ends with the
        // process.
        move || abort.abort(),
    ))
}

/// Accepts until `stopped`, then waits for the open connections to finish gracefully.
async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    http: http1::Builder,
    stopped: oneshot::Receiver<()>,
) {
    let graceful = GracefulShutdown::new();
    tokio::pin!(stopped);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    // Out of file descriptors, say: wait a little rather than spin.
                    tracing::error!(%error, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = &mut stopped => break,
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(app.clone());
        let connection = http.serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            // A closed or timed-out connection is the client's business, not an error of
            // the server's: logged at DEBUG.
            if let Err(error) = connection.await {
                tracing::debug!(%error, "connection closed");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}
