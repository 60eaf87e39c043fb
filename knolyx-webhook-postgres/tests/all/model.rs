//! The PostgreSQL store against the reference model of the store states (random sequences
//! of claim, complete, release and real time passing), with fewer cases than the memory
//! store's run.

use std::sync::Arc;
use std::time::Duration;

use knolyx_webhook_core::testing::model::{self, ModelConfig, TimeControl};
use knolyx_webhook_postgres::PostgresStore;

use crate::support::{database_url, drop_table, pool, unique_table};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs KNOLYX_TEST_DATABASE_URL (README: Running the store tests)"]
async fn postgres_store_matches_the_model() {
    let Some(url) = database_url() else { return };
    let pool = pool(&url).await;
    let table = unique_table("model");
    let store = PostgresStore::builder(pool.clone())
        .table(&table)
        .build()
        .unwrap();
    store.migrate().await.unwrap();
    model::check(Arc::new(store), config()).await;
    drop_table(&pool, &table).await;
}

/// Fewer cases than the memory store's run, in real time with room for a busy database.
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
