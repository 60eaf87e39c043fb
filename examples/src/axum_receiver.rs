//! The axum receiver: the webhook route under [`KnolyxWebhookLayer`], a `/health` route
//! beside it, and a way to start it in-process ([`spawn`]) for the demo and the tests.
//!
//! This is the code to copy into an existing axum app: one `route_layer` on the webhook's
//! route, and a handler extracting [`KnolyxEvent`].

use std::net::SocketAddr;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{any, get};
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

/// Binds `addr` (port 0 picks a free port) and serves [`app`] in the background until the
/// returned receiver is stopped.
pub async fn spawn(
    receiver: WebhookReceiver,
    handler: EventHandler,
    addr: SocketAddr,
) -> std::io::Result<RunningReceiver> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = oneshot::channel::<()>();
    let app = app(receiver.clone(), handler);
    let server = tokio::spawn(async move {
        let serve = axum::serve(listener, app).with_graceful_shutdown(async {
            let _ = stopped.await;
        });
        if let Err(error) = serve.await {
            tracing::error!(%error, "axum receiver failed");
        }
    });
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
