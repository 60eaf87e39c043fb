use std::sync::Arc;
use std::time::Duration;

use knolyx_webhook_core::testing::conformance;
use knolyx_webhook_redis::RedisStore;

use crate::support::{redis_url, unique_prefix};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs KNOLYX_TEST_REDIS_URL (README: Running the store tests)"]
async fn redis_store_passes_the_conformance_suite() {
    let Some(url) = redis_url() else { return };
    let store = RedisStore::builder()
        .key_prefix(unique_prefix("conformance"))
        // Generous: CI machines are small and busy; the failure tests use short limits.
        .operation_timeout(Duration::from_secs(10))
        .connect(&url)
        .await
        .expect("connect to redis");
    conformance::run(Arc::new(store)).await;
}
