//! Model-based tests of the memory store (`testing::model`): random sequences of claim,
//! complete, release and the passing of time, compared answer by answer with the model.

use std::sync::Arc;

use knolyx_webhook_core::store::MemoryStore;
use knolyx_webhook_core::testing::model::{self, ManualClock, ModelConfig};

/// Exact time: a manual clock the store reads, expiries tested at their boundaries.
#[tokio::test]
async fn memory_store_matches_the_model_with_a_manual_clock() {
    let clock = ManualClock::new();
    let store = MemoryStore::builder().manual_clock(clock.clone()).build();
    model::check(Arc::new(store), ModelConfig::manual(clock)).await;
}

/// Real time, as the Redis and PostgreSQL stores run it: a few sequences, to keep the
/// real-time driver itself tested.
#[tokio::test]
async fn memory_store_matches_the_model_in_real_time() {
    let mut config = ModelConfig::real_time();
    config.cases = 3;
    config.max_ops = 16;
    model::check(Arc::new(MemoryStore::new()), config).await;
}

/// The model catches a store that breaks a rule: here, one that lets anyone complete.
#[tokio::test]
#[should_panic(expected = "disagrees with the model")]
async fn a_store_without_fencing_is_caught() {
    use std::collections::HashMap;
    use std::sync::Mutex;
    use std::time::Duration;

    use knolyx_webhook_core::store::{
        ClaimOutcome, IdempotencyStore, OwnerToken, SettleOutcome, StoreResult, async_trait,
    };

    /// Completes as the id's last claimant, whoever asks.
    #[derive(Debug)]
    struct Unfenced(MemoryStore, Mutex<HashMap<String, OwnerToken>>);

    #[async_trait]
    impl IdempotencyStore for Unfenced {
        async fn claim(&self, id: &str, o: OwnerToken, d: Duration) -> StoreResult<ClaimOutcome> {
            let outcome = self.0.claim(id, o, d).await?;
            if outcome == ClaimOutcome::Claimed {
                self.1.lock().unwrap().insert(id.to_owned(), o);
            }
            Ok(outcome)
        }
        async fn complete(
            &self,
            id: &str,
            o: OwnerToken,
            d: Duration,
        ) -> StoreResult<SettleOutcome> {
            let claimant = self.1.lock().unwrap().get(id).copied().unwrap_or(o);
            self.0.complete(id, claimant, d).await
        }
        async fn release(&self, id: &str, o: OwnerToken) -> StoreResult<SettleOutcome> {
            self.0.release(id, o).await
        }
    }

    let clock = ManualClock::new();
    let store = MemoryStore::builder().manual_clock(clock.clone()).build();
    let mut config = ModelConfig::manual(clock);
    config.seed = Some(1);
    model::check(Arc::new(Unfenced(store, Mutex::default())), config).await;
}
