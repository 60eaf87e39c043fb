//! The conformance suite for [`IdempotencyStore`] implementations.
//!
//! [`run`] exercises a store against the rules in the [store module docs](crate::store):
//! claim, complete and release; fencing of non-owners; concurrent claims with exactly one
//! winner, of a new id and of an id whose lease or retention expired (the others seeing the
//! takeover in progress, never the expired completion); lease expiry and takeover; a stale
//! owner fenced after a takeover; retention expiry; the operator's `inspect` and
//! `force_release` (skipped for a store that implements neither); and 10,000 distinct ids.
//! It panics, naming the rule, at the first violation.
//!
//! Every id it uses starts with a random prefix, so it can run repeatedly, and in
//! parallel, against a shared server (Redis, PostgreSQL) without cleaning up. Its only
//! waits are a little longer than the short leases and retentions it sets itself
//! ([`SHORT`]); everything else is ordered by awaiting the store's answers.
//!
//! ```
//! use std::sync::Arc;
//! use knolyx_webhook_core::{store::MemoryStore, testing::conformance};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! conformance::run(Arc::new(MemoryStore::new())).await;
//! # }
//! ```
//!
//! It needs a Tokio runtime (`#[tokio::test]`); with the multi-threaded runtime, the
//! concurrent claims really run in parallel.
//!
//! A store backed by a service should also pass [`recovery`]: it fails fast during an
//! outage of the service and works again after it, without being rebuilt.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Barrier;
use tokio::task::JoinSet;

use crate::store::{
    ClaimOutcome, IdState, IdempotencyStore, OwnerToken, SettleOutcome, StoreErrorKind,
};

/// The short lease and retention the suite sets to test expiry.
pub const SHORT: Duration = Duration::from_millis(300);
/// How long the suite waits for a [`SHORT`] lease or retention to expire.
const WAIT: Duration = Duration::from_millis(450);
const LONG: Duration = Duration::from_secs(3600);
/// Lease and retention of the many-ids check: long enough for the check, short enough not
/// to leave 10,000 entries on a shared server for long.
const MANY_TTL: Duration = Duration::from_secs(120);
/// How many distinct ids the "many ids" check uses.
pub const MANY_IDS: usize = 10_000;
/// How many concurrent claims of one id the suite makes.
pub const CONCURRENT_CLAIMS: usize = 32;

/// Runs every check against `store`, panicking at the first broken rule.
pub async fn run<S: IdempotencyStore + ?Sized>(store: Arc<S>) {
    let prefix = format!("conformance-{}-", OwnerToken::generate());
    let id = |name: &str| format!("{prefix}{name}");
    let s = &*store;

    claim_complete(s, &id("claim-complete")).await;
    release(s, &id("release")).await;
    settle_fencing(s, &id("fencing")).await;
    ids_are_independent(s, &id("independent")).await;
    concurrent_claims(&store, &id("concurrent")).await;
    // The checks that wait run side by side, so the suite waits once.
    let (lease, retention) = (id("lease"), id("retention"));
    let (race, retention_race) = (id("takeover-race"), id("retention-takeover-race"));
    let operator_id = id("operator");
    tokio::join!(
        operator(s, &operator_id),
        lease_expiry_and_takeover(s, &lease),
        retention_expiry(s, &retention),
        concurrent_takeover(&store, &race, Expired::Lease),
        concurrent_takeover(&store, &retention_race, Expired::Retention),
    );
    many_ids(&store, &id("many")).await;
}

fn owner() -> OwnerToken {
    OwnerToken::generate()
}

async fn claim<S: IdempotencyStore + ?Sized>(
    store: &S,
    id: &str,
    owner: OwnerToken,
    lease: Duration,
) -> ClaimOutcome {
    match store.claim(id, owner, lease).await {
        Ok(outcome) => outcome,
        Err(e) => panic!("conformance: claim({id:?}) failed: {e} ({:?})", e.kind()),
    }
}

async fn complete<S: IdempotencyStore + ?Sized>(
    store: &S,
    id: &str,
    owner: OwnerToken,
    retention: Duration,
) -> SettleOutcome {
    match store.complete(id, owner, retention).await {
        Ok(outcome) => outcome,
        Err(e) => panic!("conformance: complete({id:?}) failed: {e}"),
    }
}

async fn release_as<S: IdempotencyStore + ?Sized>(
    store: &S,
    id: &str,
    owner: OwnerToken,
) -> SettleOutcome {
    match store.release(id, owner).await {
        Ok(outcome) => outcome,
        Err(e) => panic!("conformance: release({id:?}) failed: {e}"),
    }
}

async fn claim_complete<S: IdempotencyStore + ?Sized>(store: &S, id: &str) {
    let a = owner();
    assert_eq!(
        claim(store, id, a, LONG).await,
        ClaimOutcome::Claimed,
        "conformance: the first claim of an absent id must be Claimed"
    );
    assert_eq!(
        claim(store, id, owner(), LONG).await,
        ClaimOutcome::InProgress,
        "conformance: a claim of an id in progress must be InProgress"
    );
    assert_eq!(
        claim(store, id, a, LONG).await,
        ClaimOutcome::InProgress,
        "conformance: even its owner's second claim of an id in progress must be InProgress"
    );
    assert_eq!(
        complete(store, id, a, LONG).await,
        SettleOutcome::Settled,
        "conformance: the owner's complete must be Settled"
    );
    assert_eq!(
        claim(store, id, owner(), LONG).await,
        ClaimOutcome::Completed,
        "conformance: a claim of a completed id must be Completed"
    );
    assert_eq!(
        complete(store, id, a, LONG).await,
        SettleOutcome::NotOwner,
        "conformance: completing a completed id again must be NotOwner"
    );
    assert_eq!(
        release_as(store, id, a).await,
        SettleOutcome::NotOwner,
        "conformance: releasing a completed id must be NotOwner and leave it completed"
    );
    assert_eq!(
        claim(store, id, owner(), LONG).await,
        ClaimOutcome::Completed,
        "conformance: a completed id must stay completed after a refused release"
    );
}

async fn release<S: IdempotencyStore + ?Sized>(store: &S, id: &str) {
    let a = owner();
    assert_eq!(claim(store, id, a, LONG).await, ClaimOutcome::Claimed);
    assert_eq!(
        release_as(store, id, a).await,
        SettleOutcome::Settled,
        "conformance: the owner's release must be Settled"
    );
    assert_eq!(
        release_as(store, id, a).await,
        SettleOutcome::NotOwner,
        "conformance: a second release must be NotOwner"
    );
    assert_eq!(
        complete(store, id, a, LONG).await,
        SettleOutcome::NotOwner,
        "conformance: completing a released claim must be NotOwner"
    );
    let b = owner();
    assert_eq!(
        claim(store, id, b, LONG).await,
        ClaimOutcome::Claimed,
        "conformance: a released id must be claimable again"
    );
    assert_eq!(complete(store, id, b, LONG).await, SettleOutcome::Settled);
}

async fn settle_fencing<S: IdempotencyStore + ?Sized>(store: &S, id: &str) {
    let a = owner();
    let intruder = owner();
    assert_eq!(
        complete(store, id, intruder, LONG).await,
        SettleOutcome::NotOwner,
        "conformance: completing an absent id must be NotOwner"
    );
    assert_eq!(
        claim(store, id, owner(), LONG).await,
        ClaimOutcome::Claimed,
        "conformance: a refused complete must not create the id"
    );
    let id2 = format!("{id}-2");
    assert_eq!(claim(store, &id2, a, LONG).await, ClaimOutcome::Claimed);
    assert_eq!(
        complete(store, &id2, intruder, LONG).await,
        SettleOutcome::NotOwner,
        "conformance: a non-owner's complete must be NotOwner"
    );
    assert_eq!(
        release_as(store, &id2, intruder).await,
        SettleOutcome::NotOwner,
        "conformance: a non-owner's release must be NotOwner"
    );
    assert_eq!(
        claim(store, &id2, owner(), LONG).await,
        ClaimOutcome::InProgress,
        "conformance: a non-owner's settle must leave the claim in progress"
    );
    assert_eq!(complete(store, &id2, a, LONG).await, SettleOutcome::Settled);
}

async fn ids_are_independent<S: IdempotencyStore + ?Sized>(store: &S, id: &str) {
    let similar = [
        id.to_owned(),
        format!("{id}x"),
        format!("{id}X"),
        format!("{id} "),
        format!("{id}-é-日本"),
        format!("{id}{}", "z".repeat(255usize.saturating_sub(id.len() + 1))),
    ];
    let a = owner();
    for id in &similar {
        assert_eq!(
            claim(store, id, a, LONG).await,
            ClaimOutcome::Claimed,
            "conformance: distinct ids must be claimed independently ({id:?})"
        );
    }
    assert_eq!(
        complete(store, &similar[0], a, LONG).await,
        SettleOutcome::Settled
    );
    for id in &similar[1..] {
        assert_eq!(
            claim(store, id, owner(), LONG).await,
            ClaimOutcome::InProgress,
            "conformance: completing one id must not complete another ({id:?})"
        );
        assert_eq!(release_as(store, id, a).await, SettleOutcome::Settled);
    }
}

async fn concurrent_claims<S: IdempotencyStore + ?Sized>(store: &Arc<S>, id: &str) {
    let barrier = Arc::new(Barrier::new(CONCURRENT_CLAIMS));
    let mut tasks = JoinSet::new();
    for _ in 0..CONCURRENT_CLAIMS {
        let store = Arc::clone(store);
        let barrier = Arc::clone(&barrier);
        let id = id.to_owned();
        tasks.spawn(async move {
            let me = owner();
            barrier.wait().await;
            (me, claim(&*store, &id, me, LONG).await)
        });
    }
    let results = tasks.join_all().await;
    let winners: Vec<OwnerToken> = results
        .iter()
        .filter(|(_, o)| *o == ClaimOutcome::Claimed)
        .map(|(me, _)| *me)
        .collect();
    assert_eq!(
        winners.len(),
        1,
        "conformance: of {CONCURRENT_CLAIMS} concurrent claims exactly one must win, got {results:?}"
    );
    assert!(
        results
            .iter()
            .all(|(_, o)| matches!(o, ClaimOutcome::Claimed | ClaimOutcome::InProgress)),
        "conformance: losers of concurrent claims must see InProgress: {results:?}"
    );
    assert_eq!(
        complete(&**store, id, winners[0], LONG).await,
        SettleOutcome::Settled
    );
    let mut tasks = JoinSet::new();
    for _ in 0..CONCURRENT_CLAIMS {
        let store = Arc::clone(store);
        let id = id.to_owned();
        tasks.spawn(async move { claim(&*store, &id, owner(), LONG).await });
    }
    let after = tasks.join_all().await;
    assert!(
        after.iter().all(|o| *o == ClaimOutcome::Completed),
        "conformance: concurrent claims of a completed id must all be Completed: {after:?}"
    );
}

/// What expired before [`concurrent_takeover`].
#[derive(Clone, Copy, Debug)]
enum Expired {
    /// The lease of a claim never settled.
    Lease,
    /// The retention of a completion.
    Retention,
}

/// Concurrent claims of an id whose lease or retention just expired: exactly one takes it
/// over, and every other one sees that takeover in progress — never `Completed` from an
/// expired completion (a stale read would answer a duplicate while the handler runs, and
/// the event would be lost if it failed).
async fn concurrent_takeover<S: IdempotencyStore + ?Sized>(
    store: &Arc<S>,
    id: &str,
    expired: Expired,
) {
    let first = owner();
    assert_eq!(
        claim(&**store, id, first, SHORT).await,
        ClaimOutcome::Claimed
    );
    if let Expired::Retention = expired {
        assert_eq!(
            complete(&**store, id, first, SHORT).await,
            SettleOutcome::Settled
        );
    }
    tokio::time::sleep(WAIT).await;
    let barrier = Arc::new(Barrier::new(CONCURRENT_CLAIMS));
    let mut tasks = JoinSet::new();
    for _ in 0..CONCURRENT_CLAIMS {
        let (store, barrier, id) = (Arc::clone(store), Arc::clone(&barrier), id.to_owned());
        tasks.spawn(async move {
            barrier.wait().await;
            claim(&*store, &id, owner(), LONG).await
        });
    }
    let results = tasks.join_all().await;
    let winners = results
        .iter()
        .filter(|o| **o == ClaimOutcome::Claimed)
        .count();
    assert_eq!(
        winners, 1,
        "conformance: of {CONCURRENT_CLAIMS} concurrent claims of an expired {expired:?} \
         exactly one must take it over, got {results:?}"
    );
    assert!(
        results
            .iter()
            .all(|o| matches!(o, ClaimOutcome::Claimed | ClaimOutcome::InProgress)),
        "conformance: the losers of a takeover of an expired {expired:?} must see InProgress, \
         never Completed: {results:?}"
    );
}

async fn lease_expiry_and_takeover<S: IdempotencyStore + ?Sized>(store: &S, id: &str) {
    let stale = owner();
    assert_eq!(claim(store, id, stale, SHORT).await, ClaimOutcome::Claimed);
    let released = format!("{id}-released");
    assert_eq!(
        claim(store, &released, stale, SHORT).await,
        ClaimOutcome::Claimed
    );
    tokio::time::sleep(WAIT).await;

    assert_eq!(
        release_as(store, &released, stale).await,
        SettleOutcome::NotOwner,
        "conformance: settling after the lease expired must be NotOwner"
    );
    let b = owner();
    assert_eq!(
        claim(store, id, b, LONG).await,
        ClaimOutcome::Claimed,
        "conformance: a claim after the lease expired must take the id over"
    );
    assert_eq!(
        complete(store, id, stale, LONG).await,
        SettleOutcome::NotOwner,
        "conformance: the stale owner's complete must be fenced after a takeover"
    );
    assert_eq!(
        release_as(store, id, stale).await,
        SettleOutcome::NotOwner,
        "conformance: the stale owner's release must be fenced after a takeover"
    );
    assert_eq!(
        claim(store, id, owner(), LONG).await,
        ClaimOutcome::InProgress,
        "conformance: the new owner's claim must survive the stale owner's settle"
    );
    assert_eq!(
        complete(store, id, b, LONG).await,
        SettleOutcome::Settled,
        "conformance: the new owner must be able to complete"
    );
    assert_eq!(
        claim(store, id, owner(), LONG).await,
        ClaimOutcome::Completed
    );
}

async fn retention_expiry<S: IdempotencyStore + ?Sized>(store: &S, id: &str) {
    let a = owner();
    assert_eq!(claim(store, id, a, LONG).await, ClaimOutcome::Claimed);
    assert_eq!(complete(store, id, a, SHORT).await, SettleOutcome::Settled);
    tokio::time::sleep(WAIT).await;
    let b = owner();
    assert_eq!(
        claim(store, id, b, LONG).await,
        ClaimOutcome::Claimed,
        "conformance: a completed id must be claimable once its retention expired"
    );
    assert_eq!(complete(store, id, b, LONG).await, SettleOutcome::Settled);
}

async fn many_ids<S: IdempotencyStore + ?Sized>(store: &Arc<S>, prefix: &str) {
    const WORKERS: usize = 16;
    let mut tasks = JoinSet::new();
    for worker in 0..WORKERS {
        let store = Arc::clone(store);
        let prefix = prefix.to_owned();
        tasks.spawn(async move {
            let me = owner();
            for i in (worker..MANY_IDS).step_by(WORKERS) {
                let id = format!("{prefix}-{i}");
                let outcome = claim(&*store, &id, me, MANY_TTL).await;
                assert_eq!(
                    outcome,
                    ClaimOutcome::Claimed,
                    "conformance: id {i} of {MANY_IDS} distinct ids was not Claimed"
                );
                // Complete the even ones, leave the odd ones in progress.
                if i % 2 == 0 {
                    assert_eq!(
                        complete(&*store, &id, me, MANY_TTL).await,
                        SettleOutcome::Settled
                    );
                }
            }
        });
    }
    tasks.join_all().await;
    let mut tasks = JoinSet::new();
    for worker in 0..WORKERS {
        let store = Arc::clone(store);
        let prefix = prefix.to_owned();
        tasks.spawn(async move {
            for i in (worker..MANY_IDS).step_by(WORKERS) {
                let id = format!("{prefix}-{i}");
                let expected = if i % 2 == 0 {
                    ClaimOutcome::Completed
                } else {
                    ClaimOutcome::InProgress
                };
                assert_eq!(
                    claim(&*store, &id, owner(), MANY_TTL).await,
                    expected,
                    "conformance: id {i} of {MANY_IDS} was forgotten or mixed up"
                );
            }
        });
    }
    tasks.join_all().await;
}

/// What the backing service keeps through an outage, for [`recovery`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Persistence {
    /// Data written before the outage is still there after it (a database, Redis with AOF).
    Durable,
    /// The outage may lose what was written (Redis without persistence, killed).
    Volatile,
}

/// Checks that a store fails fast and recovers by itself across an outage of its backing
/// service, without being rebuilt: a claim before; `stop`; three claims that fail with
/// [`StoreErrorKind::Unavailable`] or
/// [`Timeout`](crate::store::StoreErrorKind::Timeout), each within `fail_within`; `start`;
/// then, within 10 s of retrying, a claim, a complete and a duplicate as usual (and, for a
/// [`Persistence::Durable`] service, the claim made before the outage still in progress).
///
/// The pipeline turns those errors into 503 with `Retry-After` (fail closed), so Knolyx
/// retries, and delivery resumes once the store does.
///
/// ```no_run
/// # async fn run(store: std::sync::Arc<knolyx_webhook_core::MemoryStore>) {
/// use std::time::Duration;
/// use knolyx_webhook_core::testing::conformance::{self, Persistence};
///
/// conformance::recovery(
///     store,
///     || async { /* stop the service (kill the server, stop a proxy) */ },
///     || async { /* start it again, on the same address */ },
///     Duration::from_secs(2),
///     Persistence::Durable,
/// )
/// .await;
/// # }
/// ```
pub async fn recovery<S, Stop, StopFut, Start, StartFut>(
    store: Arc<S>,
    stop: Stop,
    start: Start,
    fail_within: Duration,
    persistence: Persistence,
) where
    S: IdempotencyStore + ?Sized,
    Stop: FnOnce() -> StopFut,
    StopFut: std::future::Future<Output = ()>,
    Start: FnOnce() -> StartFut,
    StartFut: std::future::Future<Output = ()>,
{
    use crate::store::StoreErrorKind;
    use std::time::Instant;

    let prefix = format!("conformance-recovery-{}-", OwnerToken::generate());
    let (before, during, after) = (
        format!("{prefix}before"),
        format!("{prefix}during"),
        format!("{prefix}after"),
    );
    let unreachable = |kind: StoreErrorKind| {
        assert!(
            matches!(
                kind,
                StoreErrorKind::Unavailable | StoreErrorKind::Refused | StoreErrorKind::Timeout
            ),
            "conformance: during an outage the store must fail with Unavailable, Refused or \
             Timeout, got {kind:?}"
        );
    };
    assert_eq!(
        claim(&*store, &before, owner(), LONG).await,
        ClaimOutcome::Claimed
    );

    stop().await;
    for _ in 0..3 {
        let started = Instant::now();
        let error = match store.claim(&during, owner(), LONG).await {
            Ok(outcome) => panic!("conformance: a claim succeeded during the outage: {outcome:?}"),
            Err(error) => error,
        };
        unreachable(error.kind());
        assert!(
            started.elapsed() <= fail_within,
            "conformance: a claim took {:?} to fail during the outage (limit {fail_within:?})",
            started.elapsed()
        );
    }

    start().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let me = owner();
    let outcome = loop {
        match store.claim(&after, me, LONG).await {
            Ok(outcome) => break outcome,
            Err(error) => {
                unreachable(error.kind());
                assert!(
                    Instant::now() < deadline,
                    "conformance: the store did not recover within 10 s: {error}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    assert_eq!(
        outcome,
        ClaimOutcome::Claimed,
        "conformance: first claim after the outage"
    );
    assert_eq!(
        complete(&*store, &after, me, LONG).await,
        SettleOutcome::Settled
    );
    assert_eq!(
        claim(&*store, &after, owner(), LONG).await,
        ClaimOutcome::Completed
    );
    if persistence == Persistence::Durable {
        assert_eq!(
            claim(&*store, &before, owner(), LONG).await,
            ClaimOutcome::InProgress,
            "conformance: a claim made before the outage must survive it"
        );
    }
}

/// Checks that two stores sharing one backing service under different namespaces (two
/// Redis key prefixes, two PostgreSQL tables: two applications) never see each other's
/// ids: the same id is claimed in both, completing it in `a` neither completes nor fences
/// it in `b`, and `b`'s owner settles `b`'s claim. Leaves the id completed in both.
pub async fn isolation<A, B>(a: &A, b: &B, id: &str)
where
    A: IdempotencyStore + ?Sized,
    B: IdempotencyStore + ?Sized,
{
    let (owner_a, owner_b) = (owner(), owner());
    assert_eq!(claim(a, id, owner_a, LONG).await, ClaimOutcome::Claimed);
    assert_eq!(
        claim(b, id, owner_b, LONG).await,
        ClaimOutcome::Claimed,
        "conformance: a claim in one namespace must not be seen in another"
    );
    assert_eq!(complete(a, id, owner_a, LONG).await, SettleOutcome::Settled);
    assert_eq!(
        claim(b, id, owner(), LONG).await,
        ClaimOutcome::InProgress,
        "conformance: completing in one namespace must not complete another"
    );
    assert_eq!(
        complete(b, id, owner_a, LONG).await,
        SettleOutcome::NotOwner,
        "conformance: one namespace's owner must not settle another's claim"
    );
    assert_eq!(complete(b, id, owner_b, LONG).await, SettleOutcome::Settled);
}

async fn inspect<S: IdempotencyStore + ?Sized>(store: &S, id: &str) -> IdState {
    match store.inspect(id).await {
        Ok(state) => state,
        Err(e) => panic!("conformance: inspect({id:?}) failed: {e} ({:?})", e.kind()),
    }
}

async fn force_release<S: IdempotencyStore + ?Sized>(store: &S, id: &str) -> bool {
    match store.force_release(id).await {
        Ok(freed) => freed,
        Err(e) => panic!(
            "conformance: force_release({id:?}) failed: {e} ({:?})",
            e.kind()
        ),
    }
}

/// Whether `left` is about `full`: no more than a minute under it, and at most a second
/// over (a store may round expiries up to its clock's tick, never down).
fn left_of(left: Duration, full: Duration) -> bool {
    left <= full + Duration::from_secs(1) && left + Duration::from_secs(60) > full
}

/// The operator's operations: `inspect` tells absent, in progress and completed apart
/// with the time left; `force_release` frees an id in progress whoever holds it (the
/// holder is then fenced out) and leaves completed and absent ids alone. A store that
/// implements neither (both answer `Unsupported`, the trait's defaults) is not checked.
async fn operator<S: IdempotencyStore + ?Sized>(store: &S, id: &str) {
    let unsupported = |r: Result<_, crate::store::StoreError>| matches!(r, Err(e) if e.kind() == StoreErrorKind::Unsupported);
    if unsupported(store.inspect(id).await.map(drop))
        && unsupported(store.force_release(id).await.map(drop))
    {
        eprintln!("conformance: the store implements neither inspect nor force_release: skipped");
        return;
    }
    assert_eq!(
        inspect(store, id).await,
        IdState::Absent,
        "conformance: an id never claimed must be absent"
    );
    assert!(
        !force_release(store, id).await,
        "conformance: force_release of an absent id must free nothing"
    );
    let crashed = owner();
    assert_eq!(claim(store, id, crashed, LONG).await, ClaimOutcome::Claimed);
    match inspect(store, id).await {
        IdState::InProgress { lease_left } => assert!(
            left_of(lease_left, LONG),
            "conformance: the lease left must be about {LONG:?}, not {lease_left:?}"
        ),
        other => panic!("conformance: a claimed id must be in progress, not {other:?}"),
    }
    assert!(
        force_release(store, id).await,
        "conformance: force_release must free an id in progress, whoever holds it"
    );
    assert_eq!(
        inspect(store, id).await,
        IdState::Absent,
        "conformance: a force-released id must be absent"
    );
    assert_eq!(
        complete(store, id, crashed, LONG).await,
        SettleOutcome::NotOwner,
        "conformance: the holder of a force-released claim must be fenced out"
    );
    let next = owner();
    assert_eq!(
        claim(store, id, next, LONG).await,
        ClaimOutcome::Claimed,
        "conformance: a force-released id must be claimable at once"
    );
    assert_eq!(
        complete(store, id, next, LONG).await,
        SettleOutcome::Settled
    );
    match inspect(store, id).await {
        IdState::Completed { retention_left } => assert!(
            left_of(retention_left, LONG),
            "conformance: the retention left must be about {LONG:?}, not {retention_left:?}"
        ),
        other => panic!("conformance: a completed id must show completed, not {other:?}"),
    }
    assert!(
        !force_release(store, id).await,
        "conformance: force_release must leave a completed id alone"
    );
    assert_eq!(
        claim(store, id, owner(), LONG).await,
        ClaimOutcome::Completed,
        "conformance: a completed id must stay completed after force_release"
    );
    // An expired lease is absent, and nothing to free.
    let expiring = format!("{id}-expiring");
    assert_eq!(
        claim(store, &expiring, owner(), SHORT).await,
        ClaimOutcome::Claimed
    );
    tokio::time::sleep(WAIT).await;
    assert_eq!(
        inspect(store, &expiring).await,
        IdState::Absent,
        "conformance: an id whose lease expired must be absent"
    );
    assert!(
        !force_release(store, &expiring).await,
        "conformance: force_release of an expired lease must free nothing"
    );
}
