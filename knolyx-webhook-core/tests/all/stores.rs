//! The memory store passes the conformance suite.

use std::sync::Arc;

use knolyx_webhook_core::store::{IdempotencyStore, MemoryStore};
use knolyx_webhook_core::testing::conformance;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_store_passes_the_conformance_suite() {
    conformance::run(Arc::new(MemoryStore::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_store_with_one_shard_passes_the_conformance_suite() {
    conformance::run(Arc::new(MemoryStore::builder().shards(1).build())).await;
}

#[tokio::test]
async fn the_suite_runs_on_arc_dyn() {
    let store: Arc<dyn IdempotencyStore> = Arc::new(MemoryStore::new());
    conformance::run(store).await;
}

/// A store that forgets completions must fail the suite: the suite can fail.
#[tokio::test]
async fn the_suite_catches_a_broken_store() {
    use knolyx_webhook_core::store::*;
    use std::time::Duration;

    #[derive(Debug, Default)]
    struct Forgetful(MemoryStore);

    #[async_trait]
    impl IdempotencyStore for Forgetful {
        async fn claim(&self, id: &str, o: OwnerToken, l: Duration) -> StoreResult<ClaimOutcome> {
            self.0.claim(id, o, l).await
        }
        async fn complete(
            &self,
            id: &str,
            o: OwnerToken,
            _: Duration,
        ) -> StoreResult<SettleOutcome> {
            self.0.release(id, o).await // forgets instead of remembering
        }
        async fn release(&self, id: &str, o: OwnerToken) -> StoreResult<SettleOutcome> {
            self.0.release(id, o).await
        }
    }

    let run = tokio::spawn(conformance::run(Arc::new(Forgetful::default())));
    let err = run.await.unwrap_err();
    assert!(err.is_panic());
}

/// The outage check passes for a store that fails during the outage and recovers after it,
/// and catches one that does not fail at all.
#[tokio::test]
async fn the_recovery_check_passes_a_recovering_store_and_catches_a_deaf_one() {
    use knolyx_webhook_core::testing::conformance::Persistence;
    use knolyx_webhook_core::testing::{Fault, FaultyStore, StoreOp, Times};
    use std::time::Duration;

    let store = FaultyStore::new(MemoryStore::new());
    conformance::recovery(
        Arc::new(store.clone()),
        || async {
            for op in [StoreOp::Claim, StoreOp::Complete, StoreOp::Release] {
                store.inject(op, Fault::Unavailable, Times::UntilReset);
            }
        },
        || async { store.reset_all() },
        Duration::from_secs(1),
        Persistence::Durable,
    )
    .await;

    let deaf = Arc::new(MemoryStore::new());
    let check = tokio::spawn(conformance::recovery(
        deaf,
        || async {},
        || async {},
        Duration::from_secs(1),
        Persistence::Durable,
    ));
    assert!(check.await.unwrap_err().is_panic());
}

/// The isolation check passes two separate stores and catches one store seen twice.
#[tokio::test]
async fn the_isolation_check_passes_separate_stores_and_catches_a_shared_one() {
    let (a, b) = (MemoryStore::new(), MemoryStore::new());
    conformance::isolation(&a, &b, "same-id").await;
    let shared = Arc::new(MemoryStore::new());
    let check = tokio::spawn(async move {
        conformance::isolation(&*shared, &*shared, "same-id").await;
    });
    assert!(check.await.unwrap_err().is_panic());
}
