use knolyx_webhook_core::store::OwnerToken;

pub(crate) fn redis_url() -> Option<String> {
    knolyx_webhook_core::testing::service_url("KNOLYX_TEST_REDIS_URL")
}

/// A key prefix no other test (or run) uses.
pub(crate) fn unique_prefix(test: &str) -> String {
    format!("knolyx-test:{test}:{}:", OwnerToken::generate())
}

/// A store at `url` (any topology) with its own `prefix`, and a generous operation timeout:
/// CI machines are small and busy (the failure tests use short limits).
pub(crate) async fn store(url: &str, prefix: &str) -> knolyx_webhook_redis::RedisStore {
    knolyx_webhook_redis::RedisStore::builder()
        .key_prefix(prefix)
        .operation_timeout(std::time::Duration::from_secs(10))
        .connect(url)
        .await
        .unwrap_or_else(|e| panic!("connect to {url}: {e:?}"))
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

pub(crate) use knolyx_webhook_redis::testing::{
    PrivateCluster, PrivateSentinel, redis_server_installed,
};

/// A plain connection to one server on 127.0.0.1.
pub(crate) async fn raw_port(port: u16) -> redis::aio::MultiplexedConnection {
    raw(&format!("redis://127.0.0.1:{port}/")).await
}

/// `cmdstat_<name>:calls=N,…` lines of `INFO commandstats`, as name → calls (failed and
/// rejected included).
pub(crate) async fn commandstats(
    redis: &mut redis::aio::MultiplexedConnection,
) -> std::collections::BTreeMap<String, u64> {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(redis)
        .await
        .unwrap();
    info.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("cmdstat_")?;
            let (name, fields) = rest.split_once(':')?;
            let field = |key: &str| -> u64 {
                fields
                    .split(',')
                    .find_map(|f| f.strip_prefix(key)?.parse().ok())
                    .unwrap_or(0)
            };
            // `calls` includes the calls that failed while running (NOSCRIPT); those
            // refused before running are `rejected_calls`.
            let calls = field("calls=") + field("rejected_calls=");
            // Subcommands appear as `config|resetstat`: count them under their command.
            let command = name.split('|').next().unwrap_or(name);
            Some((command.to_owned(), calls))
        })
        .fold(Default::default(), |mut stats, (command, calls)| {
            *stats.entry(command).or_default() += calls;
            stats
        })
}
