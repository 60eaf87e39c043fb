//! The demo: the axum receiver, started in-process on a free port, and a scripted Knolyx
//! sender playing deliveries against it: the five event types, a retransmission, two
//! concurrent deliveries of one id, a wrong token, a malformed body, an oversized body, an
//! unknown event type, and a handler failure followed by a successful retry.
//!
//! It prints what was sent, the status, whether the handler ran and what the receiver
//! said, and exits 0 only when every outcome is the one the design promises.
//!
//! ```sh
//! cargo run -p knolyx-webhook-examples --bin demo
//! ```

use std::process::ExitCode;
use std::sync::Arc;

use knolyx_webhook_examples::axum_receiver;
use knolyx_webhook_examples::scenarios::{self, ScenarioSet, SpawnFn};

#[tokio::main]
async fn main() -> ExitCode {
    // Logs go to stderr and stay quiet unless RUST_LOG asks for them: the table is the show.
    if std::env::var_os("RUST_LOG").is_some() {
        knolyx_webhook_examples::init_logging();
    }
    let spawn: SpawnFn = Arc::new(|receiver, handler| {
        Box::pin(axum_receiver::spawn(
            receiver,
            handler,
            std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        ))
    });
    println!("knolyx-webhook demo: a scripted Knolyx sender against the axum receiver");
    println!("(token check, typed events, duplicates dropped, failures retried)\n");
    let report = match scenarios::play(&spawn, ScenarioSet::Demo).await {
        Ok(report) => report,
        Err(e) => {
            eprintln!("demo: could not start the receiver: {e}");
            return ExitCode::FAILURE;
        }
    };
    print!("{}", report.table());
    let rows = &report.rows;
    let handled = rows
        .iter()
        .filter(|r| r.got.handler_runs > 0 && r.got.status == Some(200))
        .count();
    let duplicates = rows.iter().filter(|r| r.got.duplicate).count();
    let rejected = rows
        .iter()
        .filter(|r| r.got.status.is_some_and(|s| s >= 400))
        .count();
    let answered = rows.len() - handled - duplicates - rejected;
    println!(
        "\n{} deliveries: {handled} handled, {duplicates} dropped as duplicate, {answered} \
         answered by the pipeline (PING), {rejected} refused or failed (none marked handled).",
        rows.len()
    );
    if report.all_ok() {
        println!("Every outcome is the one the design promises.");
        ExitCode::SUCCESS
    } else {
        let bad = rows.iter().filter(|r| !r.ok()).count();
        println!("{bad} outcome(s) differ from the design: see the rows marked NO.");
        ExitCode::FAILURE
    }
}
