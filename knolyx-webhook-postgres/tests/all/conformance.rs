use std::sync::Arc;
use std::time::Duration;

use knolyx_webhook_core::testing::conformance;
use knolyx_webhook_postgres::PostgresStore;

use crate::support::{database_url, drop_table, pool, unique_table};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_store_passes_the_conformance_suite() {
    let Some(url) = database_url() else { return };
    let pool = pool(&url).await;
    let table = unique_table("conformance");
    let store = PostgresStore::builder(pool.clone())
        .table(&table)
        // Generous: CI machines are small and busy; the failure tests use short limits.
        .operation_timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    store.migrate().await.expect("migrate");
    conformance::run(Arc::new(store)).await;
    drop_table(&pool, &table).await;
}
