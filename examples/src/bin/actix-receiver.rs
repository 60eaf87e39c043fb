//! `actix-receiver`: a Knolyx webhook receiver on actix-web, following the examples contract.
//!
//! - `KNOLYX_WEBHOOK_TOKEN` (required, non-empty), `HOST` (default 127.0.0.1; 0.0.0.0 in a
//!   container), `PORT` (default 3000), `KNOLYX_WEBHOOK_STORE`: `memory` (the default), `redis://…` or
//!   `postgres://…` (a shared store: several replicas drop each other's duplicates).
//! - Serves `/webhooks/knolyx`; prints one JSON line per handled event on stdout (after
//!   `KNOLYX_EXAMPLE_HANDLER_DELAY_MS`, default 0); logs go to stderr (`RUST_LOG`, default
//!   `info`).
//! - `KNOLYX_WEBHOOK_INBOX=postgres://…`: inbox mode (the table is created if missing):
//!   deliveries are stored and answered `200 queued`; a worker in this process prints the
//!   line when it runs the event, retrying failures (`KNOLYX_INBOX_MAX_ATTEMPTS` 20,
//!   `KNOLYX_INBOX_FIRST_RETRY_MS` 1000, `KNOLYX_INBOX_LEASE_SECS` 60, `KNOLYX_INBOX_TABLE` knolyx_webhook_inbox).
//!   `KNOLYX_EXAMPLE_HANDLER_FAIL_FIRST=N` fails the first N attempts of each id.
//! - `KNOLYX_METRICS_PORT`: the metrics in Prometheus text format at
//!   `http://127.0.0.1:$KNOLYX_METRICS_PORT/metrics` (a listener of its own).
//! - On SIGTERM or SIGINT: stops accepting, lets running handlers finish for up to
//!   `KNOLYX_SHUTDOWN_GRACE_SECS` (default 25), releases the claims of those still running
//!   (so another replica handles their retransmissions at once), and exits 0.
//!
//! ```sh
//! KNOLYX_WEBHOOK_TOKEN=dev-token cargo run -p knolyx-webhook-examples --bin actix-receiver
//! ```

use std::process::ExitCode;

use knolyx_webhook_examples::{
    ReceiverConfig, Termination, actix_receiver, init_logging, printing_handler,
};

#[tokio::main]
async fn main() -> ExitCode {
    init_logging();
    let config = match ReceiverConfig::from_env() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("actix-receiver: cannot start: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = knolyx_webhook_examples::metrics::serve_if_configured(config.metrics_port).await
    {
        eprintln!("actix-receiver: cannot start: {e}");
        return ExitCode::from(2);
    }
    let (receiver, inbox) = match config.start().await {
        Ok(started) => started,
        Err(e) => {
            eprintln!("actix-receiver: cannot start: {e}");
            return ExitCode::from(2);
        }
    };
    let handler = printing_handler(config.handler_delay, config.handler_fail_first);
    // Inbox mode: the worker runs the handler from the inbox; the route only stores.
    let worker = match inbox {
        Some(inbox) => match config.spawn_worker(inbox, handler.clone()).await {
            Ok(worker) => Some(worker),
            Err(e) => {
                eprintln!("actix-receiver: cannot start: {e}");
                return ExitCode::from(2);
            }
        },
        None => None,
    };
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let running = match actix_receiver::spawn(receiver, handler.clone(), config.addr, workers).await
    {
        Ok(running) => running,
        Err(e) => {
            eprintln!("actix-receiver: cannot listen on {}: {e}", config.addr);
            return ExitCode::FAILURE;
        }
    };
    // The signal listeners, then the store, then `listening on URL`, which tests and
    // scripts take as the sign of readiness: a SIGTERM right after it is handled.
    let termination = Termination::listen();
    eprintln!("{}", config.describe());
    eprintln!("listening on {}", running.url());
    running
        .run_until(termination, "actix-receiver", config.shutdown_grace)
        .await;
    if let Some(worker) = worker {
        let report = worker.shutdown(config.shutdown_grace).await;
        eprintln!("inbox worker stopped: {report:?}");
    }
    ExitCode::SUCCESS
}
