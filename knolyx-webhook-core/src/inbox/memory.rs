//! The in-memory inbox: bounded, for tests and a single process.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;

use super::{Accepted, DEFAULT_RETENTION, Entry, EntryState, Inbox, InboxStats, ListFilter};
use crate::event::WebhookEvent;
use crate::store::{
    OwnerToken, SettleOutcome, StoreError, StoreErrorKind, StoreResult, async_trait,
};

/// The default number of entries a [`MemoryInbox`] holds.
pub const DEFAULT_INBOX_CAPACITY: usize = 100_000;

/// An [`Inbox`] in this process's memory. **Not durable**: a restart loses every entry, so
/// it suits tests and a single process that can afford that, not the promise of a durable
/// inbox (use `knolyx_webhook_postgres::PostgresInbox` for that).
///
/// Bounded: it holds at most `capacity` entries (default [`DEFAULT_INBOX_CAPACITY`]). Done
/// entries are dropped once past the retention (default [`DEFAULT_RETENTION`]), and when
/// the inbox is full, the oldest done ones are dropped earlier (a retransmission of such an
/// id is stored again). Pending, running and dead entries are never dropped: when they
/// fill the inbox, [`accept`](Inbox::accept) fails with [`StoreErrorKind::Full`].
///
/// With feature `tokio`, [`waker`](Self::waker) is woken at each accept and retry, for
/// [`WorkerBuilder::wake_on`](super::WorkerBuilder::wake_on).
///
/// ```
/// use std::time::Duration;
/// use knolyx_webhook_core::inbox::MemoryInbox;
///
/// let inbox = MemoryInbox::builder()
///     .capacity(10_000)
///     .retention(Duration::from_secs(3600))
///     .build();
/// assert_eq!(inbox.capacity(), 10_000);
/// ```
pub struct MemoryInbox {
    inner: Mutex<Inner>,
    capacity: usize,
    retention: Duration,
    epoch: (Instant, SystemTime),
    #[cfg(feature = "tokio")]
    waker: Arc<tokio::sync::Notify>,
}

impl fmt::Debug for MemoryInbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryInbox")
            .field("capacity", &self.capacity)
            .field("retention", &self.retention)
            .finish_non_exhaustive()
    }
}

impl Default for MemoryInbox {
    fn default() -> Self {
        Self::new()
    }
}

/// Builds a [`MemoryInbox`].
#[derive(Clone, Debug)]
pub struct MemoryInboxBuilder {
    capacity: usize,
    retention: Duration,
}

impl MemoryInboxBuilder {
    /// The most entries held at once (default [`DEFAULT_INBOX_CAPACITY`]; at least 1).
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity.max(1);
        self
    }

    /// How long done entries are kept (default [`DEFAULT_RETENTION`]).
    pub fn retention(mut self, retention: Duration) -> Self {
        self.retention = retention;
        self
    }

    /// The inbox.
    pub fn build(self) -> MemoryInbox {
        MemoryInbox {
            inner: Mutex::new(Inner::default()),
            capacity: self.capacity,
            retention: self.retention,
            epoch: (Instant::now(), SystemTime::now()),
            #[cfg(feature = "tokio")]
            waker: Arc::new(tokio::sync::Notify::new()),
        }
    }
}

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<Arc<str>, Slot>,
    /// Pending and running entries by when they are due (next run, lease end), then seq.
    due: BTreeMap<(Instant, u64), Arc<str>>,
    /// Done entries in the order they were done (an id may have left since).
    done: VecDeque<(Instant, Arc<str>)>,
    seq: u64,
}

#[derive(Debug)]
struct Slot {
    seq: u64,
    event_type: String,
    body: Bytes,
    state: EntryState,
    attempts: u32,
    last_error: Option<String>,
    owner: Option<OwnerToken>,
    created: Instant,
    updated: Instant,
    /// Pending: the next run; running: the lease's end. The key in `Inner::due`.
    due_at: Option<Instant>,
    done_at: Option<Instant>,
}

impl Inner {
    /// Moves `slot` (of `id`) to `state`, due at `due_at`, keeping `due` in step.
    fn set(&mut self, id: &Arc<str>, state: EntryState, due_at: Option<Instant>, now: Instant) {
        let Some(slot) = self.entries.get_mut(id) else {
            return;
        };
        if let Some(old) = slot.due_at.take() {
            self.due.remove(&(old, slot.seq));
        }
        if let Some(at) = due_at {
            self.due.insert((at, slot.seq), Arc::clone(id));
        }
        slot.state = state;
        slot.due_at = due_at;
        slot.updated = now;
        if state != EntryState::Running {
            slot.owner = None;
        }
        if state == EntryState::Done {
            slot.done_at = Some(now);
            self.done.push_back((now, Arc::clone(id)));
        }
    }

    /// The id's key if it is running under `owner` with an unexpired lease.
    fn owned(&self, id: &str, owner: OwnerToken, now: Instant) -> Option<Arc<str>> {
        let (key, slot) = self.entries.get_key_value(id)?;
        let live = slot.state == EntryState::Running
            && slot.owner == Some(owner)
            && slot.due_at.is_some_and(|until| until > now);
        live.then(|| Arc::clone(key))
    }

    /// Drops the oldest done entry if it is done before `before` (or any, with `None`).
    fn drop_oldest_done(&mut self, before: Option<Instant>) -> bool {
        while let Some((at, id)) = self.done.front() {
            if before.is_some_and(|limit| *at > limit) {
                return false;
            }
            let (at, id) = (*at, Arc::clone(id));
            self.done.pop_front();
            // Still the same done entry (not purged, not stored anew since)?
            if self
                .entries
                .get(&id)
                .is_some_and(|s| s.state == EntryState::Done && s.done_at == Some(at))
            {
                self.entries.remove(&id);
                return true;
            }
        }
        false
    }
}

impl MemoryInbox {
    /// An inbox with the default capacity and retention.
    pub fn new() -> Self {
        Self::builder().build()
    }

    /// A builder, to choose the capacity and the retention.
    pub fn builder() -> MemoryInboxBuilder {
        MemoryInboxBuilder {
            capacity: DEFAULT_INBOX_CAPACITY,
            retention: DEFAULT_RETENTION,
        }
    }

    /// The most entries held at once.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Woken (`notify_one`) at each accept and each retry of a dead entry: hand it to
    /// [`WorkerBuilder::wake_on`](super::WorkerBuilder::wake_on).
    #[cfg(feature = "tokio")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
    pub fn waker(&self) -> Arc<tokio::sync::Notify> {
        Arc::clone(&self.waker)
    }

    fn wake(&self) {
        #[cfg(feature = "tokio")]
        self.waker.notify_one();
    }

    fn lock(&self) -> StoreResult<MutexGuard<'_, Inner>> {
        self.inner
            .lock()
            .map_err(|_| StoreError::backend("memory inbox lock poisoned"))
    }

    fn time(&self, at: Instant) -> SystemTime {
        let (instant, system) = self.epoch;
        system + at.saturating_duration_since(instant)
    }

    fn entry(&self, id: &str, slot: &Slot) -> Entry {
        let due = slot.due_at.map(|at| self.time(at));
        let (next_run, lease) = match slot.state {
            EntryState::Pending => (due, None),
            EntryState::Running => (None, due),
            EntryState::Dead | EntryState::Done => (None, None),
        };
        Entry::new(
            id,
            slot.event_type.clone(),
            slot.body.clone(),
            slot.state,
            self.time(slot.created),
        )
        .with_attempts(slot.attempts)
        .with_last_error(slot.last_error.clone())
        .with_owner(slot.owner)
        .with_times(
            self.time(slot.updated),
            next_run,
            lease,
            slot.done_at.map(|at| self.time(at)),
        )
    }
}

/// A deadline `d` after `now`, saturating far in the future.
fn after(now: Instant, d: Duration) -> Instant {
    now.checked_add(d)
        .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 24 * 3600))
}

#[async_trait]
impl Inbox for MemoryInbox {
    async fn accept(&self, event: &WebhookEvent) -> StoreResult<Accepted> {
        let now = Instant::now();
        {
            let mut inner = self.lock()?;
            if inner.entries.contains_key(event.id()) {
                return Ok(Accepted::Duplicate);
            }
            let expired = now.checked_sub(self.retention);
            while expired.is_some() && inner.drop_oldest_done(expired) {}
            if inner.entries.len() >= self.capacity && !inner.drop_oldest_done(None) {
                return Err(StoreError::new(
                    StoreErrorKind::Full,
                    "memory inbox full of entries not done",
                    None,
                ));
            }
            inner.seq += 1;
            let seq = inner.seq;
            let id: Arc<str> = Arc::from(event.id());
            inner.entries.insert(
                Arc::clone(&id),
                Slot {
                    seq,
                    event_type: event.event_type().to_owned(),
                    body: event.raw().clone(),
                    state: EntryState::Pending,
                    attempts: 0,
                    last_error: None,
                    owner: None,
                    created: now,
                    updated: now,
                    due_at: None,
                    done_at: None,
                },
            );
            inner.set(&id, EntryState::Pending, Some(now), now);
        }
        self.wake();
        Ok(Accepted::Stored)
    }

    async fn take(
        &self,
        worker: OwnerToken,
        lease: Duration,
        limit: usize,
    ) -> StoreResult<Vec<Entry>> {
        let now = Instant::now();
        let mut inner = self.lock()?;
        let due: Vec<Arc<str>> = inner
            .due
            .range(..=(now, u64::MAX))
            .take(limit)
            .map(|(_, id)| Arc::clone(id))
            .collect();
        let mut taken = Vec::with_capacity(due.len());
        for id in due {
            inner.set(&id, EntryState::Running, Some(after(now, lease)), now);
            if let Some(slot) = inner.entries.get_mut(&id) {
                slot.owner = Some(worker);
                slot.attempts = slot.attempts.saturating_add(1);
                taken.push(self.entry(&id, slot));
            }
        }
        Ok(taken)
    }

    async fn complete(&self, id: &str, owner: OwnerToken) -> StoreResult<SettleOutcome> {
        let now = Instant::now();
        let mut inner = self.lock()?;
        let Some(key) = inner.owned(id, owner, now) else {
            return Ok(SettleOutcome::NotOwner);
        };
        inner.set(&key, EntryState::Done, None, now);
        Ok(SettleOutcome::Settled)
    }

    async fn fail(
        &self,
        id: &str,
        owner: OwnerToken,
        error: &str,
        retry_in: Option<Duration>,
    ) -> StoreResult<SettleOutcome> {
        let now = Instant::now();
        let mut inner = self.lock()?;
        let Some(key) = inner.owned(id, owner, now) else {
            return Ok(SettleOutcome::NotOwner);
        };
        match retry_in {
            Some(delay) => inner.set(&key, EntryState::Pending, Some(after(now, delay)), now),
            None => inner.set(&key, EntryState::Dead, None, now),
        }
        if let Some(slot) = inner.entries.get_mut(&key) {
            slot.last_error = Some(error.to_owned());
        }
        Ok(SettleOutcome::Settled)
    }

    async fn release(&self, id: &str, owner: OwnerToken) -> StoreResult<SettleOutcome> {
        let now = Instant::now();
        {
            let mut inner = self.lock()?;
            let Some(key) = inner.owned(id, owner, now) else {
                return Ok(SettleOutcome::NotOwner);
            };
            inner.set(&key, EntryState::Pending, Some(now), now);
        }
        self.wake();
        Ok(SettleOutcome::Settled)
    }

    async fn list(&self, filter: ListFilter) -> StoreResult<Vec<Entry>> {
        let inner = self.lock()?;
        let mut found: Vec<(&Arc<str>, &Slot)> = inner
            .entries
            .iter()
            .filter(|(_, slot)| filter.state_filter().is_none_or(|s| slot.state == s))
            .collect();
        found.sort_by_key(|(_, slot)| slot.seq);
        Ok(found
            .into_iter()
            .take(filter.max())
            .map(|(id, slot)| self.entry(id, slot))
            .collect())
    }

    async fn show(&self, id: &str) -> StoreResult<Option<Entry>> {
        let inner = self.lock()?;
        Ok(inner.entries.get(id).map(|slot| self.entry(id, slot)))
    }

    async fn retry(&self, id: &str) -> StoreResult<bool> {
        let now = Instant::now();
        {
            let mut inner = self.lock()?;
            let Some((key, slot)) = inner.entries.get_key_value(id) else {
                return Ok(false);
            };
            if slot.state != EntryState::Dead {
                return Ok(false);
            }
            let key = Arc::clone(key);
            inner.set(&key, EntryState::Pending, Some(now), now);
            if let Some(slot) = inner.entries.get_mut(&key) {
                slot.attempts = 0;
            }
        }
        self.wake();
        Ok(true)
    }

    async fn retry_all_dead(&self) -> StoreResult<u64> {
        let now = Instant::now();
        let count = {
            let mut inner = self.lock()?;
            let dead: Vec<Arc<str>> = inner
                .entries
                .iter()
                .filter(|(_, slot)| slot.state == EntryState::Dead)
                .map(|(id, _)| Arc::clone(id))
                .collect();
            for id in &dead {
                inner.set(id, EntryState::Pending, Some(now), now);
                if let Some(slot) = inner.entries.get_mut(id) {
                    slot.attempts = 0;
                }
            }
            dead.len() as u64
        };
        if count > 0 {
            self.wake();
        }
        Ok(count)
    }

    async fn purge_done(&self, older_than: Duration) -> StoreResult<u64> {
        let Some(before) = Instant::now().checked_sub(older_than) else {
            return Ok(0);
        };
        let mut inner = self.lock()?;
        let mut purged = 0;
        while inner.drop_oldest_done(Some(before)) {
            purged += 1;
        }
        Ok(purged)
    }

    async fn stats(&self) -> StoreResult<InboxStats> {
        let inner = self.lock()?;
        let now = Instant::now();
        let mut stats = InboxStats::default();
        for slot in inner.entries.values() {
            match slot.state {
                EntryState::Pending => {
                    stats.pending += 1;
                    let age = now.saturating_duration_since(slot.created);
                    stats.oldest_pending = Some(stats.oldest_pending.map_or(age, |a| a.max(age)));
                }
                EntryState::Running => stats.running += 1,
                EntryState::Dead => stats.dead += 1,
                EntryState::Done => stats.done += 1,
            }
        }
        Ok(stats)
    }
}
