use std::sync::Arc;
use std::time::{Duration, Instant};

use knolyx_webhook_core::testing::conformance::{self, Persistence};

use knolyx_webhook_core::store::{IdempotencyStore, OwnerToken, StoreErrorKind};
use knolyx_webhook_redis::RedisStore;

use crate::support::{PrivateRedis, free_port, redis_url};

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

#[tokio::test]
async fn a_wrong_port_fails_quickly_with_unavailable_or_timeout() {
    // Needs no server: runs even without KNOLYX_TEST_REDIS_URL.
    let url = format!("redis://127.0.0.1:{}/", free_port());

    // Lazy: the application starts; each operation fails within its limit.
    let store = RedisStore::builder()
        .operation_timeout(Duration::from_millis(500))
        .connection_timeout(Duration::from_millis(200))
        .connect_lazy(&url)
        .expect("a lazy store does not connect");
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

    // Eager: connecting fails, with the connection error as its source.
    let started = Instant::now();
    let err = RedisStore::builder()
        .connection_timeout(Duration::from_millis(200))
        .reconnect_retries(0)
        .connect(&url)
        .await
        .expect_err("nothing listens there");
    assert_eq!(err.kind(), StoreErrorKind::Refused, "{err}");
    assert!(std::error::Error::source(&err).is_some());
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

/// Kill the server under a live store, see the store fail fast, start the server again on
/// the same port, and see the same store work again: the connection manager reconnects
/// (core's `conformance::recovery`; the private server keeps nothing on disk).
#[tokio::test]
#[ignore = "needs KNOLYX_TEST_REDIS_URL (README: Running the store tests)"]
async fn the_store_recovers_when_redis_comes_back() {
    let Some(_) = redis_url() else { return };
    let server = tokio::sync::Mutex::new(PrivateRedis::start().await);
    let url = server.lock().await.url();
    let store = RedisStore::builder()
        .operation_timeout(Duration::from_millis(500))
        .connection_timeout(Duration::from_millis(200))
        .connect(&url)
        .await
        .expect("connect to the private server");
    conformance::recovery(
        Arc::new(store),
        || async { server.lock().await.kill() },
        || async { server.lock().await.restart().await },
        Duration::from_secs(2),
        Persistence::Volatile,
    )
    .await;
}
