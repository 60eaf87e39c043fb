use std::sync::Arc;
use std::time::{Duration, Instant};

use knolyx_webhook_core::testing::conformance::{self, Persistence};

use knolyx_webhook_core::store::{IdempotencyStore, OwnerToken, StoreErrorKind};
use knolyx_webhook_postgres::PostgresStore;
use sqlx::postgres::PgPoolOptions;

use crate::support::{Proxy, database_url, drop_table, pool, unique_table};

const MINUTE: Duration = Duration::from_secs(60);

fn assert_unreachable(kind: StoreErrorKind) {
    assert!(
        matches!(
            kind,
            StoreErrorKind::Unavailable | StoreErrorKind::Refused | StoreErrorKind::Timeout
        ),
        "expected Unavailable, Refused or Timeout, got {kind:?}"
    );
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[tokio::test]
#[ignore = "needs KNOLYX_TEST_DATABASE_URL (README: Running the store tests)"]
async fn a_wrong_port_fails_quickly_with_unavailable_or_timeout() {
    let Some(url) = database_url() else { return };
    let port = free_port();
    let proxy_less = {
        let options: sqlx::postgres::PgConnectOptions = url.parse().unwrap();
        options.host("127.0.0.1").port(port)
    };
    let pool = PgPoolOptions::new()
        .acquire_timeout(Duration::from_millis(300))
        .connect_lazy_with(proxy_less.clone());
    let store = PostgresStore::builder(pool)
        .operation_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    for _ in 0..3 {
        let started = Instant::now();
        let err = store
            .claim("id", OwnerToken::generate(), MINUTE)
            .await
            .expect_err("nothing listens there");
        assert_unreachable(err.kind());
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }

    let bad_url = format!("postgres://postgres@127.0.0.1:{port}/test");
    let started = Instant::now();
    let err = PostgresStore::connect(&bad_url)
        .await
        .expect_err("nothing listens there");
    assert_unreachable(err.kind());
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
}

/// Cut the connection to the database under a live store (a proxy stopped: connections
/// closed, new ones refused), see the store fail fast, restore it on the same port, and
/// see the same store (and pool) work again (core's `conformance::recovery`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs KNOLYX_TEST_DATABASE_URL (README: Running the store tests)"]
async fn the_store_recovers_when_the_database_comes_back() {
    let Some(url) = database_url() else { return };
    let direct = pool(&url).await;
    let table = unique_table("recover");
    let proxy = Proxy::start(&url).await;
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(Duration::from_millis(500))
        .connect_with(proxy.options(&url))
        .await
        .expect("connect through the proxy");
    let store = PostgresStore::builder(pool)
        .table(&table)
        .operation_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    store.migrate().await.expect("migrate");
    let proxy = tokio::sync::Mutex::new(proxy);
    conformance::recovery(
        Arc::new(store),
        || async { proxy.lock().await.stop().await },
        || async { proxy.lock().await.restart().await },
        Duration::from_secs(3),
        Persistence::Durable,
    )
    .await;
    drop_table(&direct, &table).await;
}
