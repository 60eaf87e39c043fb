//! `actix-receiver`: a Knolyx webhook receiver on actix-web, following the examples contract.
//!
//! - `KNOLYX_WEBHOOK_TOKEN` (required, non-empty), `PORT` (default 3000, bound on
//!   127.0.0.1), `KNOLYX_WEBHOOK_STORE`: `memory` (the default), `redis://…` or
//!   `postgres://…` (a shared store: several replicas drop each other's duplicates).
//! - Serves `/webhooks/knolyx`; prints one JSON line per handled event on stdout (after
//!   `KNOLYX_EXAMPLE_HANDLER_DELAY_MS`, default 0); logs go to stderr (`RUST_LOG`, default
//!   `info`).
//! - On SIGTERM or SIGINT: stops accepting, lets running handlers finish for up to
//!   `KNOLYX_SHUTDOWN_GRACE_SECS` (default 25), releases the claims of those still running
//!   (so another replica handles their retransmissions at once), and exits 0.
//!
//! ```sh
//! KNOLYX_WEBHOOK_TOKEN=dev-token cargo run -p knolyx-webhook-examples --bin actix-receiver
//! ```

use std::process::ExitCode;

use knolyx_webhook_examples::{ReceiverConfig, actix_receiver, init_logging, printing_handler};

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
    let receiver = match config.receiver().await {
        Ok(receiver) => receiver,
        Err(e) => {
            eprintln!("actix-receiver: cannot start: {e}");
            return ExitCode::from(2);
        }
    };
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let running = match actix_receiver::spawn(
        receiver,
        printing_handler(config.handler_delay),
        config.addr,
        workers,
    )
    .await
    {
        Ok(running) => running,
        Err(e) => {
            eprintln!("actix-receiver: cannot listen on {}: {e}", config.addr);
            return ExitCode::FAILURE;
        }
    };
    eprintln!("listening on {}", running.url());
    running
        .run_until_terminated("actix-receiver", config.shutdown_grace)
        .await;
    ExitCode::SUCCESS
}
