//! The durable inbox: an event acknowledged is an event kept, processed later by a
//! [`Worker`] (feature `tokio`) that retries failed handlers with backoff and keeps what
//! keeps failing as **dead**, for an operator to replay.
//!
//! In the synchronous mode (the [pipeline](crate::pipeline) with an
//! [idempotency store](crate::store)), Knolyx's request waits for the handler, and a failed
//! handler relies on Knolyx to retry. With an inbox, the delivery is answered once the event
//! is stored ([`Inbox::accept`]), and the handler runs afterwards, as often as it takes.
//! [`WebhookReceiverBuilder::inbox`](crate::WebhookReceiverBuilder::inbox) puts the
//! pipeline in inbox mode: both adapters then answer `200 queued` once the event is stored,
//! without running the route's handler, and a [`Worker`] runs yours from the inbox.
//!
//! # States
//!
//! ```text
//!   accept            take (due)                  complete (fenced)
//!  ───────▶ pending ─────────────▶ running ──────────────────────────▶ done
//!             ▲  ▲                 │  │  │                            (kept for the
//!             │  │ fail(retry_in)  │  │  │ take, once the lease       retention window,
//!             │  └─────────────────┘  │  │ expired (takeover:         then purged)
//!             │    release (fenced)   │  │ a crashed worker)
//!             │  ◀────────────────────┘  └──▶ running (new owner)
//!             │
//!             │  retry / retry_all_dead     fail(None) (fenced)
//!            dead ◀──────────────────────────────── running
//! ```
//!
//! - The message id is the key. [`accept`](Inbox::accept) of an id the inbox holds, in any
//!   state, is [`Accepted::Duplicate`] and changes nothing; done entries are kept for the
//!   retention window, so a retransmission after success is still a duplicate. `PING` is
//!   never stored: that is the caller's job. `accept` is durable when it returns `Ok`.
//! - [`take`](Inbox::take) hands out due entries (pending whose next run has come, or
//!   running whose lease expired), each to exactly one taker, now running under the
//!   taker's [`OwnerToken`] (the fencing token) for a lease, its attempt count one higher.
//! - [`complete`](Inbox::complete), [`fail`](Inbox::fail) and [`release`](Inbox::release)
//!   are *fenced*: they apply only to an entry running under the given owner with an
//!   unexpired lease, and otherwise answer [`SettleOutcome::NotOwner`]. A worker whose
//!   lease expired (and whose entry another worker took over) cannot settle it.
//! - `release` puts the entry back to pending, due at once; it does **not** undo the
//!   attempt (a handler cut short by a shutdown counts as an attempt, as one cut short by a
//!   crash does).
//! - The operator's operations: [`list`](Inbox::list), [`show`](Inbox::show),
//!   [`retry`](Inbox::retry) and [`retry_all_dead`](Inbox::retry_all_dead) (dead to pending,
//!   due at once, attempts reset to 0, the last error kept until the next one), and
//!   [`purge_done`](Inbox::purge_done).
//!
//! Every time decision is taken by the inbox's own clock (the database's, for a shared
//! inbox), so callers pass durations, never instants.
//!
//! # Backends
//!
//! [`MemoryInbox`] (bounded, for tests and a single process: **not** durable across a
//! restart) and `knolyx_webhook_postgres::PostgresInbox` (durable, shared by every replica).
//! Another backend implements [`Inbox`] and proves it with the conformance suite
//! `knolyx_webhook_core::testing::inbox_conformance` (feature `testing`).
//!
//! ```
//! use std::time::Duration;
//! use knolyx_webhook_core::inbox::{Accepted, EntryState, Inbox, MemoryInbox};
//! use knolyx_webhook_core::store::{OwnerToken, SettleOutcome};
//! use knolyx_webhook_core::WebhookEvent;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let inbox = MemoryInbox::new();
//! let event = WebhookEvent::from_slice(br#"{"id":"m-1","type":"COURSE_STARTED","data":{
//!     "user":{"id":7,"name":"Ana","email":"ana@example.com"},
//!     "course":{"id":3,"name":"Rust"}}}"#)?;
//! assert_eq!(inbox.accept(&event).await?, Accepted::Stored); // now answer Knolyx 2xx
//! assert_eq!(inbox.accept(&event).await?, Accepted::Duplicate);
//!
//! // A worker takes it, runs the handler, and settles.
//! let worker = OwnerToken::generate();
//! let taken = inbox.take(worker, Duration::from_secs(60), 10).await?;
//! assert_eq!(taken.len(), 1);
//! let entry = &taken[0];
//! assert_eq!((entry.state(), entry.attempts()), (EntryState::Running, 1));
//! assert_eq!(entry.event()?.id(), "m-1");
//! assert_eq!(inbox.complete("m-1", worker).await?, SettleOutcome::Settled);
//! assert_eq!(inbox.show("m-1").await?.map(|e| e.state()), Some(EntryState::Done));
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::time::{Duration, SystemTime};

use bytes::Bytes;

use crate::event::{ParseError, WebhookEvent};
use crate::store::{OwnerToken, SettleOutcome, StoreResult, async_trait};

mod memory;
#[cfg(test)]
mod tests;
#[cfg(feature = "tokio")]
mod worker;

pub use memory::{DEFAULT_INBOX_CAPACITY, MemoryInbox, MemoryInboxBuilder};
#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub use worker::{ShutdownReport, Worker, WorkerBuilder, WorkerHandle, backoff};

mod attempt;
pub use attempt::Attempt;

/// How long done entries are kept by default, so that a retransmission is still known as a
/// duplicate: 72 hours, as the idempotency store's retention.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(72 * 3600);

/// What [`Inbox::accept`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Accepted {
    /// The event is stored (durably, for a durable inbox), pending: acknowledge it.
    Stored,
    /// The inbox already holds this message id (in any state): acknowledge it as a
    /// duplicate; nothing changed.
    Duplicate,
}

/// The state of an inbox [`Entry`]; see the [module docs](self) for the transitions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EntryState {
    /// Waiting for its next run (at once, or after a failure's backoff).
    Pending,
    /// Taken by a worker, under a lease.
    Running,
    /// Failed for good (too many attempts): kept, with its last error, until retried.
    Dead,
    /// Handled: kept for the retention window, so retransmissions are duplicates.
    Done,
}

impl EntryState {
    /// The lowercase name: `pending`, `running`, `dead` or `done` (as the shared inboxes
    /// store it).
    pub fn as_str(self) -> &'static str {
        match self {
            EntryState::Pending => "pending",
            EntryState::Running => "running",
            EntryState::Dead => "dead",
            EntryState::Done => "done",
        }
    }

    /// The state named by [`as_str`](Self::as_str), or `None`.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "pending" => EntryState::Pending,
            "running" => EntryState::Running,
            "dead" => EntryState::Dead,
            "done" => EntryState::Done,
            _ => return None,
        })
    }
}

impl fmt::Display for EntryState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One stored event and where it stands.
///
/// `Debug` shows the body's length, never the body (it holds the students' personal data).
#[derive(Clone, PartialEq, Eq)]
pub struct Entry {
    /// The fields, set by the backends through [`Entry::new`] and the setters.
    id: String,
    event_type: String,
    body: Bytes,
    state: EntryState,
    attempts: u32,
    last_error: Option<String>,
    owner: Option<OwnerToken>,
    created_at: SystemTime,
    updated_at: SystemTime,
    next_run_at: Option<SystemTime>,
    lease_until: Option<SystemTime>,
    done_at: Option<SystemTime>,
}

impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Entry")
            .field("id", &self.id)
            .field("event_type", &self.event_type)
            .field("body_len", &self.body.len())
            .field("state", &self.state)
            .field("attempts", &self.attempts)
            .field("last_error", &self.last_error)
            .field("owner", &self.owner)
            .field("created_at", &self.created_at)
            .field("next_run_at", &self.next_run_at)
            .field("lease_until", &self.lease_until)
            .field("done_at", &self.done_at)
            .finish()
    }
}

impl Entry {
    /// An entry as a backend read it: `id`, `event_type`, the raw `body` as accepted, and
    /// its `state` created at `created_at`; the other fields start empty (0 attempts) and
    /// are set with the `with_…` methods.
    pub fn new(
        id: impl Into<String>,
        event_type: impl Into<String>,
        body: impl Into<Bytes>,
        state: EntryState,
        created_at: SystemTime,
    ) -> Self {
        Self {
            id: id.into(),
            event_type: event_type.into(),
            body: body.into(),
            state,
            attempts: 0,
            last_error: None,
            owner: None,
            created_at,
            updated_at: created_at,
            next_run_at: None,
            lease_until: None,
            done_at: None,
        }
    }

    /// Sets the number of attempts started.
    pub fn with_attempts(mut self, attempts: u32) -> Self {
        self.attempts = attempts;
        self
    }

    /// Sets the last failure's message.
    pub fn with_last_error(mut self, error: Option<String>) -> Self {
        self.last_error = error;
        self
    }

    /// Sets the owner of a running entry.
    pub fn with_owner(mut self, owner: Option<OwnerToken>) -> Self {
        self.owner = owner;
        self
    }

    /// Sets when the entry last changed, when it runs next (pending), until when its lease
    /// holds (running), and when it was done.
    pub fn with_times(
        mut self,
        updated_at: SystemTime,
        next_run_at: Option<SystemTime>,
        lease_until: Option<SystemTime>,
        done_at: Option<SystemTime>,
    ) -> Self {
        self.updated_at = updated_at;
        self.next_run_at = next_run_at;
        self.lease_until = lease_until;
        self.done_at = done_at;
        self
    }

    /// The message id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The event's type name, such as `"COURSE_PAYMENT_RECEIVED"`.
    pub fn event_type(&self) -> &str {
        &self.event_type
    }

    /// The body exactly as accepted.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// The event, parsed back from the body ([`WebhookEvent::from_bytes`]), for the
    /// handler. Fails only if the stored body was altered: it parsed when it was accepted.
    pub fn event(&self) -> Result<WebhookEvent, ParseError> {
        WebhookEvent::from_bytes(self.body.clone())
    }

    /// Where the entry stands.
    pub fn state(&self) -> EntryState {
        self.state
    }

    /// How many attempts were started (by [`Inbox::take`]); 0 again after a
    /// [retry](Inbox::retry).
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The message of the last failure, if any (kept through a retry, until the next one).
    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    /// The owner (fencing token) of a running entry.
    pub fn owner(&self) -> Option<OwnerToken> {
        self.owner
    }

    /// When the entry was accepted, by the inbox's clock.
    pub fn created_at(&self) -> SystemTime {
        self.created_at
    }

    /// When the entry last changed state.
    pub fn updated_at(&self) -> SystemTime {
        self.updated_at
    }

    /// When a pending entry is due.
    pub fn next_run_at(&self) -> Option<SystemTime> {
        self.next_run_at
    }

    /// Until when a running entry's lease holds.
    pub fn lease_until(&self) -> Option<SystemTime> {
        self.lease_until
    }

    /// When a done entry was done.
    pub fn done_at(&self) -> Option<SystemTime> {
        self.done_at
    }
}

/// Which entries [`Inbox::list`] returns: of one state or all, oldest first, at most
/// `limit` (default 100).
///
/// ```
/// use knolyx_webhook_core::inbox::{EntryState, ListFilter};
///
/// let filter = ListFilter::all().state(EntryState::Dead).limit(20);
/// assert_eq!((filter.state_filter(), filter.max()), (Some(EntryState::Dead), 20));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ListFilter {
    state: Option<EntryState>,
    limit: usize,
}

impl Default for ListFilter {
    fn default() -> Self {
        Self::all()
    }
}

impl ListFilter {
    /// Every state, at most 100 entries.
    pub fn all() -> Self {
        Self {
            state: None,
            limit: 100,
        }
    }

    /// Only entries in `state`.
    pub fn state(mut self, state: EntryState) -> Self {
        self.state = Some(state);
        self
    }

    /// At most `limit` entries.
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = limit;
        self
    }

    /// The state asked for, if any.
    pub fn state_filter(&self) -> Option<EntryState> {
        self.state
    }

    /// The most entries asked for.
    pub fn max(&self) -> usize {
        self.limit
    }
}

/// How many entries an inbox holds in each state, and how long the oldest pending one has
/// waited: [`Inbox::stats`], behind the inbox gauges of the [`metrics`](crate::metrics)
/// module.
///
/// ```
/// use std::time::Duration;
/// use knolyx_webhook_core::inbox::{EntryState, InboxStats};
///
/// let stats = InboxStats { pending: 3, dead: 1, oldest_pending: Some(Duration::from_secs(9)), ..InboxStats::default() };
/// assert_eq!((stats.count(EntryState::Pending), stats.count(EntryState::Running)), (3, 0));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InboxStats {
    /// Entries pending (due or waiting for a retry).
    pub pending: u64,
    /// Entries running (taken, their lease expired or not).
    pub running: u64,
    /// Entries dead, waiting for an operator.
    pub dead: u64,
    /// Entries done, kept for the retention window.
    pub done: u64,
    /// How long ago the oldest pending entry was accepted; `None` when none is pending.
    pub oldest_pending: Option<Duration>,
}

impl InboxStats {
    /// The number of entries in `state`.
    pub fn count(&self, state: EntryState) -> u64 {
        match state {
            EntryState::Pending => self.pending,
            EntryState::Running => self.running,
            EntryState::Dead => self.dead,
            EntryState::Done => self.done,
        }
    }
}

/// A durable inbox of events: see the [module docs](self) for the states and the rules.
///
/// The trait is object-safe (the [`Worker`] runs over an `Arc<dyn Inbox>`), its futures are
/// `Send`, and its errors are [`StoreError`](crate::store::StoreError)s with a
/// [kind](crate::store::StoreErrorKind).
#[async_trait]
pub trait Inbox: fmt::Debug + Send + Sync + 'static {
    /// Stores `event` (its id, type and raw body), pending and due at once, unless the inbox
    /// holds its id already (in any state): then [`Accepted::Duplicate`], nothing changed.
    /// Durable when it returns `Ok`: only then may the delivery be acknowledged.
    async fn accept(&self, event: &WebhookEvent) -> StoreResult<Accepted>;

    /// Takes up to `limit` due entries (pending and due, or running with an expired lease),
    /// oldest due first, each given to exactly one taker however many take at once: they
    /// are now running under `worker` until `lease` from now, their attempts one higher.
    async fn take(
        &self,
        worker: OwnerToken,
        lease: Duration,
        limit: usize,
    ) -> StoreResult<Vec<Entry>>;

    /// Marks `id` done, if it is running under `owner` with an unexpired lease.
    async fn complete(&self, id: &str, owner: OwnerToken) -> StoreResult<SettleOutcome>;

    /// Records a failed attempt of `id` (if it is running under `owner` with an unexpired
    /// lease): `error` is kept as its last error, and it is pending again, due after
    /// `retry_in`, or dead when `retry_in` is `None`.
    async fn fail(
        &self,
        id: &str,
        owner: OwnerToken,
        error: &str,
        retry_in: Option<Duration>,
    ) -> StoreResult<SettleOutcome>;

    /// Gives `id` back (if it is running under `owner` with an unexpired lease): pending,
    /// due at once. The attempt still counts.
    async fn release(&self, id: &str, owner: OwnerToken) -> StoreResult<SettleOutcome>;

    /// The entries `filter` selects, oldest first.
    async fn list(&self, filter: ListFilter) -> StoreResult<Vec<Entry>>;

    /// The entry of `id`, if the inbox holds it.
    async fn show(&self, id: &str) -> StoreResult<Option<Entry>>;

    /// Puts the dead entry `id` back to pending, due at once, its attempts reset to 0.
    /// Returns whether it was dead (an entry in another state is left alone).
    async fn retry(&self, id: &str) -> StoreResult<bool>;

    /// [`retry`](Self::retry) of every dead entry; returns how many.
    async fn retry_all_dead(&self) -> StoreResult<u64>;

    /// Deletes the done entries done at least `older_than` ago; returns how many. A
    /// retransmission of a purged id is stored again.
    async fn purge_done(&self, older_than: Duration) -> StoreResult<u64>;

    /// How many entries are in each state, and the age of the oldest pending one (by the
    /// inbox's clock). The shipped inboxes answer in one pass (PostgreSQL: one query); the
    /// default answers [`StoreErrorKind::Unsupported`](crate::store::StoreErrorKind::Unsupported),
    /// for inboxes written before this method existed.
    async fn stats(&self) -> StoreResult<InboxStats> {
        Err(crate::store::StoreError::unsupported("Inbox::stats"))
    }
}
