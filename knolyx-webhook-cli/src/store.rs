//! `store show|release`: the operator's side of the idempotency store, through
//! [`IdempotencyStore::inspect`] and [`IdempotencyStore::force_release`] on the shipped
//! shared stores (Redis, Redis Cluster, Sentinel, PostgreSQL).

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use knolyx_webhook_client::redact_url;
use knolyx_webhook_core::store::{IdState, IdempotencyStore, StoreError};
use knolyx_webhook_postgres::PostgresStore;
use knolyx_webhook_redis::RedisStore;
use serde_json::json;

use crate::cli::{StoreArgs, StoreCommand};
use crate::exit::Failure;
use crate::inbox::{Setting, failure_for, printable};
use crate::webhooks::error_chain;

/// The environment variable the store commands read the URL from.
const STORE_ENV: &str = "KNOLYX_WEBHOOK_STORE";

/// Runs a `store` subcommand.
pub(crate) async fn run(command: StoreCommand) -> Result<ExitCode, Failure> {
    match command {
        StoreCommand::Show(args) => {
            let store = args.store.open().await?;
            let state = store
                .inspect(&args.id)
                .await
                .map_err(|e| args.store.failure(e))?;
            if args.json {
                println!("{}", state_json(&args.id, &state));
            } else {
                println!("{}", describe(&args.id, &state));
            }
        }
        StoreCommand::Release(args) => {
            let store = args.store.open().await?;
            let failure = |e| args.store.failure(e);
            let id = printable(&args.id);
            let state = store.inspect(&args.id).await.map_err(failure)?;
            let IdState::InProgress { lease_left } = state else {
                return Err(Failure::rejected(format!(
                    "{}: nothing to release (only an id in progress is released)",
                    describe(&args.id, &state)
                )));
            };
            if !args.yes {
                confirm(&format!(
                    "Release {id}, in progress with {} of its lease left? A handler still \
                     running for it would find its claim gone. [y/N] ",
                    left(lease_left)
                ))?;
            }
            if !store.force_release(&args.id).await.map_err(failure)? {
                let now = store.inspect(&args.id).await.map_err(failure)?;
                return Err(Failure::rejected(format!(
                    "{}: it was no longer in progress, nothing released",
                    describe(&args.id, &now)
                )));
            }
            println!("Released {id}: its next delivery runs the handler.");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Asks on the terminal; refuses (usage) without one.
fn confirm(question: &str) -> Result<(), Failure> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(Failure::usage(
            "refusing to release without confirmation: stdin is not a terminal; pass --yes",
        ));
    }
    eprint!("{question}");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    stdin
        .lock()
        .read_line(&mut answer)
        .map_err(|e| Failure::usage(format!("cannot read the answer: {e}")))?;
    match answer.trim().to_ascii_lowercase().as_str() {
        "y" | "yes" => Ok(()),
        _ => Err(Failure::rejected("not released")),
    }
}

impl StoreArgs {
    /// The store's URL, from the flag or [`STORE_ENV`].
    fn url(&self) -> Result<&str, Failure> {
        match self.url.as_deref().map(str::trim) {
            Some("memory") => Err(Failure::usage(
                "the memory store lives inside its receiver's process: no command can reach \
                 it; store commands need a shared store (redis://…, postgres://…)",
            )),
            Some(url) if !url.is_empty() => Ok(url),
            _ => Err(Failure::usage(format!(
                "no store: give --store URL or set {STORE_ENV}"
            ))),
        }
    }

    /// Connects to the store the URL names.
    async fn open(&self) -> Result<Arc<dyn IdempotencyStore>, Failure> {
        let url = self.url()?;
        if knolyx_webhook_redis::is_redis_url(url) {
            let store = RedisStore::builder()
                .key_prefix(&self.key_prefix)
                .connect(url)
                .await
                .map_err(|e| self.failure(e))?;
            return Ok(Arc::new(store));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let connected = PostgresStore::connect(url)
                .await
                .map_err(|e| self.failure(e))?;
            let store = PostgresStore::builder(connected.pool().clone())
                .table(&self.table)
                .pooler(connected.pooler())
                .build()
                .map_err(|e| Failure::usage(format!("--table: {}", error_chain(&e))))?;
            return Ok(Arc::new(store));
        }
        Err(Failure::usage(format!(
            "--store / {STORE_ENV} must be redis://…, rediss://…, redis+cluster://…, \
             redis+sentinel://…/MASTER or postgres://…, not {}",
            redact_url(url)
        )))
    }

    fn failure(&self, error: StoreError) -> Failure {
        let url = self.url.as_deref().unwrap_or_default();
        let postgres = url.starts_with("postgres");
        let misconfigured = if postgres {
            format!(
                "check the database of {} and --table {} (a receiver creates the table when \
                 it starts)",
                redact_url(url),
                self.table
            )
        } else {
            format!(
                "check the URL's topology: {} (a cluster node needs redis+cluster://)",
                redact_url(url)
            )
        };
        failure_for(
            error,
            &Setting {
                url,
                name: &format!("--store / {STORE_ENV}"),
                form: "redis://…, redis+cluster://…, redis+sentinel://…/MASTER or postgres://…",
                service: if postgres { "PostgreSQL" } else { "Redis" },
            },
            misconfigured,
        )
    }
}

/// One line: the id and its state.
fn describe(id: &str, state: &IdState) -> String {
    let id = printable(id);
    match state {
        IdState::Absent => {
            format!("{id}: absent (never claimed, released, or its lease or retention expired)")
        }
        IdState::InProgress { lease_left } => format!(
            "{id}: in progress, {} of its lease left (a retransmission is answered 503 until \
             then)",
            left(*lease_left)
        ),
        IdState::Completed { retention_left } => format!(
            "{id}: completed, remembered for {} more (a retransmission is a duplicate)",
            left(*retention_left)
        ),
    }
}

/// `{"id", "state", "lease_left_ms" | "retention_left_ms"}`.
fn state_json(id: &str, state: &IdState) -> serde_json::Value {
    let ms = |d: &Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    match state {
        IdState::Absent => json!({"id": id, "state": state.as_str()}),
        IdState::InProgress { lease_left } => {
            json!({"id": id, "state": state.as_str(), "lease_left_ms": ms(lease_left)})
        }
        IdState::Completed { retention_left } => {
            json!({"id": id, "state": state.as_str(), "retention_left_ms": ms(retention_left)})
        }
    }
}

/// A duration as people read it: `42s`, `3m 20s`, `71h 59m`.
fn left(d: Duration) -> String {
    let secs = d.as_secs_f64().ceil() as u64;
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m {}s", secs / 60, secs % 60),
        _ => format!("{}h {}m", secs / 3600, secs % 3600 / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_people_say_them() {
        assert_eq!(left(Duration::from_millis(41_200)), "42s");
        assert_eq!(left(Duration::from_secs(200)), "3m 20s");
        assert_eq!(left(Duration::from_secs(72 * 3600 - 60)), "71h 59m");
    }
}
