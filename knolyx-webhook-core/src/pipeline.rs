//! The receive pipeline, framework-free: [`WebhookReceiver`].
//!
//! One order, defined once, for every adapter:
//!
//! 1. **Method**: PUT or POST, else 405 with `Allow`.
//! 2. **Token**, from the headers alone, before the body is read: exactly one
//!    `X-Webhook-Security-Token` equal to a configured token, else 401.
//! 3. **Body limit** (64 KiB by default): 413 past it. A declared `Content-Length` over the
//!    limit is refused before reading.
//! 4. **Envelope**: `{id, type, data}`, else 400.
//! 5. **Type**: a known type whose data does not fit its shape → 422 (by default); an
//!    unknown type is delivered as [`Event::Unknown`].
//! 6. **PING**: answered 200 by the pipeline (by default), never stored.
//! 7. **Claim** the id: a completed duplicate is answered 200 with
//!    [`DUPLICATE_HEADER`](crate::DUPLICATE_HEADER); a duplicate still in progress gets 503
//!    with `Retry-After` (configurable); a store failure gets 503 with `Retry-After`.
//!    Otherwise the handler runs, and its outcome settles the claim: 2xx completes it,
//!    anything else releases it so the retransmission runs the handler again.
//!
//! An adapter calls [`WebhookReceiver::begin`], then [`Reception::check_http_head`] (or
//! [`Reception::check_head`], for frameworks without the `http` crate's types) before reading
//! the body, reads at most [`Reception::body_limit`] bytes (refusing more with
//! [`Reception::too_large`]), then calls [`Reception::accept_body`]; the
//! [`Accepted::Deliver`] result carries the event for the handler and a [`Settlement`] to
//! finish with the handler's status.
//! [`WebhookReceiver::receive`] runs the steps in one call.
//!
//! ```
//! use bytes::Bytes;
//! use http::{HeaderMap, Method, StatusCode};
//! use knolyx_webhook_core::{Accepted, WebhookReceiver};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let receiver = WebhookReceiver::builder().token("s3cret-token").build()?;
//!
//! let mut headers = HeaderMap::new();
//! headers.insert("x-webhook-security-token", "s3cret-token".parse()?);
//! let body = Bytes::from_static(br#"{"id":"m-1","type":"COURSE_STARTED","data":{
//!     "user":{"id":1,"name":"Ana","email":"ana@example.com"},"course":{"id":2,"name":"Rust"}}}"#);
//!
//! // First delivery: the handler runs, then reports its status.
//! let Accepted::Deliver(delivery) = receiver.receive(&Method::PUT, &headers, body.clone()).await?
//! else { panic!("expected a delivery") };
//! let (event, settlement) = delivery.into_parts();
//! assert_eq!(event.event_type(), "COURSE_STARTED");
//! settlement.settle(StatusCode::OK.as_u16()).await;
//!
//! // The retransmission is answered by the pipeline: the handler does not run again.
//! let Accepted::Answered(answer) = receiver.receive(&Method::PUT, &headers, body).await?
//! else { panic!("expected a duplicate") };
//! assert_eq!(answer.outcome(), "duplicate");
//!
//! // A wrong token is refused with 401, before the body is looked at.
//! headers.insert("x-webhook-security-token", "guess".parse()?);
//! let rejection = receiver.receive(&Method::PUT, &headers, Bytes::new()).await.unwrap_err();
//! assert_eq!(rejection.status(), StatusCode::UNAUTHORIZED);
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use tracing::{Span, field};

use crate::event::{Event, ParseErrorKind, WebhookEvent};
use crate::rejection::{
    Answer, InFlight, InvalidEventData, MalformedPayload, MethodNotAllowed, PayloadTooLarge,
    Rejection, StoreUnavailable, Unauthorized,
};
use crate::store::{
    ClaimOutcome, IdempotencyStore, MemoryStore, OwnerToken, SettleOutcome, StoreError,
};
use crate::token::{InvalidToken, SecretToken, TOKEN_HEADER, TokenVerifier};

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
    /// Hand it to the handler as [`Event::Unknown`], keeping the type
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

/// Builds a [`WebhookReceiver`]. Start with [`WebhookReceiver::builder`].
pub struct WebhookReceiverBuilder {
    tokens: Vec<SecretToken>,
    error: Option<ConfigError>,
    store: Option<Arc<dyn IdempotencyStore>>,
    body_limit: usize,
    ping: PingHandling,
    invalid_data: InvalidDataHandling,
    store_failure: StoreFailureHandling,
    in_flight_status: StatusCode,
    in_flight_retry_after: Option<Duration>,
    store_retry_after: Duration,
    lease: Duration,
    retention: Duration,
}

impl fmt::Debug for WebhookReceiverBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookReceiverBuilder")
            .field("tokens", &self.tokens)
            .field("store", &self.store)
            .field("body_limit", &self.body_limit)
            .field("ping", &self.ping)
            .field("lease", &self.lease)
            .field("retention", &self.retention)
            .finish_non_exhaustive()
    }
}

impl WebhookReceiverBuilder {
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

    /// The largest body accepted, in bytes (default [`DEFAULT_BODY_LIMIT`], 64 KiB).
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }

    /// What to do with a `PING` (default: answer it).
    pub fn ping(mut self, handling: PingHandling) -> Self {
        self.ping = handling;
        self
    }

    /// What to do with data of the wrong shape for a known type (default: 422).
    pub fn invalid_data(mut self, handling: InvalidDataHandling) -> Self {
        self.invalid_data = handling;
        self
    }

    /// What to do when the store fails (default: fail closed, 503).
    pub fn store_failure(mut self, handling: StoreFailureHandling) -> Self {
        self.store_failure = handling;
        self
    }

    /// The answer to a duplicate whose first delivery is still being handled: a 4xx or
    /// 5xx status, and an optional `Retry-After` (default: 503, 5 s).
    pub fn in_flight_response(mut self, status: StatusCode, retry_after: Option<Duration>) -> Self {
        self.in_flight_status = status;
        self.in_flight_retry_after = retry_after;
        self
    }

    /// The `Retry-After` sent with 503 when the store fails (default 5 s).
    pub fn store_retry_after(mut self, retry_after: Duration) -> Self {
        self.store_retry_after = retry_after;
        self
    }

    /// How long a claim protects a running handler (default [`DEFAULT_LEASE`], 60 s). A
    /// handler that runs longer may see a retransmission run concurrently, and cannot
    /// complete its claim afterwards: set it above your handler's longest run.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// How long a handled id is remembered (default [`DEFAULT_RETENTION`], 72 h).
    pub fn retention(mut self, retention: Duration) -> Self {
        self.retention = retention;
        self
    }

    /// The receiver, or what is wrong with the configuration.
    pub fn build(self) -> Result<WebhookReceiver, ConfigError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let verifier = TokenVerifier::new(self.tokens)?;
        if self.body_limit == 0 {
            return Err(ConfigError::ZeroBodyLimit);
        }
        if self.lease.is_zero() {
            return Err(ConfigError::ZeroLease);
        }
        if !(self.in_flight_status.is_client_error() || self.in_flight_status.is_server_error()) {
            return Err(ConfigError::InFlightStatusNotAnError(self.in_flight_status));
        }
        Ok(WebhookReceiver {
            inner: Arc::new(Inner {
                verifier,
                store: self.store.unwrap_or_else(|| Arc::new(MemoryStore::new())),
                body_limit: self.body_limit,
                ping: self.ping,
                invalid_data: self.invalid_data,
                store_failure: self.store_failure,
                in_flight_status: self.in_flight_status,
                in_flight_retry_after: self.in_flight_retry_after,
                store_retry_after: self.store_retry_after,
                lease: self.lease,
                retention: self.retention,
            }),
        })
    }
}

/// The configured receive pipeline. Cheap to clone (an `Arc` inside); share one across
/// routes, workers and threads.
#[derive(Clone)]
pub struct WebhookReceiver {
    inner: Arc<Inner>,
}

struct Inner {
    verifier: TokenVerifier,
    store: Arc<dyn IdempotencyStore>,
    body_limit: usize,
    ping: PingHandling,
    invalid_data: InvalidDataHandling,
    store_failure: StoreFailureHandling,
    in_flight_status: StatusCode,
    in_flight_retry_after: Option<Duration>,
    store_retry_after: Duration,
    lease: Duration,
    retention: Duration,
}

impl fmt::Debug for WebhookReceiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        f.debug_struct("WebhookReceiver")
            .field("verifier", &i.verifier)
            .field("store", &i.store)
            .field("body_limit", &i.body_limit)
            .field("ping", &i.ping)
            .field("invalid_data", &i.invalid_data)
            .field("store_failure", &i.store_failure)
            .field("in_flight_status", &i.in_flight_status)
            .field("lease", &i.lease)
            .field("retention", &i.retention)
            .finish()
    }
}

impl WebhookReceiver {
    /// A builder. At least one token is required; everything else has a default.
    pub fn builder() -> WebhookReceiverBuilder {
        WebhookReceiverBuilder {
            tokens: Vec::new(),
            error: None,
            store: None,
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

    /// The largest body accepted, in bytes.
    pub fn body_limit(&self) -> usize {
        self.inner.body_limit
    }

    /// The idempotency store.
    pub fn store(&self) -> &Arc<dyn IdempotencyStore> {
        &self.inner.store
    }

    /// Starts one delivery: opens its tracing span (`knolyx_webhook.delivery`, with the
    /// fields `id`, `event_type` and `outcome`; never the token or the body).
    pub fn begin(&self) -> Reception {
        Reception {
            receiver: self.clone(),
            span: tracing::info_span!(
                "knolyx_webhook.delivery",
                id = field::Empty,
                event_type = field::Empty,
                outcome = field::Empty,
            ),
        }
    }

    /// All the steps in one call: [`check_http_head`](Reception::check_http_head), then
    /// [`accept_body`](Reception::accept_body).
    pub async fn receive(
        &self,
        method: &Method,
        headers: &HeaderMap,
        body: Bytes,
    ) -> Result<Accepted, Rejection> {
        let reception = self.begin();
        reception.check_http_head(method, headers)?;
        reception.accept_body(body).await
    }
}

/// One delivery going through the pipeline; see [`WebhookReceiver::begin`].
#[derive(Debug)]
pub struct Reception {
    receiver: WebhookReceiver,
    span: Span,
}

impl Reception {
    /// The delivery's tracing span. Adapters run the handler inside it.
    pub fn span(&self) -> &Span {
        &self.span
    }

    /// The largest body accepted, in bytes: read no more than this.
    pub fn body_limit(&self) -> usize {
        self.receiver.inner.body_limit
    }

    /// Steps 1 to 3 from the request head alone: the method, the token header's values
    /// (every occurrence of `X-Webhook-Security-Token`, in order) and the declared
    /// `Content-Length`, if any.
    pub fn check_head<'a>(
        &self,
        method: &str,
        token_values: impl IntoIterator<Item = &'a [u8]>,
        content_length: Option<u64>,
    ) -> Result<(), Rejection> {
        let result = self.check_head_inner(method, token_values, content_length);
        if let Err(rejection) = &result {
            self.rejected(rejection);
        }
        result
    }

    fn check_head_inner<'a>(
        &self,
        method: &str,
        token_values: impl IntoIterator<Item = &'a [u8]>,
        content_length: Option<u64>,
    ) -> Result<(), Rejection> {
        if method != "PUT" && method != "POST" {
            return Err(MethodNotAllowed.into());
        }
        let mut values = token_values.into_iter();
        let token = match (values.next(), values.next()) {
            (Some(token), None) => token,
            _ => return Err(Unauthorized.into()),
        };
        if !self.receiver.inner.verifier.verify(token) {
            return Err(Unauthorized.into());
        }
        let limit = self.receiver.inner.body_limit;
        if content_length.is_some_and(|len| len > limit as u64) {
            return Err(PayloadTooLarge { limit }.into());
        }
        Ok(())
    }

    /// [`check_head`](Self::check_head) for the `http` crate's types.
    pub fn check_http_head(&self, method: &Method, headers: &HeaderMap) -> Result<(), Rejection> {
        let content_length = headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        self.check_head(
            method.as_str(),
            headers.get_all(TOKEN_HEADER).iter().map(|v| v.as_bytes()),
            content_length,
        )
    }

    /// A rejection found by the adapter itself (the body could not be read, or was too
    /// long), recorded in the span and logged like the pipeline's own.
    pub fn reject(&self, rejection: Rejection) -> Rejection {
        self.rejected(&rejection);
        rejection
    }

    /// The 413 for a body found over the limit while reading it (without a
    /// `Content-Length`, say), recorded and logged like the pipeline's own rejections.
    pub fn too_large(&self) -> Rejection {
        self.reject(PayloadTooLarge::new(self.receiver.inner.body_limit).into())
    }

    /// Steps 3 to 7 on the whole body: limit, envelope, type, PING, claim.
    pub async fn accept_body(self, body: Bytes) -> Result<Accepted, Rejection> {
        let result = self.accept_body_inner(body).await;
        match &result {
            Err(rejection) => self.rejected(rejection),
            Ok(Accepted::Answered(answer)) => {
                self.span.record("outcome", answer.outcome());
                self.span
                    .in_scope(|| tracing::debug!(outcome = answer.outcome(), "answered"));
            }
            Ok(Accepted::Deliver(_)) => {}
        }
        result
    }

    async fn accept_body_inner(&self, body: Bytes) -> Result<Accepted, Rejection> {
        let inner = &self.receiver.inner;
        if body.len() > inner.body_limit {
            return Err(PayloadTooLarge {
                limit: inner.body_limit,
            }
            .into());
        }
        let lenient = inner.invalid_data == InvalidDataHandling::DeliverAsUnknown;
        let event = WebhookEvent::parse(body, lenient).map_err(|e| {
            if let Some((id, event_type)) = e.id_and_type() {
                self.span.record("id", id);
                self.span.record("event_type", event_type);
            }
            match e.kind() {
                ParseErrorKind::InvalidData => Rejection::from(InvalidEventData::new(e)),
                _ => MalformedPayload::new(e).into(),
            }
        })?;
        self.span.record("id", event.id());
        self.span.record("event_type", event.event_type());

        if matches!(event.event(), Event::Ping(_)) {
            return match inner.ping {
                PingHandling::Answer => Ok(Accepted::Answered(Answer::Ping)),
                PingHandling::Forward => Ok(self.deliver(event, None)),
            };
        }

        let owner = OwnerToken::generate();
        match inner.store.claim(event.id(), owner, inner.lease).await {
            Ok(ClaimOutcome::Claimed) => Ok(self.deliver(event, Some(owner))),
            Ok(ClaimOutcome::Completed) => Ok(Accepted::Answered(Answer::Duplicate)),
            Ok(ClaimOutcome::InProgress) => {
                Err(InFlight::new(inner.in_flight_status, inner.in_flight_retry_after).into())
            }
            Err(error) => match inner.store_failure {
                StoreFailureHandling::FailClosed => {
                    Err(StoreUnavailable::new(error, inner.store_retry_after).into())
                }
                StoreFailureHandling::FailOpen => {
                    self.span.in_scope(|| {
                        tracing::error!(
                            error = %error,
                            "idempotency store failed; running the handler without a claim \
                             (fail-open)"
                        )
                    });
                    Ok(self.deliver(event, None))
                }
            },
        }
    }

    fn deliver(&self, event: WebhookEvent, owner: Option<OwnerToken>) -> Accepted {
        let claim = owner.map(|owner| ClaimHandle {
            id: event.shared_id(),
            owner,
            store: Arc::clone(&self.receiver.inner.store),
            retention: self.receiver.inner.retention,
            completed_by_handler: OnceLock::new(),
        });
        Accepted::Deliver(Delivery {
            event,
            settlement: Settlement {
                claim,
                span: self.span.clone(),
            },
        })
    }

    fn rejected(&self, rejection: &Rejection) {
        let outcome = rejection.outcome();
        self.span.record("outcome", outcome);
        let _entered = self.span.enter();
        match rejection {
            Rejection::StoreUnavailable(r) => {
                tracing::error!(outcome, error = %r.store_error(), "idempotency store failed")
            }
            Rejection::InFlight(_) => tracing::info!(outcome, "duplicate while in progress"),
            Rejection::MalformedPayload(r) => {
                // Only the error's fixed text: the parser's own message may quote the body.
                tracing::warn!(outcome, reason = %r.parse_error(), "rejected")
            }
            _ => tracing::warn!(outcome, "rejected"),
        }
    }
}

/// What the pipeline decided for a delivery that passed its checks.
#[derive(Debug)]
#[must_use = "a delivery must be handed to the handler and settled"]
// Moved once per delivery, straight into a match: boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
pub enum Accepted {
    /// Run the handler with this event, then settle with its outcome.
    Deliver(Delivery),
    /// Answered by the pipeline (PING, completed duplicate): do not run the handler.
    Answered(Answer),
}

/// An event for the handler, and the [`Settlement`] to finish once it has run.
#[derive(Debug)]
#[must_use = "a delivery must be handed to the handler and settled"]
pub struct Delivery {
    event: WebhookEvent,
    settlement: Settlement,
}

impl Delivery {
    /// The event.
    pub fn event(&self) -> &WebhookEvent {
        &self.event
    }

    /// The event for the handler, and the settlement for the adapter.
    pub fn into_parts(self) -> (WebhookEvent, Settlement) {
        (self.event, self.settlement)
    }
}

struct ClaimHandle {
    id: Arc<str>,
    owner: OwnerToken,
    store: Arc<dyn IdempotencyStore>,
    retention: Duration,
    /// Shared with the [`ClaimRef`]s handed out; allocated only when one is.
    completed_by_handler: OnceLock<Arc<AtomicBool>>,
}

/// The claim of the delivery being handled, handed to the handler (adapters put it in the
/// request's extensions) so that it can complete the claim itself, inside its own
/// transaction, together with its side effect: see
/// `knolyx_webhook_postgres::PostgresStore::complete_in_transaction`. Then no crash can
/// separate the side effect from the completion.
///
/// A store that completes through a `ClaimRef` calls [`mark_completed`](Self::mark_completed)
/// once its fenced completion succeeded; the [`Settlement`] then does not complete again.
/// Should the transaction roll back, answer with an error status: the settlement releases
/// the claim (its fenced release still finds it in progress) and Knolyx's retry runs the
/// handler.
#[derive(Clone)]
pub struct ClaimRef {
    id: Arc<str>,
    owner: OwnerToken,
    retention: Duration,
    completed_by_handler: Arc<AtomicBool>,
}

impl fmt::Debug for ClaimRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClaimRef")
            .field("id", &self.id)
            .field("owner", &self.owner)
            .field("completed", &self.is_marked_completed())
            .finish()
    }
}

impl ClaimRef {
    /// The message id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The owner token that fences the claim.
    pub fn owner(&self) -> OwnerToken {
        self.owner
    }

    /// How long the completed id is to be remembered.
    pub fn retention(&self) -> Duration {
        self.retention
    }

    /// Records that the claim was completed by the handler (in its own transaction).
    pub fn mark_completed(&self) {
        self.completed_by_handler.store(true, Ordering::SeqCst);
    }

    /// Whether [`mark_completed`](Self::mark_completed) was called.
    pub fn is_marked_completed(&self) -> bool {
        self.completed_by_handler.load(Ordering::SeqCst)
    }
}

/// Finishes a delivery once its handler has run: a 2xx completes the claim (the id is then
/// a duplicate for the retention window), anything else releases it (the retransmission
/// runs the handler).
///
/// Dropped without being settled (the handler panicked, or the request was dropped), it
/// releases the claim on the current Tokio runtime when the `tokio` feature is on and a
/// runtime is running; otherwise the claim's lease expires and a retransmission then runs
/// the handler. The release runs as a spawned task, so a retransmission arriving in the
/// instant after a panic may still be answered as in flight (503, retryable).
#[must_use = "settle the delivery with the handler's outcome"]
pub struct Settlement {
    claim: Option<ClaimHandle>,
    span: Span,
}

impl fmt::Debug for Settlement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settlement")
            .field("id", &self.claim.as_ref().map(|c| &c.id))
            .field("owner", &self.claim.as_ref().map(|c| c.owner))
            .finish()
    }
}

/// What settling did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Settled {
    /// The handler succeeded and the id is now completed.
    Completed,
    /// The handler failed and the claim was released: a retransmission will run it.
    Released,
    /// There was no claim to settle (a forwarded PING, or fail-open after a store failure).
    NoClaim,
    /// The claim was no longer ours: the lease expired (and perhaps another delivery took it
    /// over) before the handler finished.
    LeaseLost,
    /// The store failed while settling; the lease will expire.
    StoreFailed,
}

impl Settlement {
    /// The delivery's tracing span: run the handler inside it.
    pub fn span(&self) -> &Span {
        &self.span
    }

    /// Whether there is a claim to settle.
    pub fn has_claim(&self) -> bool {
        self.claim.is_some()
    }

    /// The claim, for a handler that completes it in its own transaction (adapters insert
    /// it in the request's extensions). `None` without a claim.
    pub fn claim_ref(&self) -> Option<ClaimRef> {
        self.claim.as_ref().map(|c| ClaimRef {
            id: Arc::clone(&c.id),
            owner: c.owner,
            retention: c.retention,
            completed_by_handler: Arc::clone(
                c.completed_by_handler
                    .get_or_init(|| Arc::new(AtomicBool::new(false))),
            ),
        })
    }

    /// Settles by the handler's HTTP status: 2xx completes, anything else releases.
    pub async fn settle(self, status: u16) -> Settled {
        self.settle_with((200..300).contains(&status)).await
    }

    /// Settles by whether the handler succeeded.
    pub async fn settle_with(mut self, handler_succeeded: bool) -> Settled {
        let Some(claim) = self.claim.take() else {
            let outcome = if handler_succeeded {
                "handled"
            } else {
                "handler_failed"
            };
            self.span.record("outcome", outcome);
            return Settled::NoClaim;
        };
        // Should this future be dropped while the store answers (the client hung up and the
        // server dropped the request), the guard finishes the same operation on the runtime:
        // a handler's success must not be lost to a hang-up. Repeating a settle is harmless,
        // as settling is fenced by the owner token.
        let guard = SettleGuard {
            claim: Some(claim),
            succeeded: handler_succeeded,
        };
        let result = match &guard.claim {
            Some(claim) => claim.settle(handler_succeeded).await,
            None => Ok(SettleOutcome::NotOwner),
        };
        guard.disarm();
        let (outcome, settled) = match (handler_succeeded, &result) {
            (true, Ok(SettleOutcome::Settled)) => ("handled", Settled::Completed),
            (false, Ok(SettleOutcome::Settled)) => ("handler_failed", Settled::Released),
            (_, Ok(SettleOutcome::NotOwner)) => ("lease_lost", Settled::LeaseLost),
            (_, Err(_)) => ("settle_failed", Settled::StoreFailed),
        };
        self.span.record("outcome", outcome);
        let _entered = self.span.enter();
        match (settled, result) {
            (Settled::Completed, _) => tracing::info!(outcome, "handled"),
            (Settled::Released, _) => {
                tracing::warn!(outcome, "handler failed; claim released for a retry")
            }
            (_, Err(error)) => tracing::error!(
                outcome,
                error = &error as &dyn std::error::Error,
                "could not settle the claim; its lease will expire"
            ),
            _ => tracing::warn!(
                outcome,
                "the handler outlived its lease; the claim could not be settled"
            ),
        }
        settled
    }

    /// Settles as [`settle`](Self::settle) would for a failure: releases the claim.
    pub async fn release(self) -> Settled {
        self.settle_with(false).await
    }
}

impl ClaimHandle {
    /// Completes (the handler succeeded) or releases the claim.
    async fn settle(&self, handler_succeeded: bool) -> Result<SettleOutcome, StoreError> {
        let marked = self
            .completed_by_handler
            .get()
            .is_some_and(|flag| flag.load(Ordering::SeqCst));
        if handler_succeeded && marked {
            // Completed in the handler's own transaction, fenced by the same owner.
            Ok(SettleOutcome::Settled)
        } else if handler_succeeded {
            self.store
                .complete(&self.id, self.owner, self.retention)
                .await
        } else {
            self.store.release(&self.id, self.owner).await
        }
    }

    /// Settles on the current Tokio runtime, detached from the request (`tokio` feature).
    /// Returns false when there is no runtime to do it: the lease then expires.
    fn settle_detached(self, handler_succeeded: bool) -> bool {
        #[cfg(feature = "tokio")]
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = self.settle(handler_succeeded).await;
            });
            return true;
        }
        let _ = handler_succeeded;
        false
    }
}

/// Finishes a settle whose future was dropped half-way.
struct SettleGuard {
    claim: Option<ClaimHandle>,
    succeeded: bool,
}

impl SettleGuard {
    fn disarm(mut self) {
        self.claim = None;
    }
}

impl Drop for SettleGuard {
    fn drop(&mut self) {
        if let Some(claim) = self.claim.take() {
            let detached = claim.settle_detached(self.succeeded);
            tracing::warn!(
                detached,
                "the request was dropped while its claim was being settled; settling it {}",
                if detached {
                    "in the background"
                } else {
                    "by lease expiry"
                }
            );
        }
    }
}

impl Drop for Settlement {
    fn drop(&mut self) {
        let Some(claim) = self.claim.take() else {
            return;
        };
        self.span.record("outcome", "abandoned");
        let _entered = self.span.enter();
        if claim.settle_detached(false) {
            tracing::warn!(
                outcome = "abandoned",
                "handler did not finish (panic or dropped request); releasing the claim"
            );
        } else {
            tracing::warn!(
                outcome = "abandoned",
                "handler did not finish (panic or dropped request); the claim's lease will expire"
            );
        }
    }
}
