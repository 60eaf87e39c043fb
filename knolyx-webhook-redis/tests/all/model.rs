//! The Redis store against the reference model of the store states (random sequences of
//! claim, complete, release and real time passing), with fewer cases than the memory
//! store's run.

use std::sync::Arc;
use std::time::Duration;

use knolyx_webhook_core::testing::model::{self, ModelConfig, TimeControl};
use knolyx_webhook_redis::RedisStore;

use crate::support::{redis_url, unique_prefix};

/// The model run of every Redis topology: few, short cases in real time.
pub(crate) fn config() -> ModelConfig {
    let mut config = ModelConfig::real_time();
    config.cases = 6;
    config.max_ops = 16;
    config.short = Duration::from_millis(300);
    config.time = TimeControl::Real {
        slack: Duration::from_millis(200),
    };
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs KNOLYX_TEST_REDIS_URL (README: Running the store tests)"]
async fn redis_store_matches_the_model() {
    let Some(url) = redis_url() else { return };
    let store = RedisStore::builder()
        .key_prefix(unique_prefix("model"))
        .connect(&url)
        .await
        .unwrap();
    model::check(Arc::new(store), config()).await;
}
