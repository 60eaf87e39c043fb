use std::sync::Arc;

use knolyx_webhook_core::testing::conformance;

use crate::support::{database_url, drop_table, migrated, pool, unique_table};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs KNOLYX_TEST_DATABASE_URL (README: Running the store tests)"]
async fn postgres_store_passes_the_conformance_suite() {
    let Some(url) = database_url() else { return };
    let pool = pool(&url).await;
    let table = unique_table("conformance");
    let store = migrated(&pool, &table).await;
    conformance::run(Arc::new(store)).await;
    drop_table(&pool, &table).await;
}
