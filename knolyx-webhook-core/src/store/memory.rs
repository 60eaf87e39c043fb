//! The in-memory store: the default, for a single process.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use siphasher::sip128::{Hasher128, SipHasher13};

use super::table::Table;
use super::{
    ClaimOutcome, IdState, IdempotencyStore, OwnerToken, SettleOutcome, StoreError, StoreErrorKind,
    StoreResult, async_trait,
};

/// The default number of ids a [`MemoryStore`] remembers.
pub const DEFAULT_CAPACITY: usize = 1_000_000;

/// An idempotency store in this process's memory: sharded, bounded, and fast.
///
/// Use it for a single instance. With several replicas behind a load balancer, a
/// retransmission may reach another replica, which does not know the id: use a shared
/// store (Redis, PostgreSQL) there.
///
/// # Bounds, and what eviction means
///
/// The store remembers at most `capacity` ids (default [`DEFAULT_CAPACITY`]), in progress
/// and completed together. The bound is kept per shard (each holds its share of
/// `capacity`), so eviction can begin a little before the whole store is full, in a shard
/// that is fuller than average: size the capacity with some room. A completed id is
/// forgotten when its retention expires, or, when its shard is full, earlier: a new claim
/// then evicts the oldest completed id of that shard. Memory stays flat once the store is
/// full: the table of completed ids leaves no tombstones behind evictions.
/// **An evicted id is no longer recognised as a duplicate**: if Knolyx retransmitted it,
/// the handler would run again. Size the capacity for the number of events you receive in
/// the retention window (72 hours by default). Expired leases never count against the
/// capacity: a claim first drops the ids in progress whose lease expired, and the completed
/// ids whose retention expired (in the order they completed: with one retention, all of
/// them). Ids in progress with a live lease are never evicted: when a shard is full of
/// them, a claim fails with [`StoreErrorKind::Full`] and the pipeline answers 503, so that
/// Knolyx retries later instead of losing the event.
///
/// # Digests, and what a collision means
///
/// Ids are kept as keyed SipHash digests (keys chosen at random per store), not as text:
/// memory per id is small (about 40 to 55 bytes) and independent of the id's length. A
/// digest has 96 bits, so two ids can collide. The odds below are for one new id against
/// `n` remembered ids; they are upper bounds (a new id is only compared with the ids of
/// its shard, which lowers them further):
///
/// - **All 96 bits equal**: the new id is taken for the remembered one; while that one is
///   remembered as completed, the new event is answered as a duplicate: **it is dropped**,
///   the handler never runs for it. Odds: about n / 2⁹⁶, that is 1.3 × 10⁻²⁴ at 100,000
///   ids and 1.3 × 10⁻²³ at 1,000,000 ids (the default capacity, full). Receiving a
///   million events a day into a full store of the default capacity, for a century
///   (3.7 × 10¹⁰ events), drops one with odds of about 5 × 10⁻¹³.
/// - **The first 64 bits equal, not the other 32**: the ids are told apart, but share a
///   slot in the table of completed ids, so when the new id completes, the earlier one is
///   forgotten, as if evicted (a retransmission of it would run again). Odds: about
///   n / 2⁶⁴, that is 5.4 × 10⁻¹⁴ at 1,000,000 ids.
///
/// ```
/// use knolyx_webhook_core::store::MemoryStore;
///
/// let store = MemoryStore::builder().capacity(100_000).build();
/// assert_eq!(store.capacity(), 100_000);
/// ```
pub struct MemoryStore {
    shards: Box<[Mutex<Shard>]>,
    capacity: usize,
    keys: (u64, u64),
    epoch: Instant,
    /// A clock moved by hand, for model-based tests only.
    #[cfg(feature = "model")]
    clock: Option<crate::testing::model::ManualClock>,
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("capacity", &self.capacity)
            .field("shards", &self.shards.len())
            .finish_non_exhaustive()
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

/// Builds a [`MemoryStore`].
#[derive(Clone, Debug)]
pub struct MemoryStoreBuilder {
    capacity: usize,
    shards: Option<usize>,
    preallocate: bool,
    #[cfg(feature = "model")]
    clock: Option<crate::testing::model::ManualClock>,
}

impl MemoryStoreBuilder {
    /// The most ids remembered at once (default [`DEFAULT_CAPACITY`]; at least 1).
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity.max(1);
        self
    }

    /// The number of independently locked shards (default: 16 per available core, at
    /// most 256, and no more than the capacity).
    pub fn shards(mut self, shards: usize) -> Self {
        self.shards = Some(shards.max(1));
        self
    }

    /// Allocates memory for the full capacity up front, instead of growing as ids arrive.
    pub fn preallocate(mut self, yes: bool) -> Self {
        self.preallocate = yes;
        self
    }

    /// Reads time from `clock`, moved by hand, instead of the real clock: for model-based
    /// tests only ([`testing::model`](crate::testing::model), feature `model`).
    #[cfg(feature = "model")]
    #[cfg_attr(docsrs, doc(cfg(feature = "model")))]
    pub fn manual_clock(mut self, clock: crate::testing::model::ManualClock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// The store.
    pub fn build(self) -> MemoryStore {
        let cores = std::thread::available_parallelism().map_or(4, |n| n.get());
        let shards = self
            .shards
            .unwrap_or((cores * 16).min(256))
            .min(self.capacity)
            .max(1);
        // Exactly `capacity` in all: the first `capacity % shards` shards hold one more.
        let (base, extra) = (self.capacity / shards, self.capacity % shards);
        let shard_capacity = |i: usize| base + usize::from(i < extra);
        let mut keys = [0u8; 16];
        if getrandom::fill(&mut keys).is_err() {
            // Without OS randomness, the keys only lose their resistance to crafted ids.
            let seed = Instant::now().elapsed().as_nanos() as u64 ^ u64::from(std::process::id());
            keys[..8].copy_from_slice(&seed.to_le_bytes());
        }
        let (k0, k1) = keys.split_at(8);
        MemoryStore {
            shards: (0..shards)
                .map(|i| Mutex::new(Shard::new(shard_capacity(i), self.preallocate)))
                .collect(),
            capacity: self.capacity,
            keys: (
                u64::from_le_bytes(k0.try_into().unwrap_or_default()),
                u64::from_le_bytes(k1.try_into().unwrap_or_default()),
            ),
            epoch: Instant::now(),
            #[cfg(feature = "model")]
            clock: self.clock,
        }
    }
}

impl MemoryStore {
    /// A store with the default capacity.
    pub fn new() -> Self {
        Self::builder().build()
    }

    /// A builder to choose capacity and sharding.
    pub fn builder() -> MemoryStoreBuilder {
        MemoryStoreBuilder {
            capacity: DEFAULT_CAPACITY,
            shards: None,
            preallocate: false,
            #[cfg(feature = "model")]
            clock: None,
        }
    }

    /// The most ids remembered at once.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// How many ids are remembered now (in progress or completed, including expired ones
    /// not yet swept).
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                let s = lock(s);
                s.completed.len() + s.in_progress.len()
            })
            .sum()
    }

    /// Whether no id is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn key(&self, id: &str) -> (Key, usize) {
        let mut h = SipHasher13::new_with_keys(self.keys.0, self.keys.1);
        h.write(id.as_bytes());
        let h = h.finish128();
        // h1 is the map key (and the bucket hash), the low half of h2 a check, and its high
        // half picks the shard: 96 bits tell ids apart within a shard.
        let shard = ((h.h2 >> 32) % self.shards.len() as u64) as usize;
        (
            Key {
                hash: h.h1,
                check: h.h2 as u32,
            },
            shard,
        )
    }

    fn shard(&self, index: usize) -> MutexGuard<'_, Shard> {
        lock(&self.shards[index])
    }

    fn now(&self) -> u64 {
        #[cfg(feature = "model")]
        if let Some(clock) = &self.clock {
            return clock.now_ms();
        }
        millis(self.epoch.elapsed())
    }
}

fn lock(shard: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    // A panic while holding a shard lock cannot leave a shard half-updated in a way that
    // matters (each operation is a few map calls), so a poisoned lock is taken over.
    shard
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

use super::saturating_millis as millis;

/// Retention expiries are kept in tenths of a second since the store's epoch, rounded up
/// (so an id is never forgotten early), in 32 bits: 13 years.
const TICK_MS: u64 = 100;

fn ticks_until(now_ms: u64, retention: Duration) -> u32 {
    let until_ms = now_ms.saturating_add(millis(retention));
    u32::try_from(until_ms.div_ceil(TICK_MS)).unwrap_or(u32::MAX)
}

fn tick_expired(until: u32, now_ms: u64) -> bool {
    u64::from(until) * TICK_MS <= now_ms
}

/// A 96-bit digest of a message id (with the shard's bits, more).
#[derive(Clone, Copy, PartialEq, Eq)]
struct Key {
    hash: u64,
    check: u32,
}

impl std::hash::Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

/// The keys are already uniformly distributed digests: hashing them again is wasted work.
#[derive(Default)]
struct IdentityHasher(u64);

impl Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<IdentityHasher>>;

/// A completed id: its check bits and its expiry. 8 bytes, so that a map entry (with its
/// 8-byte hash as the key) is 16.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Done {
    check: u32,
    until: u32,
}

/// An entry of the completion order: 16 bytes.
#[derive(Clone, Copy)]
struct Queued {
    hash: u64,
    done: Done,
}

struct Shard {
    /// The most ids this shard remembers.
    capacity: usize,
    /// Completed ids, by the 64-bit part of their key. Two ids whose 64-bit parts collide
    /// but not their check bits (a new id against n others: odds of about n / 2⁶⁴) share a
    /// slot and the later replaces the earlier: the earlier is forgotten, not mistaken for
    /// the later. Ids whose 96 bits collide (about n / 2⁹⁶) are mistaken for each other.
    completed: Table,
    /// Completed ids in the order they completed, for expiry and eviction; an entry that no
    /// longer matches the map is stale and skipped.
    order: VecDeque<Queued>,
    /// Ids in progress: owner and lease expiry (ms). Few at a time.
    in_progress: FastMap<Key, (OwnerToken, u64)>,
    /// The leases of `in_progress`, earliest expiry first, for reclaiming expired ones; an
    /// entry that no longer matches the map is stale and skipped.
    leases: VecDeque<Lease>,
}

/// An entry of the lease order: an id in progress and its lease expiry (ms).
#[derive(Clone, Copy)]
struct Lease {
    until: u64,
    key: Key,
}

impl Lease {
    fn is_current(&self, in_progress: &FastMap<Key, (OwnerToken, u64)>) -> bool {
        matches!(in_progress.get(&self.key), Some(&(_, until)) if until == self.until)
    }
}

impl Shard {
    fn new(capacity: usize, preallocate: bool) -> Self {
        let n = if preallocate { capacity } else { 0 };
        Self {
            capacity,
            completed: Table::with_capacity(n),
            order: VecDeque::with_capacity(n),
            in_progress: FastMap::default(),
            leases: VecDeque::new(),
        }
    }

    fn completed_until(&self, key: &Key) -> Option<u32> {
        match self.completed.get(key.hash) {
            Some((check, until)) if check == key.check => Some(until),
            _ => None,
        }
    }

    fn is_current(&self, q: &Queued) -> bool {
        self.completed.get(q.hash) == Some((q.done.check, q.done.until))
    }

    /// Drops completed ids whose retention expired, oldest first.
    fn expire(&mut self, now: u64) {
        while let Some(q) = self.order.front().copied() {
            if self.is_current(&q) {
                if !tick_expired(q.done.until, now) {
                    break;
                }
                self.completed.remove(q.hash);
            }
            self.order.pop_front();
        }
    }

    /// Evicts the oldest completed id. Returns false when there is none.
    fn evict_oldest(&mut self) -> bool {
        while let Some(q) = self.order.pop_front() {
            if self.is_current(&q) {
                self.completed.remove(q.hash);
                return true;
            }
        }
        false
    }

    /// Drops ids in progress whose lease expired, earliest first: an expired lease never
    /// counts against the capacity.
    fn reclaim_leases(&mut self, now: u64) {
        while let Some(lease) = self.leases.front().copied() {
            if lease.is_current(&self.in_progress) {
                if lease.until > now {
                    break;
                }
                self.in_progress.remove(&lease.key);
            }
            self.leases.pop_front();
        }
    }

    /// Puts an id in progress, its lease in expiry order.
    fn start(&mut self, key: Key, owner: OwnerToken, until: u64) {
        self.in_progress.insert(key, (owner, until));
        // With one lease duration, leases come in expiry order and are appended in O(1);
        // a shorter one is put in its place.
        let at = match self.leases.back() {
            Some(last) if last.until > until => self.leases.partition_point(|l| l.until <= until),
            _ => self.leases.len(),
        };
        self.leases.insert(at, Lease { until, key });
        // Settled ids leave stale entries behind a live lease: drop them once they
        // outnumber the live ones (O(1) amortised: at least half of those visited go).
        if self.leases.len() > 2 * self.in_progress.len() + 64 {
            let in_progress = &self.in_progress;
            self.leases.retain(|l| l.is_current(in_progress));
        }
    }

    fn owned(&self, key: &Key, owner: OwnerToken, now: u64) -> bool {
        matches!(self.in_progress.get(key), Some(&(o, lease)) if o == owner && lease > now)
    }
}

#[async_trait]
impl IdempotencyStore for MemoryStore {
    async fn claim(
        &self,
        id: &str,
        owner: OwnerToken,
        lease: Duration,
    ) -> StoreResult<ClaimOutcome> {
        let (key, index) = self.key(id);
        let now = self.now();
        let mut shard = self.shard(index);
        if let Some(&(_, until)) = shard.in_progress.get(&key) {
            if until > now {
                return Ok(ClaimOutcome::InProgress);
            }
            shard.in_progress.remove(&key); // expired lease: taken over below
        }
        if let Some(until) = shard.completed_until(&key) {
            if !tick_expired(until, now) {
                return Ok(ClaimOutcome::Completed);
            }
            shard.completed.remove(key.hash);
        }
        shard.expire(now);
        shard.reclaim_leases(now);
        if shard.completed.len() + shard.in_progress.len() >= shard.capacity
            && !shard.evict_oldest()
        {
            return Err(StoreError::new(
                StoreErrorKind::Full,
                "memory store is full of ids in progress",
                None,
            ));
        }
        shard.start(key, owner, now.saturating_add(millis(lease)));
        Ok(ClaimOutcome::Claimed)
    }

    async fn complete(
        &self,
        id: &str,
        owner: OwnerToken,
        retention: Duration,
    ) -> StoreResult<SettleOutcome> {
        let (key, index) = self.key(id);
        let now = self.now();
        let mut shard = self.shard(index);
        if !shard.owned(&key, owner, now) {
            return Ok(SettleOutcome::NotOwner);
        }
        shard.in_progress.remove(&key);
        let done = Done {
            check: key.check,
            until: ticks_until(now, retention),
        };
        shard.completed.insert(key.hash, (done.check, done.until));
        shard.order.push_back(Queued {
            hash: key.hash,
            done,
        });
        Ok(SettleOutcome::Settled)
    }

    async fn release(&self, id: &str, owner: OwnerToken) -> StoreResult<SettleOutcome> {
        let (key, index) = self.key(id);
        let now = self.now();
        let mut shard = self.shard(index);
        if !shard.owned(&key, owner, now) {
            return Ok(SettleOutcome::NotOwner);
        }
        shard.in_progress.remove(&key);
        Ok(SettleOutcome::Settled)
    }

    async fn inspect(&self, id: &str) -> StoreResult<IdState> {
        let (key, index) = self.key(id);
        let now = self.now();
        let shard = self.shard(index);
        if let Some(&(_, until)) = shard.in_progress.get(&key)
            && until > now
        {
            return Ok(IdState::InProgress {
                lease_left: Duration::from_millis(until - now),
            });
        }
        Ok(match shard.completed_until(&key) {
            Some(until) if !tick_expired(until, now) => IdState::Completed {
                retention_left: Duration::from_millis(u64::from(until) * TICK_MS - now),
            },
            _ => IdState::Absent,
        })
    }

    async fn force_release(&self, id: &str) -> StoreResult<bool> {
        let (key, index) = self.key(id);
        let now = self.now();
        let mut shard = self.shard(index);
        match shard.in_progress.get(&key) {
            Some(&(_, until)) if until > now => {
                shard.in_progress.remove(&key);
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    #[tokio::test]
    async fn full_store_evicts_the_oldest_completed_id() {
        let store = MemoryStore::builder().capacity(3).shards(1).build();
        for id in ["a", "b", "c"] {
            let o = OwnerToken::generate();
            assert_eq!(
                store.claim(id, o, MINUTE).await.unwrap(),
                ClaimOutcome::Claimed
            );
            store.complete(id, o, MINUTE).await.unwrap();
        }
        let o = OwnerToken::generate();
        assert_eq!(
            store.claim("d", o, MINUTE).await.unwrap(),
            ClaimOutcome::Claimed
        );
        assert_eq!(store.len(), 3);
        // "a" was the oldest: forgotten. "b" is still known.
        let o2 = OwnerToken::generate();
        assert_eq!(
            store.claim("b", o2, MINUTE).await.unwrap(),
            ClaimOutcome::Completed
        );
        assert_eq!(
            store.claim("a", o2, MINUTE).await.unwrap(),
            ClaimOutcome::Claimed
        );
    }

    #[tokio::test]
    async fn full_of_ids_in_progress_refuses_claims() {
        let store = MemoryStore::builder().capacity(2).shards(1).build();
        for id in ["a", "b"] {
            let outcome = store
                .claim(id, OwnerToken::generate(), MINUTE)
                .await
                .unwrap();
            assert_eq!(outcome, ClaimOutcome::Claimed);
        }
        let err = store
            .claim("c", OwnerToken::generate(), MINUTE)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), StoreErrorKind::Full);
        // A duplicate of an id in progress is still answered.
        let dup = store
            .claim("a", OwnerToken::generate(), MINUTE)
            .await
            .unwrap();
        assert_eq!(dup, ClaimOutcome::InProgress);
    }

    #[tokio::test]
    async fn reclaimed_ids_leave_no_stale_eviction_order() {
        let store = MemoryStore::builder().capacity(2).shards(1).build();
        let zero = Duration::ZERO;
        let o = OwnerToken::generate();
        store.claim("a", o, MINUTE).await.unwrap();
        // Completed with zero retention: expired at once.
        store.complete("a", o, zero).await.unwrap();
        let o = OwnerToken::generate();
        assert_eq!(
            store.claim("a", o, MINUTE).await.unwrap(),
            ClaimOutcome::Claimed
        );
        store.complete("a", o, MINUTE).await.unwrap();
        let o = OwnerToken::generate();
        store.claim("b", o, MINUTE).await.unwrap();
        store.complete("b", o, MINUTE).await.unwrap();
        // Full: "a" (completed second time) is the oldest live entry and is evicted, once.
        store
            .claim("c", OwnerToken::generate(), MINUTE)
            .await
            .unwrap();
        assert_eq!(store.len(), 2);
        let probe = OwnerToken::generate();
        assert_eq!(
            store.claim("b", probe, MINUTE).await.unwrap(),
            ClaimOutcome::Completed
        );
    }

    #[tokio::test]
    async fn never_holds_more_than_its_capacity() {
        let store = MemoryStore::builder().capacity(10).shards(3).build();
        for i in 0..1000 {
            let (id, o) = (format!("id-{i}"), OwnerToken::generate());
            if store.claim(&id, o, MINUTE).await.unwrap() == ClaimOutcome::Claimed {
                store.complete(&id, o, MINUTE).await.unwrap();
            }
            assert!(store.len() <= 10, "{} ids after {i} claims", store.len());
        }
        // Each of the 3 shards (4, 3 and 3 ids) is full.
        assert_eq!(store.len(), 10);
    }

    #[tokio::test]
    async fn settled_ids_leave_a_bounded_lease_order() {
        let store = MemoryStore::builder().capacity(1000).shards(1).build();
        // A live lease at the front: the stale entries behind it are not reclaimed by expiry.
        store
            .claim("held", OwnerToken::generate(), MINUTE)
            .await
            .unwrap();
        for i in 0..10_000 {
            let (id, o) = (format!("id-{i}"), OwnerToken::generate());
            store.claim(&id, o, MINUTE).await.unwrap();
            {
                let shard = store.shard(0);
                assert_eq!(shard.in_progress.len(), 2);
                assert!(shard.leases.len() <= 2 * 2 + 64, "{}", shard.leases.len());
            }
            store.complete(&id, o, MINUTE).await.unwrap();
        }
    }

    #[test]
    fn debug_shows_the_bounds() {
        let store = MemoryStore::builder().capacity(10).shards(2).build();
        let debug = format!("{store:?}");
        assert!(
            debug.contains("capacity: 10") && debug.contains("shards: 2"),
            "{debug}"
        );
    }
}
