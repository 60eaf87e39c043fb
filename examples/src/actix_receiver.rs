//! The actix-web receiver: the `actix-receiver` binary's server, startable in-process.
//!
//! It serves [`ROUTE`] for every method (the pipeline itself answers 405 with
//! `Allow: PUT, POST` to anything but PUT and POST, exactly like the axum receiver) and
//! `GET /health`. The route's handler runs the [`EventHandler`] and answers 200 `ok` when
//! it succeeds, 500 `handler failed` when it fails (as the axum receiver does);
//! [`KnolyxWebhookMiddleware`] settles the delivery with that status.
//!
//! This is the code to copy into an existing actix-web app: the receiver as app data, the
//! middleware on the webhook's resource, and a handler extracting [`KnolyxEvent`].

use std::io;
use std::net::{SocketAddr, TcpListener};

use actix_web::{App, HttpResponse, HttpServer, web};
use knolyx_webhook_actix::{KnolyxEvent, KnolyxWebhookMiddleware};
use knolyx_webhook_core::WebhookReceiver;

use crate::config::ROUTE;
use crate::handler::EventHandler;
use crate::running::RunningReceiver;

/// actix-web's own limit on a graceful stop. Generous: [`RunningReceiver::shutdown`]
/// decides when to stop waiting (its grace period), releases the claims still running, and
/// only then stops the workers.
const SHUTDOWN_TIMEOUT_SECS: u64 = 3600;

/// Binds `addr` (port 0 picks a free port) and serves the receiver on `workers` actix-web
/// workers (at least one), each sharing `receiver` and its store.
///
/// Works inside any Tokio multi-thread runtime (`#[tokio::main]`, `#[tokio::test]`): the
/// server's own task runs there, and each worker on its own thread. The server does not
/// listen to OS signals; [`RunningReceiver::shutdown`] stops it gracefully.
pub async fn spawn(
    receiver: WebhookReceiver,
    handler: EventHandler,
    addr: SocketAddr,
    workers: usize,
) -> io::Result<RunningReceiver> {
    let listener = TcpListener::bind(addr)?;
    let addr = listener.local_addr()?;
    let handler = web::Data::new(handler);
    let served = receiver.clone();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(served.clone())
            .app_data(handler.clone())
            .service(
                web::resource(ROUTE)
                    .wrap(KnolyxWebhookMiddleware)
                    .route(web::route().to(on_event)),
            )
            .route("/health", web::get().to(health))
    })
    .workers(workers.max(1))
    .disable_signals()
    .shutdown_timeout(SHUTDOWN_TIMEOUT_SECS)
    .listen(listener)?
    .run();
    let handle = server.handle();
    let force = handle.clone();
    let task = tokio::spawn(server);
    Ok(RunningReceiver::new(
        addr,
        "actix-web",
        receiver,
        move || async move {
            handle.stop(true).await;
            match task.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::error!(error = %e, "the actix-web server failed"),
                Err(e) => tracing::error!(error = %e, "the actix-web server task failed"),
            }
        },
        move || {
            // Stops the workers now (their running handlers are dropped).
            tokio::spawn(async move { force.stop(false).await });
        },
    ))
}

async fn on_event(
    KnolyxEvent(event): KnolyxEvent,
    handler: web::Data<EventHandler>,
) -> HttpResponse {
    let id = event.id().to_owned();
    match (handler.get_ref())(event).await {
        Ok(()) => HttpResponse::Ok()
            .content_type("text/plain; charset=utf-8")
            .body("ok"),
        Err(error) => {
            // The claim is released: Knolyx's retry runs the handler again.
            tracing::error!(id, %error, "handler failed");
            HttpResponse::InternalServerError()
                .content_type("text/plain; charset=utf-8")
                .body("handler failed")
        }
    }
}

async fn health() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body("ok")
}
