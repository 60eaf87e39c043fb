//! The idempotency store: remembers which message ids are being handled and which were
//! handled, so that a retransmission never runs the handler twice.
//!
//! # States
//!
//! Each message id is, in a store, in one of three states:
//!
//! ```text
//!            claim                      complete (by the owner, lease not expired)
//!  absent ────────────▶ in progress ─────────────────────────────▶ completed
//!    ▲                 (owner, lease)                          (until retention expires)
//!    │  release (by the owner) │                                        │
//!    └─────────────────────────┘◀──── lease expires: the next claim ────┘ retention expires
//!                                     takes it over
//! ```
//!
//! - [`claim`](IdempotencyStore::claim) is atomic: of any number of concurrent claims of an
//!   absent id, exactly one gets [`ClaimOutcome::Claimed`]. A claim of an id in progress
//!   gets [`ClaimOutcome::InProgress`], unless its lease has expired, in which case the new
//!   claim takes it over. A claim of a completed id gets [`ClaimOutcome::Completed`] until
//!   its retention expires, after which the id is absent again.
//! - [`complete`](IdempotencyStore::complete) and [`release`](IdempotencyStore::release)
//!   are *fenced*: they apply only when the id is in progress, owned by the given
//!   [`OwnerToken`], and its lease has not expired. Otherwise they change nothing and
//!   answer [`SettleOutcome::NotOwner`]. So a handler that outlived its lease cannot settle
//!   the claim of the delivery that took over.
//!
//! The pipeline claims before the handler runs and completes only after the handler
//! succeeded; a failed handler releases its claim, so the retransmission runs the handler.
//!
//! # Implement your own store
//!
//! Implement [`IdempotencyStore`] with [`macro@async_trait`], and prove it with the conformance
//! suite (`knolyx_webhook_core::testing::conformance`, feature `testing`), which every
//! shipped store passes too. A complete (if unambitious) store over a `Mutex<HashMap>`:
//!
//! ```
//! use std::collections::HashMap;
//! use std::sync::Mutex;
//! use std::time::{Duration, Instant};
//!
//! use knolyx_webhook_core::store::{
//!     async_trait, ClaimOutcome, IdempotencyStore, OwnerToken, SettleOutcome, StoreError,
//! };
//!
//! #[derive(Debug)]
//! enum State {
//!     InProgress { owner: OwnerToken, until: Instant },
//!     Completed { until: Instant },
//! }
//!
//! #[derive(Debug, Default)]
//! struct MyStore {
//!     ids: Mutex<HashMap<String, State>>,
//! }
//!
//! #[async_trait]
//! impl IdempotencyStore for MyStore {
//!     async fn claim(
//!         &self,
//!         id: &str,
//!         owner: OwnerToken,
//!         lease: Duration,
//!     ) -> Result<ClaimOutcome, StoreError> {
//!         let mut ids = self.ids.lock().map_err(|_| StoreError::backend("lock poisoned"))?;
//!         let now = Instant::now();
//!         match ids.get(id) {
//!             Some(State::InProgress { until, .. }) if *until > now => {
//!                 return Ok(ClaimOutcome::InProgress)
//!             }
//!             Some(State::Completed { until }) if *until > now => {
//!                 return Ok(ClaimOutcome::Completed)
//!             }
//!             _ => {} // absent, or expired: claim it
//!         }
//!         ids.insert(id.to_owned(), State::InProgress { owner, until: now + lease });
//!         Ok(ClaimOutcome::Claimed)
//!     }
//!
//!     async fn complete(
//!         &self,
//!         id: &str,
//!         owner: OwnerToken,
//!         retention: Duration,
//!     ) -> Result<SettleOutcome, StoreError> {
//!         let mut ids = self.ids.lock().map_err(|_| StoreError::backend("lock poisoned"))?;
//!         let now = Instant::now();
//!         match ids.get_mut(id) {
//!             Some(state @ State::InProgress { .. }) if state.is_owned_by(owner, now) => {
//!                 *state = State::Completed { until: now + retention };
//!                 Ok(SettleOutcome::Settled)
//!             }
//!             _ => Ok(SettleOutcome::NotOwner),
//!         }
//!     }
//!
//!     async fn release(&self, id: &str, owner: OwnerToken) -> Result<SettleOutcome, StoreError> {
//!         let mut ids = self.ids.lock().map_err(|_| StoreError::backend("lock poisoned"))?;
//!         match ids.get(id) {
//!             Some(state) if state.is_owned_by(owner, Instant::now()) => {
//!                 ids.remove(id);
//!                 Ok(SettleOutcome::Settled)
//!             }
//!             _ => Ok(SettleOutcome::NotOwner),
//!         }
//!     }
//! }
//!
//! impl State {
//!     fn is_owned_by(&self, who: OwnerToken, now: Instant) -> bool {
//!         matches!(self, State::InProgress { owner, until } if *owner == who && *until > now)
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! // Prove it (the suite panics with a description of the first rule broken):
//! # #[cfg(feature = "testing")]
//! knolyx_webhook_core::testing::conformance::run(std::sync::Arc::new(MyStore::default())).await;
//! # }
//! ```
//!
//! A store is then handed to the receiver with
//! [`WebhookReceiverBuilder::store`](crate::WebhookReceiverBuilder::store).

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

pub use async_trait::async_trait;

mod memory;
mod table;

pub use memory::{DEFAULT_CAPACITY, MemoryStore, MemoryStoreBuilder};

/// The boxed error type that store errors carry as their source.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// The result of a store operation.
pub type StoreResult<T> = Result<T, StoreError>;

/// What a [`claim`](IdempotencyStore::claim) found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ClaimOutcome {
    /// The id was absent (or its lease or retention had expired): the caller now owns it and
    /// runs the handler.
    Claimed,
    /// Another delivery of this id holds an unexpired lease: its handler is running.
    InProgress,
    /// The id was handled within the retention window: a duplicate.
    Completed,
}

/// What a fenced [`complete`](IdempotencyStore::complete) or
/// [`release`](IdempotencyStore::release) did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SettleOutcome {
    /// Applied: the caller owned the unexpired claim.
    Settled,
    /// Nothing changed: the id is not in progress under this owner with an unexpired lease
    /// (its lease expired, another delivery took it over, or it was already settled).
    NotOwner,
}

/// Identifies the holder of a claim, so that only it can settle the claim.
///
/// Tokens are unique across processes: 64 random bits chosen once per process and a 64-bit
/// counter. A token is not a secret.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct OwnerToken(u128);

static PROCESS_PREFIX: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
static COUNTER: AtomicU64 = AtomicU64::new(0);

impl OwnerToken {
    /// A new token, distinct from every other token generated by any process.
    pub fn generate() -> Self {
        let prefix = *PROCESS_PREFIX.get_or_init(|| {
            let mut buf = [0u8; 8];
            if getrandom::fill(&mut buf).is_err() {
                // No OS randomness: fall back on the clock and the process id, which still
                // separate processes in practice.
                let nanos = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(0);
                buf = (nanos ^ (u64::from(std::process::id()) << 32)).to_le_bytes();
            }
            u64::from_le_bytes(buf)
        });
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        Self((u128::from(prefix) << 64) | u128::from(n))
    }

    /// The token as a number.
    pub fn as_u128(self) -> u128 {
        self.0
    }

    /// A token from a number, as read back from a store.
    pub fn from_u128(value: u128) -> Self {
        Self(value)
    }
}

/// Formats as 32 lowercase hexadecimal digits (how the shared stores save it).
impl fmt::Display for OwnerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl fmt::Debug for OwnerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OwnerToken({self})")
    }
}

/// An idempotency store: atomic claims, fenced settling. See the [module docs](self).
///
/// The trait is object-safe (use `Arc<dyn IdempotencyStore>` to choose a backend at run
/// time), and its futures are `Send`.
#[async_trait]
pub trait IdempotencyStore: fmt::Debug + Send + Sync + 'static {
    /// Atomically claims `id` for `owner`, for `lease`.
    async fn claim(
        &self,
        id: &str,
        owner: OwnerToken,
        lease: Duration,
    ) -> StoreResult<ClaimOutcome>;

    /// Marks `id` completed, to be remembered for `retention`, if `owner` holds its
    /// unexpired claim.
    async fn complete(
        &self,
        id: &str,
        owner: OwnerToken,
        retention: Duration,
    ) -> StoreResult<SettleOutcome>;

    /// Forgets `id`, if `owner` holds its unexpired claim, so that the next delivery of it
    /// runs the handler.
    async fn release(&self, id: &str, owner: OwnerToken) -> StoreResult<SettleOutcome>;

    /// The state of `id`, for an operator (`knolyx-webhook store show`): absent (never
    /// seen, released, or expired), in progress with the time left on its lease, or
    /// completed with the time left of its retention. Read-only.
    ///
    /// Every shipped store implements it; the default answers
    /// [`StoreErrorKind::Unsupported`], for stores written before it existed.
    async fn inspect(&self, id: &str) -> StoreResult<IdState> {
        let _ = id;
        Err(StoreError::unsupported("IdempotencyStore::inspect"))
    }

    /// Frees `id` if it is in progress, whoever holds it (unfenced: an operator's action,
    /// for an id stuck after a crash; `knolyx-webhook store release`), so that its next
    /// delivery runs the handler at once instead of after the lease. Returns whether an
    /// id in progress was freed; a completed or absent id is left alone (`false`).
    ///
    /// A handler still running for the id then finds its claim gone when it settles
    /// ([`SettleOutcome::NotOwner`]). Every shipped store implements it; the default
    /// answers [`StoreErrorKind::Unsupported`].
    async fn force_release(&self, id: &str) -> StoreResult<bool> {
        let _ = id;
        Err(StoreError::unsupported("IdempotencyStore::force_release"))
    }
}

/// The state of an id in a store: [`IdempotencyStore::inspect`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IdState {
    /// Not in the store: never claimed, released, or its lease or retention expired.
    Absent,
    /// Claimed, its handler (presumably) running.
    InProgress {
        /// How long until the lease expires and a retransmission takes the id over.
        lease_left: Duration,
    },
    /// Handled: retransmissions are duplicates.
    Completed {
        /// How long the id is still remembered.
        retention_left: Duration,
    },
}

impl IdState {
    /// `absent`, `in_progress` or `completed`.
    pub fn as_str(&self) -> &'static str {
        match self {
            IdState::Absent => "absent",
            IdState::InProgress { .. } => "in_progress",
            IdState::Completed { .. } => "completed",
        }
    }
}

#[async_trait]
impl<S: IdempotencyStore + ?Sized> IdempotencyStore for Arc<S> {
    async fn claim(
        &self,
        id: &str,
        owner: OwnerToken,
        lease: Duration,
    ) -> StoreResult<ClaimOutcome> {
        (**self).claim(id, owner, lease).await
    }

    async fn complete(
        &self,
        id: &str,
        owner: OwnerToken,
        retention: Duration,
    ) -> StoreResult<SettleOutcome> {
        (**self).complete(id, owner, retention).await
    }

    async fn release(&self, id: &str, owner: OwnerToken) -> StoreResult<SettleOutcome> {
        (**self).release(id, owner).await
    }

    async fn inspect(&self, id: &str) -> StoreResult<IdState> {
        (**self).inspect(id).await
    }

    async fn force_release(&self, id: &str) -> StoreResult<bool> {
        (**self).force_release(id).await
    }
}

#[async_trait]
impl<S: IdempotencyStore + ?Sized> IdempotencyStore for Box<S> {
    async fn claim(
        &self,
        id: &str,
        owner: OwnerToken,
        lease: Duration,
    ) -> StoreResult<ClaimOutcome> {
        (**self).claim(id, owner, lease).await
    }

    async fn complete(
        &self,
        id: &str,
        owner: OwnerToken,
        retention: Duration,
    ) -> StoreResult<SettleOutcome> {
        (**self).complete(id, owner, retention).await
    }

    async fn release(&self, id: &str, owner: OwnerToken) -> StoreResult<SettleOutcome> {
        (**self).release(id, owner).await
    }

    async fn inspect(&self, id: &str) -> StoreResult<IdState> {
        (**self).inspect(id).await
    }

    async fn force_release(&self, id: &str) -> StoreResult<bool> {
        (**self).force_release(id).await
    }
}

/// Whole milliseconds of `d`, rounded down, saturating at `u64::MAX`: for stores that keep
/// time in milliseconds.
pub fn saturating_millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A lease or a retention as whole milliseconds for a backend: at least 1 (Redis refuses a
/// `PX` of 0) and at most `max` (what the backend's clock or integer type can hold), so
/// that no configured duration, however large, overflows.
///
/// ```
/// use std::time::Duration;
/// use knolyx_webhook_core::store::ttl_millis;
///
/// assert_eq!(ttl_millis(Duration::from_secs(60), u64::MAX), 60_000);
/// assert_eq!(ttl_millis(Duration::ZERO, u64::MAX), 1);
/// assert_eq!(ttl_millis(Duration::MAX, 1_000), 1_000);
/// ```
pub fn ttl_millis(d: Duration, max: u64) -> u64 {
    saturating_millis(d).clamp(1, max.max(1))
}

/// Runs one store operation within `limit` (the store's operation timeout), mapping the
/// backend's error with `map`; past the limit, a [`StoreErrorKind::Timeout`] error. For
/// store implementations (feature `tokio`).
///
/// The operation is dropped at the limit, but whatever it had sent may still reach the
/// server: the pipeline treats a failed claim as ambiguous and releases it behind.
#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub async fn within<T, E>(
    limit: Duration,
    operation: impl std::future::Future<Output = Result<T, E>>,
    map: impl FnOnce(E) -> StoreError,
) -> StoreResult<T> {
    match tokio::time::timeout(limit, operation).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(map(error)),
        Err(_) => Err(StoreError::timeout(limit)),
    }
}

/// What kind of failure a [`StoreError`] is: logged as the `kind` field of the pipeline's
/// log lines ([`as_str`](Self::as_str)), so that an operator can tell a wrong password from
/// an outage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StoreErrorKind {
    /// The backing service cannot be reached (connection reset or closed, pool exhausted,
    /// the service starting up or failing over).
    Unavailable,
    /// Nothing listens at the configured address: the connection was refused.
    Refused,
    /// The backing service did not answer in time.
    Timeout,
    /// The backing service refused the credentials (Redis `NOAUTH`/`WRONGPASS`, PostgreSQL
    /// `28P01`/`28000`).
    Auth,
    /// The store is configured for another setup than the one it reaches (a Redis Cluster
    /// node addressed as a single server, a pooler that breaks prepared statements, a
    /// missing table or database).
    Misconfigured,
    /// The store has no room for another claim (the memory store full of ids in progress,
    /// a Redis server at its memory limit).
    Full,
    /// Any other failure of the backend (an unexpected reply, a query error).
    Backend,
    /// The store does not implement the operation (a default method of the trait).
    Unsupported,
}

impl StoreErrorKind {
    /// A short lowercase word: `unavailable`, `refused`, `timeout`, `auth`,
    /// `misconfigured`, `full` or `backend`.
    pub fn as_str(self) -> &'static str {
        match self {
            StoreErrorKind::Unavailable => "unavailable",
            StoreErrorKind::Refused => "refused",
            StoreErrorKind::Timeout => "timeout",
            StoreErrorKind::Auth => "auth",
            StoreErrorKind::Misconfigured => "misconfigured",
            StoreErrorKind::Full => "full",
            StoreErrorKind::Backend => "backend",
            StoreErrorKind::Unsupported => "unsupported",
        }
    }
}

impl fmt::Display for StoreErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A store operation failed. The pipeline answers 503 with `Retry-After` (fail closed).
#[derive(Debug)]
pub struct StoreError {
    kind: StoreErrorKind,
    message: std::borrow::Cow<'static, str>,
    source: Option<BoxError>,
}

impl StoreError {
    /// An error of the given kind, with a short message and its source.
    pub fn new(
        kind: StoreErrorKind,
        message: impl Into<std::borrow::Cow<'static, str>>,
        source: Option<BoxError>,
    ) -> Self {
        Self {
            kind,
            message: message.into(),
            source,
        }
    }

    /// The backing service cannot be reached; `source` says why.
    pub fn unavailable(source: impl Into<BoxError>) -> Self {
        Self::new(
            StoreErrorKind::Unavailable,
            "store unavailable",
            Some(source.into()),
        )
    }

    /// The backing service did not answer within `after`.
    pub fn timeout(after: Duration) -> Self {
        Self::new(
            StoreErrorKind::Timeout,
            format!("store did not answer within {after:?}"),
            None,
        )
    }

    /// The backing service did not answer in time, as its client reported in `source`.
    pub fn timeout_with_source(source: impl Into<BoxError>) -> Self {
        Self::new(
            StoreErrorKind::Timeout,
            "store did not answer in time",
            Some(source.into()),
        )
    }

    /// Any other failure of the backend; `source` says what.
    pub fn backend(source: impl Into<BoxError>) -> Self {
        Self::new(StoreErrorKind::Backend, "store failed", Some(source.into()))
    }

    /// The store does not implement `operation` (a third-party store written before it was
    /// added to its trait).
    pub fn unsupported(operation: &'static str) -> Self {
        Self::new(
            StoreErrorKind::Unsupported,
            format!("this store does not implement {operation}"),
            None,
        )
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> StoreErrorKind {
        self.kind
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl StdError for StoreError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source.as_deref().map(|e| e as _)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_tokens_are_distinct_and_print_as_hex() {
        let a = OwnerToken::generate();
        let b = OwnerToken::generate();
        assert_ne!(a, b);
        assert_eq!(a.to_string().len(), 32);
        assert_eq!(OwnerToken::from_u128(a.as_u128()), a);
    }

    #[test]
    fn store_error_keeps_its_source() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let err = StoreError::unavailable(io);
        assert_eq!(err.kind(), StoreErrorKind::Unavailable);
        assert_eq!(StdError::source(&err).unwrap().to_string(), "refused");
    }

    #[test]
    fn the_trait_is_object_safe() {
        let store: Arc<dyn IdempotencyStore> = Arc::new(MemoryStore::new());
        let _nested: Box<dyn IdempotencyStore> = Box::new(store);
    }
}
