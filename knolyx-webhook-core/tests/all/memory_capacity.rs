//! The memory store at capacity: expired leases never count against it (issue 11, defect 5).
//! Time is a manual clock the store reads, so leases expire without sleeping.

use std::time::Duration;

use knolyx_webhook_core::store::{
    ClaimOutcome, IdempotencyStore, MemoryStore, OwnerToken, StoreErrorKind,
};
use knolyx_webhook_core::testing::model::ManualClock;

const LEASE: Duration = Duration::from_secs(60);
const RETENTION: Duration = Duration::from_secs(72 * 3600);

fn store(capacity: usize, shards: Option<usize>) -> (MemoryStore, ManualClock) {
    let clock = ManualClock::new();
    let mut builder = MemoryStore::builder()
        .capacity(capacity)
        .manual_clock(clock.clone());
    if let Some(shards) = shards {
        builder = builder.shards(shards);
    }
    (builder.build(), clock)
}

/// A claim by a new owner, its error reduced to its kind.
async fn claim(
    store: &MemoryStore,
    id: &str,
    lease: Duration,
) -> Result<ClaimOutcome, StoreErrorKind> {
    let outcome = store.claim(id, OwnerToken::generate(), lease).await;
    outcome.map_err(|e| e.kind())
}

/// Claims new ids until every shard is full of ids in progress (a claim to a shard already
/// full of live leases is refused, as it must be).
async fn fill_with_leases(store: &MemoryStore, lease: Duration) {
    let mut i = 0;
    while store.len() < store.capacity() {
        assert!(i < store.capacity() * 100, "never filled: {store:?}");
        match claim(store, &format!("old-{i}"), lease).await {
            Ok(ClaimOutcome::Claimed) | Err(StoreErrorKind::Full) => {}
            other => panic!("claim of a new id in a filling store: {other:?}"),
        }
        i += 1;
    }
}

/// A store full of expired leases takes new claims: every one is claimed, none refused as
/// full, at small capacities (below the old sweep threshold of 64 leases per shard) and
/// larger ones, with the default sharding and with chosen shard counts.
#[tokio::test]
async fn a_store_full_of_expired_leases_claims_new_ids() {
    let configs = [
        (1000, None),
        (1000, Some(32)),
        (100, None),
        (100, Some(8)),
        (63, Some(1)),
        (10, Some(3)),
        (1, Some(1)),
        (5000, Some(4)),
    ];
    for (capacity, shards) in configs {
        let (store, clock) = store(capacity, shards);
        fill_with_leases(&store, LEASE).await;
        clock.advance(LEASE); // every lease expired, none settled
        for j in 0..2 * capacity {
            let (id, owner) = (format!("new-{j}"), OwnerToken::generate());
            let outcome = store.claim(&id, owner, LEASE).await;
            assert!(
                matches!(outcome, Ok(ClaimOutcome::Claimed)),
                "capacity {capacity}, shards {shards:?}: new id {j} after the leases \
                 expired: {outcome:?}"
            );
            store.complete(&id, owner, RETENTION).await.unwrap();
            assert!(store.len() <= capacity, "{} ids", store.len());
        }
    }
}

/// In one shard, the expired leases make room for exactly as many new ids in progress; then
/// the shard is full of live leases and refuses, as before.
#[tokio::test]
async fn expired_leases_make_room_for_as_many_ids_in_progress() {
    for capacity in [1, 2, 63, 64, 65, 300] {
        let (store, clock) = store(capacity, Some(1));
        fill_with_leases(&store, LEASE).await;
        clock.advance(LEASE);
        for j in 0..capacity {
            let outcome = claim(&store, &format!("new-{j}"), LEASE).await;
            assert_eq!(
                outcome,
                Ok(ClaimOutcome::Claimed),
                "capacity {capacity}: {j}"
            );
        }
        let outcome = claim(&store, "one-too-many", LEASE).await;
        assert_eq!(outcome, Err(StoreErrorKind::Full), "capacity {capacity}");
    }
}

/// Leases of different lengths: the short ones expire first and make room, although they
/// were claimed between long ones; the long ones still hold their place.
#[tokio::test]
async fn short_leases_expire_first_between_long_ones() {
    let (short, long) = (Duration::from_secs(1), Duration::from_secs(600));
    let (store, clock) = store(4, Some(1));
    for (id, lease) in [("a", long), ("b", short), ("c", long), ("d", short)] {
        assert_eq!(
            claim(&store, id, lease).await,
            Ok(ClaimOutcome::Claimed),
            "{id}"
        );
    }
    clock.advance(short);
    for id in ["e", "f"] {
        assert_eq!(
            claim(&store, id, long).await,
            Ok(ClaimOutcome::Claimed),
            "{id}"
        );
    }
    assert_eq!(claim(&store, "g", long).await, Err(StoreErrorKind::Full));
    for id in ["a", "c", "e", "f"] {
        assert_eq!(
            claim(&store, id, long).await,
            Ok(ClaimOutcome::InProgress),
            "{id}"
        );
    }
}
