use knolyx_webhook_core::store::OwnerToken;

pub(crate) fn redis_url() -> Option<String> {
    knolyx_webhook_core::testing::service_url("KNOLYX_TEST_REDIS_URL")
}

/// A key prefix no other test (or run) uses.
pub(crate) fn unique_prefix(test: &str) -> String {
    format!("knolyx-test:{test}:{}:", OwnerToken::generate())
}

/// A plain connection for looking at keys and stats.
pub(crate) async fn raw(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .expect("connect to redis")
}

pub(crate) use knolyx_webhook_redis::testing::{PrivateRedis, free_port};
