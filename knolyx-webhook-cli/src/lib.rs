//! The `knolyx-webhook` command: manage Knolyx webhooks and send test events.
//!
//! - `knolyx-webhook webhooks create|list|get|delete|ping` calls the Knolyx Webhook API
//!   through [`knolyx_webhook_client`].
//! - `knolyx-webhook send EVENT_TYPE --url URL --token TOKEN` delivers a realistic event
//!   the way Knolyx does (HTTP PUT, JSON, `X-Webhook-Security-Token`) to any URL,
//!   `http://localhost` included, and reports each response (status, duplicate marker,
//!   timing).
//! - `knolyx-webhook sandbox` runs a local Knolyx (the Webhook API and its sender, on
//!   127.0.0.1, `http://localhost` webhooks allowed) and `knolyx-webhook sandbox trigger
//!   TYPE` delivers an event to every webhook of a project through it, with
//!   retransmissions; the server is the library module [`sandbox`], to start in-process
//!   from your own tests.
//! - `knolyx-webhook inbox list|show|retry|purge --database-url URL` operates a receiver's
//!   durable inbox on PostgreSQL through
//!   [`PostgresInbox`](knolyx_webhook_postgres::PostgresInbox) (URL default:
//!   `KNOLYX_WEBHOOK_INBOX`).
//! - `knolyx-webhook store show|release ID --store URL` shows the state of a message id
//!   in a receiver's idempotency store (Redis, Redis Cluster, Sentinel, PostgreSQL) and
//!   frees one stuck in progress, through
//!   [`IdempotencyStore::inspect`](knolyx_webhook_core::store::IdempotencyStore::inspect)
//!   and [`force_release`](knolyx_webhook_core::store::IdempotencyStore::force_release)
//!   (URL default: `KNOLYX_WEBHOOK_STORE`).
//!
//! A security token can come from `--token-file PATH` (`-` = stdin) instead of
//! `--token`, and is checked with the receiver's own rule
//! ([`SecretToken::new`](knolyx_webhook_core::SecretToken::new)) before anything is sent.
//! URLs (database URLs included) are printed without their `user:password@` part
//! ([`redact_url`](knolyx_webhook_client::redact_url)).
//!
//! The binary is a thin `main` over [`main`]; the logic lives here so it can be tested.
//! Exit codes are in [`exit`].

mod cli;
pub mod exit;
mod inbox;
pub mod sandbox;
mod send;
mod store;
mod token;
mod webhooks;

use std::process::ExitCode;

use clap::Parser as _;

pub use cli::{
    ApiArgs, Cli, Command, CreateArgs, DatabaseArgs, IdArgs, InboxCommand, InboxListArgs,
    InboxPurgeArgs, InboxRetryArgs, InboxShowArgs, ListArgs, OutputArgs, PingArgs, SandboxArgs,
    SandboxCommand, SandboxServeArgs, SendArgs, StateArg, StoreArgs, StoreCommand,
    StoreReleaseArgs, StoreShowArgs, TokenArgs, TriggerArgs, WebhooksCommand,
};

/// Parses the process's command line and runs it; the binary's `main`.
///
/// A bad command line prints clap's message and exits with [`exit::USAGE`] (2).
pub fn main() -> ExitCode {
    run(Cli::parse())
}

/// Runs a parsed command line and returns the process's exit code.
pub fn run(cli: Cli) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Webhooks(command) => webhooks::run(command).await,
            Command::Send(args) => send::run(args).await,
            Command::Inbox(command) => inbox::run(command).await,
            Command::Sandbox(args) => sandbox::command::run(args).await,
            Command::Store(command) => store::run(command).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(failure) => failure.report(),
    }
}
