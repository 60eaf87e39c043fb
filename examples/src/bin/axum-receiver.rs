//! `axum-receiver`: a Knolyx webhook receiver on axum, following the examples contract.
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
//! KNOLYX_WEBHOOK_TOKEN=dev-token cargo run -p knolyx-webhook-examples --bin axum-receiver
//! ```

use std::process::ExitCode;

use knolyx_webhook_examples::axum_receiver;
use knolyx_webhook_examples::{ReceiverConfig, init_logging, printing_handler};

#[tokio::main]
async fn main() -> ExitCode {
    init_logging();
    let config = match ReceiverConfig::from_env() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("axum-receiver: cannot start: {error}");
            return ExitCode::from(2);
        }
    };
    let receiver = match config.receiver().await {
        Ok(receiver) => receiver,
        Err(error) => {
            eprintln!("axum-receiver: cannot start: {error}");
            return ExitCode::from(2);
        }
    };
    let running = match axum_receiver::spawn(
        receiver,
        printing_handler(config.handler_delay),
        config.addr,
    )
    .await
    {
        Ok(running) => running,
        Err(error) => {
            eprintln!("axum-receiver: cannot listen on {}: {error}", config.addr);
            return ExitCode::FAILURE;
        }
    };
    eprintln!("listening on {}", running.url());
    running
        .run_until_terminated("axum-receiver", config.shutdown_grace)
        .await;
    ExitCode::SUCCESS
}
