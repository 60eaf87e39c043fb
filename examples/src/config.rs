//! The examples contract: configuration from environment variables.
//!
//! - `KNOLYX_WEBHOOK_TOKEN`: required, non-empty.
//! - `HOST` (default 127.0.0.1; `0.0.0.0` in a container) and `PORT` (default 3000): the
//!   address the receivers bind.
//! - `KNOLYX_WEBHOOK_STORE`: `memory` (default); Redis as `redis://…` (one server),
//!   `redis+cluster://host:port[,host:port…]` (seed nodes of a Redis Cluster) or
//!   `redis+sentinel://host:port[,host:port…]/MASTER_NAME` (credentials and `rediss…` as in
//!   `redis://`); or `postgres://…`.
//! - `KNOLYX_HEADER_READ_TIMEOUT_MS` (default 10000; the axum receiver): connections that
//!   send no whole request head within it (after opening, or idle after a response) are
//!   closed. actix-web's own defaults do the same within 5 s.
//! - `KNOLYX_SHUTDOWN_GRACE_SECS` (default 25): how long running handlers may finish after
//!   SIGTERM or SIGINT before their claims are released.
//! - `KNOLYX_EXAMPLE_HANDLER_DELAY_MS` (default 0): the example handler waits this long
//!   before printing its line; `KNOLYX_EXAMPLE_HANDLER_FAIL_FIRST` (default 0): it fails the
//!   first N attempts of each event id.
//! - `KNOLYX_WEBHOOK_INBOX=postgres://…`: inbox mode, with `KNOLYX_INBOX_MAX_ATTEMPTS`
//!   (default 20), `KNOLYX_INBOX_FIRST_RETRY_MS` (default 1000), `KNOLYX_INBOX_LEASE_SECS`
//!   (default 60) and `KNOLYX_INBOX_TABLE` (default `knolyx_webhook_inbox`).
//! - `KNOLYX_METRICS_PORT` (unset by default): serve the metrics in Prometheus text format
//!   at `http://127.0.0.1:$KNOLYX_METRICS_PORT/metrics` (0: a free port, printed on stderr
//!   as `metrics on URL`), a listener of its own beside the webhook's.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use knolyx_webhook_core::inbox::{Inbox, Worker, WorkerHandle};
use knolyx_webhook_core::store::{IdempotencyStore, MemoryStore};
use knolyx_webhook_core::{SecretToken, WebhookReceiver};
use knolyx_webhook_postgres::{DEFAULT_INBOX_TABLE, PostgresInbox, PostgresStore};

use crate::handler::EventHandler;
use knolyx_webhook_redis::RedisStore;

/// The route every example receiver serves.
pub const ROUTE: &str = "/webhooks/knolyx";

/// Which idempotency store to use.
#[derive(Clone, PartialEq, Eq)]
pub enum StoreChoice {
    /// The in-memory store (single process).
    Memory,
    /// A Redis store at this URL.
    Redis(String),
    /// A PostgreSQL store at this URL.
    Postgres(String),
}

impl fmt::Debug for StoreChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // URLs may carry passwords: show only the kind.
        f.write_str(match self {
            StoreChoice::Memory => "memory",
            StoreChoice::Redis(_) => "redis",
            StoreChoice::Postgres(_) => "postgres",
        })
    }
}

impl StoreChoice {
    /// Parses `KNOLYX_WEBHOOK_STORE`'s value.
    pub fn parse(value: &str) -> Result<Self, ConfigError> {
        let value = value.trim();
        if value.is_empty() || value == "memory" {
            Ok(StoreChoice::Memory)
        } else if knolyx_webhook_redis::is_redis_url(value) {
            Ok(StoreChoice::Redis(value.to_owned()))
        } else if value.starts_with("postgres://") || value.starts_with("postgresql://") {
            Ok(StoreChoice::Postgres(value.to_owned()))
        } else {
            Err(ConfigError(
                "KNOLYX_WEBHOOK_STORE must be `memory`, `redis://…`, `redis+cluster://…`, \
                 `redis+sentinel://…/MASTER` or `postgres://…`"
                    .into(),
            ))
        }
    }

    /// The store for the start-up line and the errors: its kind and where it is, without
    /// credentials or query (`redis at 127.0.0.1:6379/`, `postgres at db:5432/app`).
    pub fn describe(&self) -> String {
        match self {
            StoreChoice::Memory => "memory (this process only)".to_owned(),
            StoreChoice::Redis(url) | StoreChoice::Postgres(url) => describe_url(url),
        }
    }

    /// Connects the chosen store (for PostgreSQL, also creates its table if missing).
    ///
    /// A store that cannot be reached at start-up is a configuration error: the receiver
    /// refuses to start, saying why. Once started, an outage only makes deliveries answer
    /// 503 (Knolyx retries them) until the store is back: no restart needed.
    pub async fn connect(&self) -> Result<Arc<dyn IdempotencyStore>, ConfigError> {
        let unreachable = |e: &(dyn std::error::Error + 'static)| {
            ConfigError(format!(
                "cannot use KNOLYX_WEBHOOK_STORE ({}): {}",
                self.describe(),
                knolyx_webhook_core::testing::error_chain(e)
            ))
        };
        match self {
            StoreChoice::Memory => Ok(Arc::new(MemoryStore::new())),
            StoreChoice::Redis(url) => {
                let store = RedisStore::connect(url)
                    .await
                    .map_err(|e| unreachable(&e))?;
                Ok(Arc::new(store))
            }
            StoreChoice::Postgres(url) => {
                let store = PostgresStore::connect(url)
                    .await
                    .map_err(|e| unreachable(&e))?;
                store.migrate().await.map_err(|e| unreachable(&e))?;
                Ok(Arc::new(store))
            }
        }
    }
}

/// `SCHEME at HOST:PORT/PATH` for a store URL: credentials (up to the last `@`), the query
/// (which may hold `password=`) and the fragment left out.
fn describe_url(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("store", url));
    let rest = rest.rsplit_once('@').map_or(rest, |(_, after)| after);
    let address = rest.split(['?', '#']).next().unwrap_or_default();
    format!("{scheme} at {address}")
}

/// A configuration that cannot start a receiver; its text says what to fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// A receiver's configuration, as read from the environment.
#[derive(Debug, Clone)]
pub struct ReceiverConfig {
    /// The accepted token.
    pub token: SecretToken,
    /// The address to bind: `HOST` (default 127.0.0.1) and `PORT` (default 3000).
    pub addr: SocketAddr,
    /// The store to use.
    pub store: StoreChoice,
    /// How long running handlers may take to finish after SIGTERM or SIGINT
    /// (`KNOLYX_SHUTDOWN_GRACE_SECS`, default 25) before their claims are released.
    pub shutdown_grace: Duration,
    /// How long the example handler waits before printing its line
    /// (`KNOLYX_EXAMPLE_HANDLER_DELAY_MS`, default 0): to see in-flight duplicates and a
    /// graceful shutdown at work.
    pub handler_delay: Duration,
    /// How many attempts of each event id the example handler fails before it succeeds
    /// (`KNOLYX_EXAMPLE_HANDLER_FAIL_FIRST`, default 0): in the synchronous mode each failure
    /// answers 500; in inbox mode the worker retries.
    pub handler_fail_first: u32,
    /// Inbox mode (`KNOLYX_WEBHOOK_INBOX=postgres://…`): deliveries are stored and
    /// acknowledged, and a worker in this process runs the handler from the inbox.
    pub inbox: Option<InboxConfig>,
    /// `KNOLYX_METRICS_PORT`: where to serve `/metrics`, if at all.
    pub metrics_port: Option<u16>,
    /// `KNOLYX_HEADER_READ_TIMEOUT_MS` (default 10,000; the axum receiver): a connection
    /// that has not sent a whole request head this long after opening, or after its
    /// previous response, is closed.
    pub header_read_timeout: Duration,
}

/// The inbox of [`ReceiverConfig::inbox`].
#[derive(Clone)]
pub struct InboxConfig {
    /// The database URL (`KNOLYX_WEBHOOK_INBOX`).
    pub url: String,
    /// `KNOLYX_INBOX_MAX_ATTEMPTS` (default 20): then the entry is dead.
    pub max_attempts: u32,
    /// `KNOLYX_INBOX_FIRST_RETRY_MS` (default 1000): doubles per attempt, with jitter, capped.
    pub first_retry: Duration,
    /// `KNOLYX_INBOX_LEASE_SECS` (default 60).
    pub lease: Duration,
    /// `KNOLYX_INBOX_TABLE` (default `knolyx_webhook_inbox`): the inbox's table, created if
    /// missing.
    pub table: String,
}

impl fmt::Debug for InboxConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may carry a password.
        f.debug_struct("InboxConfig")
            .field("max_attempts", &self.max_attempts)
            .field("first_retry", &self.first_retry)
            .field("lease", &self.lease)
            .field("table", &self.table)
            .finish_non_exhaustive()
    }
}

/// The default of `KNOLYX_SHUTDOWN_GRACE_SECS`.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(25);

/// A whole number from the environment, or its default.
fn number(
    lookup: &impl Fn(&str) -> Option<String>,
    name: &str,
    default: u64,
) -> Result<u64, ConfigError> {
    match lookup(name) {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse::<u64>()
            .map_err(|_| ConfigError(format!("{name} must be a whole number, not {v:?}"))),
    }
}

impl ReceiverConfig {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the configuration through `lookup` (for tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let token = lookup("KNOLYX_WEBHOOK_TOKEN").ok_or_else(|| {
            ConfigError(
                "KNOLYX_WEBHOOK_TOKEN is not set: set it to the webhook's security token".into(),
            )
        })?;
        let token = SecretToken::new(token)
            .map_err(|e| ConfigError(format!("KNOLYX_WEBHOOK_TOKEN is unusable: {e}")))?;
        let port = match lookup("PORT") {
            None => 3000,
            Some(p) => p
                .trim()
                .parse::<u16>()
                .map_err(|_| ConfigError(format!("PORT must be a port number, not {p:?}")))?,
        };
        let host = match lookup("HOST").filter(|h| !h.trim().is_empty()) {
            None => IpAddr::V4(Ipv4Addr::LOCALHOST),
            Some(h) => h.trim().parse::<IpAddr>().map_err(|_| {
                ConfigError(format!(
                    "HOST must be an IP address (127.0.0.1, 0.0.0.0, ::), not {h:?}"
                ))
            })?,
        };
        let store = StoreChoice::parse(&lookup("KNOLYX_WEBHOOK_STORE").unwrap_or_default())?;
        let grace = number(
            &lookup,
            "KNOLYX_SHUTDOWN_GRACE_SECS",
            DEFAULT_SHUTDOWN_GRACE.as_secs(),
        )?;
        let delay = number(&lookup, "KNOLYX_EXAMPLE_HANDLER_DELAY_MS", 0)?;
        let header_read_timeout = Duration::from_millis(
            number(
                &lookup,
                "KNOLYX_HEADER_READ_TIMEOUT_MS",
                crate::axum_receiver::DEFAULT_HEADER_READ_TIMEOUT.as_millis() as u64,
            )?
            .max(1),
        );
        let fail_first = number(&lookup, "KNOLYX_EXAMPLE_HANDLER_FAIL_FIRST", 0)?;
        let inbox = match lookup("KNOLYX_WEBHOOK_INBOX").filter(|v| !v.trim().is_empty()) {
            None => None,
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                Some(InboxConfig {
                    url,
                    max_attempts: u32::try_from(number(&lookup, "KNOLYX_INBOX_MAX_ATTEMPTS", 20)?)
                        .unwrap_or(u32::MAX)
                        .max(1),
                    first_retry: Duration::from_millis(number(
                        &lookup,
                        "KNOLYX_INBOX_FIRST_RETRY_MS",
                        1000,
                    )?),
                    lease: Duration::from_secs(
                        number(&lookup, "KNOLYX_INBOX_LEASE_SECS", 60)?.max(1),
                    ),
                    table: lookup("KNOLYX_INBOX_TABLE")
                        .filter(|t| !t.trim().is_empty())
                        .unwrap_or_else(|| DEFAULT_INBOX_TABLE.to_owned()),
                })
            }
            Some(_) => {
                return Err(ConfigError(
                    "KNOLYX_WEBHOOK_INBOX must be a `postgres://…` URL".into(),
                ));
            }
        };
        let metrics_port = match lookup("KNOLYX_METRICS_PORT").filter(|v| !v.trim().is_empty()) {
            None => None,
            Some(p) => Some(p.trim().parse::<u16>().map_err(|_| {
                ConfigError(format!(
                    "KNOLYX_METRICS_PORT must be a port number, not {p:?}"
                ))
            })?),
        };
        Ok(Self {
            token,
            addr: SocketAddr::new(host, port),
            store,
            shutdown_grace: Duration::from_secs(grace),
            handler_delay: Duration::from_millis(delay),
            handler_fail_first: u32::try_from(fail_first).unwrap_or(u32::MAX),
            inbox,
            metrics_port,
            header_read_timeout,
        })
    }

    /// The start-up line of the receiver binaries, printed before `listening on URL`: the
    /// store and the inbox in use, without credentials
    /// (`store: redis at 127.0.0.1:6379/, inbox: off`).
    pub fn describe(&self) -> String {
        let inbox = match &self.inbox {
            None => "off".to_owned(),
            Some(inbox) => format!("{}, table {}", describe_url(&inbox.url), inbox.table),
        };
        format!("store: {}, inbox: {inbox}", self.store.describe())
    }

    /// Builds the receive pipeline: this token and the chosen store, defaults otherwise.
    pub async fn receiver(&self) -> Result<WebhookReceiver, ConfigError> {
        Ok(self.start().await?.0)
    }

    /// The receive pipeline and, in inbox mode, the inbox (its table created if missing)
    /// for [`spawn_worker`](Self::spawn_worker).
    pub async fn start(
        &self,
    ) -> Result<(WebhookReceiver, Option<Arc<PostgresInbox>>), ConfigError> {
        let store = self.store.connect().await?;
        let mut builder = WebhookReceiver::builder()
            .token(self.token.clone())
            .shared_store(store);
        let mut inbox = None;
        if let Some(config) = &self.inbox {
            let cannot = |e: &(dyn std::error::Error + 'static)| {
                ConfigError(format!(
                    "cannot use KNOLYX_WEBHOOK_INBOX ({}): {}",
                    describe_url(&config.url),
                    knolyx_webhook_core::testing::error_chain(e)
                ))
            };
            let store = PostgresStore::connect(&config.url)
                .await
                .map_err(|e| cannot(&e))?;
            let postgres = PostgresInbox::builder(store.pool().clone())
                .table(&config.table)
                .pooler(store.pooler())
                .build()
                .map_err(|e| cannot(&e))?;
            postgres.migrate().await.map_err(|e| cannot(&e))?;
            let shared = Arc::new(postgres);
            builder = builder.inbox(Arc::clone(&shared) as Arc<dyn Inbox>);
            inbox = Some(shared);
        }
        let receiver = builder.build().map_err(|e| ConfigError(e.to_string()))?;
        Ok((receiver, inbox))
    }

    /// Inbox mode: starts the worker that runs `handler` from `inbox`, woken by NOTIFY.
    pub async fn spawn_worker(
        &self,
        inbox: Arc<PostgresInbox>,
        handler: EventHandler,
    ) -> Result<WorkerHandle, ConfigError> {
        let config = self.inbox.clone().unwrap_or(InboxConfig {
            url: String::new(),
            max_attempts: 20,
            first_retry: Duration::from_secs(1),
            lease: Duration::from_secs(60),
            table: DEFAULT_INBOX_TABLE.to_owned(),
        });
        let waker = Arc::new(tokio::sync::Notify::new());
        // Behind a transaction pooler LISTEN cannot work: the worker then polls.
        let listening = match inbox.wake_on_notify(Arc::clone(&waker)).await {
            Ok(_) => true,
            Err(error) => {
                tracing::warn!(error = %error, "the inbox worker polls instead of listening");
                false
            }
        };
        let mut worker = Worker::builder(inbox as Arc<dyn Inbox>, move |event| handler(event))
            .max_attempts(config.max_attempts)
            .first_retry(config.first_retry)
            .lease(config.lease);
        if listening {
            worker = worker.wake_on(waker);
        }
        Ok(worker.build().spawn())
    }
}

/// Sets up logging to stderr (stdout is for event lines), filtered by `RUST_LOG`
/// (default `info`).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colours only for a terminal: logs piped to a file or a collector stay plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn token_is_required_and_non_empty() {
        assert!(ReceiverConfig::from_lookup(lookup(&[])).is_err());
        let err = ReceiverConfig::from_lookup(lookup(&[("KNOLYX_WEBHOOK_TOKEN", "")])).unwrap_err();
        assert!(err.0.contains("empty"), "{err}");
    }

    #[test]
    fn descriptions_name_the_store_without_credentials() {
        let cases = [
            ("memory", "memory (this process only)"),
            ("redis://127.0.0.1:6379/", "redis at 127.0.0.1:6379/"),
            ("redis://:s3cret@cache:6380/2", "redis at cache:6380/2"),
            (
                "postgres://app:p@ss@db:5432/app?sslmode=require&password=x",
                "postgres at db:5432/app",
            ),
            (
                "redis+cluster://u:pw@a:7000,b:7001",
                "redis+cluster at a:7000,b:7001",
            ),
        ];
        for (url, shown) in cases {
            assert_eq!(StoreChoice::parse(url).unwrap().describe(), shown, "{url}");
        }
    }

    #[test]
    fn defaults_and_choices() {
        let c = ReceiverConfig::from_lookup(lookup(&[("KNOLYX_WEBHOOK_TOKEN", "t")])).unwrap();
        assert_eq!(c.addr, "127.0.0.1:3000".parse().unwrap());
        assert_eq!(c.store, StoreChoice::Memory);
        let c = ReceiverConfig::from_lookup(lookup(&[
            ("KNOLYX_WEBHOOK_TOKEN", "t"),
            ("PORT", "8081"),
            ("KNOLYX_WEBHOOK_STORE", "redis://127.0.0.1:6379/"),
        ]))
        .unwrap();
        assert_eq!(c.addr.port(), 8081);
        assert!(matches!(c.store, StoreChoice::Redis(_)));
        assert!(StoreChoice::parse("mongodb://x").is_err());
        let c = ReceiverConfig::from_lookup(lookup(&[
            ("KNOLYX_WEBHOOK_TOKEN", "t"),
            ("HOST", "0.0.0.0"),
        ]))
        .unwrap();
        assert_eq!(c.addr, "0.0.0.0:3000".parse().unwrap());
        let err = ReceiverConfig::from_lookup(lookup(&[
            ("KNOLYX_WEBHOOK_TOKEN", "t"),
            ("HOST", "localhost"),
        ]))
        .unwrap_err();
        assert!(err.0.contains("HOST"), "{err}");
        assert!(
            ReceiverConfig::from_lookup(lookup(&[("KNOLYX_WEBHOOK_TOKEN", "t"), ("PORT", "x")]))
                .is_err()
        );
    }
}
