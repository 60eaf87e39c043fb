//! The receiver's configuration: [`WebhookReceiverBuilder`], its defaults, and the
//! [`ConfigError`] it refuses a configuration with.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;

use super::{Inner, WebhookReceiver};
use crate::inbox::Inbox;
use crate::store::{IdempotencyStore, MemoryStore};
use crate::token::{InvalidToken, SecretToken, TokenVerifier};

/// The default body limit: 64 KiB.
pub const DEFAULT_BODY_LIMIT: usize = 64 * 1024;
/// The default lease of a claim: 60 seconds.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(60);
/// The default retention of a completed id: 72 hours.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(72 * 3600);
/// The default `Retry-After` of 503 answers: 5 seconds.
pub const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(5);

/// What the pipeline does with a `PING`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum PingHandling {
    /// Answer 200 without running the handler (the default).
    #[default]
    Answer,
    /// Hand the ping to the handler like any event (it is never stored: pings are not
    /// deduplicated).
    Forward,
}

/// What the pipeline does with a known event type whose `data` does not fit its shape.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum InvalidDataHandling {
    /// Answer 422 and log the id and type (the default). The event is not marked handled.
    #[default]
    Reject,
    /// Hand it to the handler as [`Event::Unknown`](crate::Event::Unknown), keeping the type
    /// name and the raw data.
    DeliverAsUnknown,
}

/// What the pipeline does when the idempotency store fails.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreFailureHandling {
    /// Answer 503 with `Retry-After` and do not run the handler (the default): Knolyx
    /// retries later, and nothing runs twice.
    #[default]
    FailClosed,
    /// Run the handler without a claim. Deliveries are then *not* deduplicated while the
    /// store is down: opt in only if a rare second run is better than a delay.
    FailOpen,
}

/// A configuration the builder refuses.
#[derive(Debug)]
#[non_exhaustive]
pub enum ConfigError {
    /// A token was refused, or none was given.
    Token(InvalidToken),
    /// The body limit is zero.
    ZeroBodyLimit,
    /// The lease is zero.
    ZeroLease,
    /// The in-flight status is not a 4xx or 5xx (a 2xx would tell Knolyx the event was
    /// handled while it may still fail).
    InFlightStatusNotAnError(StatusCode),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Token(e) => write!(f, "invalid webhook configuration: {e}"),
            ConfigError::ZeroBodyLimit => f.write_str("the body limit must be above zero"),
            ConfigError::ZeroLease => f.write_str("the lease must be above zero"),
            ConfigError::InFlightStatusNotAnError(s) => {
                write!(f, "the in-flight status must be 4xx or 5xx, not {s}")
            }
        }
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConfigError::Token(e) => Some(e),
            _ => None,
        }
    }
}

impl From<InvalidToken> for ConfigError {
    fn from(e: InvalidToken) -> Self {
        ConfigError::Token(e)
    }
}

impl From<std::convert::Infallible> for ConfigError {
    fn from(e: std::convert::Infallible) -> Self {
        match e {}
    }
}

/// The settings of a receiver, each written once: the builder fills them in, the receiver
/// reads them. Tokens and the store are kept beside them (they are not plain values).
#[derive(Clone, Debug)]
pub(crate) struct Config {
    pub(crate) body_limit: usize,
    pub(crate) ping: PingHandling,
    pub(crate) invalid_data: InvalidDataHandling,
    pub(crate) store_failure: StoreFailureHandling,
    pub(crate) in_flight_status: StatusCode,
    pub(crate) in_flight_retry_after: Option<Duration>,
    pub(crate) store_retry_after: Duration,
    pub(crate) lease: Duration,
    pub(crate) retention: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            body_limit: DEFAULT_BODY_LIMIT,
            ping: PingHandling::default(),
            invalid_data: InvalidDataHandling::default(),
            store_failure: StoreFailureHandling::default(),
            in_flight_status: StatusCode::SERVICE_UNAVAILABLE,
            in_flight_retry_after: Some(DEFAULT_RETRY_AFTER),
            store_retry_after: DEFAULT_RETRY_AFTER,
            lease: DEFAULT_LEASE,
            retention: DEFAULT_RETENTION,
        }
    }
}

impl Config {
    fn check(&self) -> Result<(), ConfigError> {
        if self.body_limit == 0 {
            return Err(ConfigError::ZeroBodyLimit);
        }
        if self.lease.is_zero() {
            return Err(ConfigError::ZeroLease);
        }
        let status = self.in_flight_status;
        if !(status.is_client_error() || status.is_server_error()) {
            return Err(ConfigError::InFlightStatusNotAnError(status));
        }
        Ok(())
    }
}

/// Builds a [`WebhookReceiver`]. Start with [`WebhookReceiver::builder`].
pub struct WebhookReceiverBuilder {
    tokens: Vec<SecretToken>,
    error: Option<ConfigError>,
    store: Option<Arc<dyn IdempotencyStore>>,
    inbox: Option<Arc<dyn Inbox>>,
    config: Config,
}

impl fmt::Debug for WebhookReceiverBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookReceiverBuilder")
            .field("tokens", &self.tokens)
            .field("store", &self.store)
            .field("inbox", &self.inbox)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl WebhookReceiverBuilder {
    pub(crate) fn new() -> Self {
        Self {
            tokens: Vec::new(),
            error: None,
            store: None,
            inbox: None,
            config: Config::default(),
        }
    }

    /// Accepts this token (call again to accept several, for rotation). Takes a
    /// [`SecretToken`] or its text; an invalid token fails [`build`](Self::build).
    pub fn token<T>(mut self, token: T) -> Self
    where
        T: TryInto<SecretToken>,
        T::Error: Into<ConfigError>,
    {
        match token.try_into() {
            Ok(token) => self.tokens.push(token),
            Err(e) => {
                self.error.get_or_insert(e.into());
            }
        }
        self
    }

    /// Accepts each of these tokens.
    pub fn tokens(mut self, tokens: impl IntoIterator<Item = SecretToken>) -> Self {
        self.tokens.extend(tokens);
        self
    }

    /// The idempotency store (default: a [`MemoryStore`] with its default capacity).
    pub fn store(mut self, store: impl IdempotencyStore) -> Self {
        self.store = Some(Arc::new(store));
        self
    }

    /// The idempotency store, already shared (chosen at run time, for example).
    pub fn shared_store(mut self, store: Arc<dyn IdempotencyStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// Inbox mode: every accepted event (after the method, token, body limit and parsing,
    /// which answer as in the synchronous mode) is stored in `inbox` and answered `200
    /// queued` once stored; a retransmission of a stored id is answered `200 duplicate`; an
    /// inbox that cannot store it gets 503 with `Retry-After` (nothing is acknowledged that
    /// is not stored). The handler behind the adapter does not run: a
    /// [`Worker`](crate::inbox::Worker) runs yours from the inbox. `PING` is answered as
    /// configured and never stored. The idempotency store is not used in this mode.
    pub fn inbox(mut self, inbox: Arc<dyn Inbox>) -> Self {
        self.inbox = Some(inbox);
        self
    }

    /// The largest body accepted, in bytes (default [`DEFAULT_BODY_LIMIT`], 64 KiB).
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.config.body_limit = bytes;
        self
    }

    /// What to do with a `PING` (default: answer it).
    pub fn ping(mut self, handling: PingHandling) -> Self {
        self.config.ping = handling;
        self
    }

    /// What to do with data of the wrong shape for a known type (default: 422).
    pub fn invalid_data(mut self, handling: InvalidDataHandling) -> Self {
        self.config.invalid_data = handling;
        self
    }

    /// What to do when the store fails (default: fail closed, 503).
    pub fn store_failure(mut self, handling: StoreFailureHandling) -> Self {
        self.config.store_failure = handling;
        self
    }

    /// The answer to a duplicate whose first delivery is still being handled: a 4xx or
    /// 5xx status, and an optional `Retry-After` (default: 503, 5 s).
    pub fn in_flight_response(mut self, status: StatusCode, retry_after: Option<Duration>) -> Self {
        self.config.in_flight_status = status;
        self.config.in_flight_retry_after = retry_after;
        self
    }

    /// The `Retry-After` sent with 503 when the store fails (default 5 s).
    pub fn store_retry_after(mut self, retry_after: Duration) -> Self {
        self.config.store_retry_after = retry_after;
        self
    }

    /// How long a claim protects a running handler (default [`DEFAULT_LEASE`], 60 s). A
    /// handler that runs longer may see a retransmission run concurrently, and cannot
    /// complete its claim afterwards: set it above your handler's longest run.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.config.lease = lease;
        self
    }

    /// How long a handled id is remembered (default [`DEFAULT_RETENTION`], 72 h).
    pub fn retention(mut self, retention: Duration) -> Self {
        self.config.retention = retention;
        self
    }

    /// The receiver, or what is wrong with the configuration.
    pub fn build(self) -> Result<WebhookReceiver, ConfigError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let verifier = TokenVerifier::new(self.tokens)?;
        self.config.check()?;
        Ok(WebhookReceiver {
            inner: Arc::new(Inner {
                verifier,
                store: self.store.unwrap_or_else(|| Arc::new(MemoryStore::new())),
                inbox: self.inbox,
                config: self.config,
                inflight: Arc::default(),
            }),
        })
    }
}
