//! `axum-receiver`: a Knolyx webhook receiver on axum, following the examples contract.
//!
//! - `KNOLYX_WEBHOOK_TOKEN` (required, non-empty), `PORT` (default 3000, bound on
//!   127.0.0.1), `KNOLYX_WEBHOOK_STORE`: `memory` (the default), `redis://…` or
//!   `postgres://…` (a shared store: several replicas drop each other's duplicates).
//! - Serves `/webhooks/knolyx` until Ctrl-C; prints one JSON line per handled event on
//!   stdout; logs go to stderr (`RUST_LOG`, default `info`).
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
    let running = match axum_receiver::spawn(receiver, printing_handler(), config.addr).await {
        Ok(running) => running,
        Err(error) => {
            eprintln!("axum-receiver: cannot listen on {}: {error}", config.addr);
            return ExitCode::FAILURE;
        }
    };
    eprintln!("listening on {}", running.url());
    if let Err(error) = tokio::signal::ctrl_c().await {
        eprintln!("axum-receiver: cannot wait for Ctrl-C: {error}");
    }
    eprintln!("shutting down");
    running.stop().await;
    ExitCode::SUCCESS
}
