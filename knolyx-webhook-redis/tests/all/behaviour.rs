use knolyx_webhook_core::testing::conformance;
use std::time::Duration;

use knolyx_webhook_core::store::{ClaimOutcome, IdempotencyStore, OwnerToken, SettleOutcome};
use knolyx_webhook_redis::RedisStore;
use redis::AsyncTypedCommands;

use crate::support::{PrivateRedis, commandstats, raw, redis_url, store, unique_prefix};

const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);

#[tokio::test]
#[ignore = "needs KNOLYX_TEST_REDIS_URL (README: Running the store tests)"]
async fn keys_are_prefix_then_id_holding_the_owner_then_c() {
    let Some(url) = redis_url() else { return };
    let prefix = unique_prefix("layout");
    let store = store(&url, &prefix).await;
    let mut redis = raw(&url).await;
    let key = format!("{prefix}msg-1");
    let owner = OwnerToken::generate();

    assert_eq!(
        store.claim("msg-1", owner, MINUTE).await.unwrap(),
        ClaimOutcome::Claimed
    );
    assert_eq!(redis.get(&key).await.unwrap(), Some(format!("p:{owner}")));
    let ttl = pttl(&mut redis, &key).await;
    assert!((55_000..=60_000).contains(&ttl), "lease TTL {ttl} ms");

    assert_eq!(
        store.complete("msg-1", owner, HOUR).await.unwrap(),
        SettleOutcome::Settled
    );
    assert_eq!(redis.get(&key).await.unwrap().as_deref(), Some("c"));
    let ttl = pttl(&mut redis, &key).await;
    assert!(
        (3_590_000..=3_600_000).contains(&ttl),
        "retention TTL {ttl} ms"
    );

    let other = OwnerToken::generate();
    assert_eq!(
        store.claim("msg-2", other, MINUTE).await.unwrap(),
        ClaimOutcome::Claimed
    );
    assert_eq!(
        store.release("msg-2", other).await.unwrap(),
        SettleOutcome::Settled
    );
    assert_eq!(redis.get(format!("{prefix}msg-2")).await.unwrap(), None);
    redis.del(&key).await.unwrap();
}

#[tokio::test]
#[ignore = "needs KNOLYX_TEST_REDIS_URL (README: Running the store tests)"]
async fn the_default_prefix_is_knolyx_webhook() {
    let Some(url) = redis_url() else { return };
    let store = RedisStore::connect(&url).await.expect("connect to redis");
    assert_eq!(store.key_prefix(), b"knolyx-webhook:");
    let id = format!("default-prefix-{}", OwnerToken::generate());
    let owner = OwnerToken::generate();
    assert_eq!(
        store.claim(&id, owner, MINUTE).await.unwrap(),
        ClaimOutcome::Claimed
    );
    let mut redis = raw(&url).await;
    let key = format!("knolyx-webhook:{id}");
    assert_eq!(redis.get(&key).await.unwrap(), Some(format!("p:{owner}")));
    assert_eq!(
        store.release(&id, owner).await.unwrap(),
        SettleOutcome::Settled
    );
}

#[tokio::test]
#[ignore = "needs KNOLYX_TEST_REDIS_URL (README: Running the store tests)"]
async fn prefixes_isolate_applications() {
    let Some(url) = redis_url() else { return };
    let billing = store(&url, &unique_prefix("billing")).await;
    let crm = store(&url, &unique_prefix("crm")).await;
    conformance::isolation(&billing, &crm, "same-id").await;
}

#[tokio::test]
#[ignore = "needs KNOLYX_TEST_REDIS_URL (README: Running the store tests)"]
async fn settling_is_fenced_by_the_owner_in_the_scripts() {
    let Some(url) = redis_url() else { return };
    let prefix = unique_prefix("fencing");
    let store = store(&url, &prefix).await;
    let mut redis = raw(&url).await;
    let key = format!("{prefix}id");
    let (owner, intruder) = (OwnerToken::generate(), OwnerToken::generate());

    assert_eq!(
        store.claim("id", owner, MINUTE).await.unwrap(),
        ClaimOutcome::Claimed
    );
    assert_eq!(
        store.complete("id", intruder, HOUR).await.unwrap(),
        SettleOutcome::NotOwner
    );
    assert_eq!(
        store.release("id", intruder).await.unwrap(),
        SettleOutcome::NotOwner
    );
    // Untouched: same value, lease TTL (not the retention).
    assert_eq!(redis.get(&key).await.unwrap(), Some(format!("p:{owner}")));
    assert!(pttl(&mut redis, &key).await <= 60_000);

    // A lease that expired is a key that is gone: the stale owner cannot settle, not even
    // re-create it.
    assert_eq!(
        store
            .claim("short", owner, Duration::from_millis(30))
            .await
            .unwrap(),
        ClaimOutcome::Claimed
    );
    tokio::time::sleep(Duration::from_millis(80)).await;
    assert_eq!(
        store.complete("short", owner, HOUR).await.unwrap(),
        SettleOutcome::NotOwner
    );
    assert_eq!(redis.get(format!("{prefix}short")).await.unwrap(), None);

    // A zero lease is sent as 1 ms (Redis refuses PX 0).
    assert_eq!(
        store.claim("zero", owner, Duration::ZERO).await.unwrap(),
        ClaimOutcome::Claimed
    );
    redis.del(&key).await.unwrap();
}

/// Counts the commands the store sends, with `INFO commandstats` of a private server (no
/// other client there): each claim, complete and release is exactly one `EVALSHA`, so a
/// delivery is two round trips. Commands run inside scripts (SET, GET, DEL) are counted by
/// Redis too, but they are not round trips; the test checks that nothing else is sent.
#[tokio::test]
#[ignore = "needs KNOLYX_TEST_REDIS_URL (README: Running the store tests)"]
async fn a_delivery_is_two_round_trips() {
    let Some(_) = redis_url() else { return };
    let server = PrivateRedis::start().await;
    let store = store(&server.url(), "rt:").await;
    let mut redis = raw(&server.url()).await;

    // Warm up: the first use of each script loads it (NOSCRIPT, then EVAL).
    let warm = OwnerToken::generate();
    store.claim("warm-1", warm, MINUTE).await.unwrap();
    store.complete("warm-1", warm, MINUTE).await.unwrap();
    store.claim("warm-2", warm, MINUTE).await.unwrap();
    store.release("warm-2", warm).await.unwrap();

    const DELIVERIES: u64 = 50;
    redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .exec_async(&mut redis)
        .await
        .unwrap();
    for i in 0..DELIVERIES {
        let owner = OwnerToken::generate();
        let id = format!("delivery-{i}");
        assert_eq!(
            store.claim(&id, owner, MINUTE).await.unwrap(),
            ClaimOutcome::Claimed
        );
        let settled = if i % 2 == 0 {
            store.complete(&id, owner, MINUTE).await.unwrap()
        } else {
            store.release(&id, owner).await.unwrap()
        };
        assert_eq!(settled, SettleOutcome::Settled);
        // A duplicate is one round trip too.
        store
            .claim(&id, OwnerToken::generate(), MINUTE)
            .await
            .unwrap();
    }
    let stats = commandstats(&mut redis).await;
    assert_eq!(stats.get("evalsha"), Some(&(3 * DELIVERIES)), "{stats:?}");
    let sent_by_the_store: Vec<_> = stats
        .keys()
        .filter(|c| {
            !matches!(
                c.as_str(),
                "evalsha" | "set" | "get" | "del" | "info" | "config"
            )
        })
        .collect();
    assert!(
        sent_by_the_store.is_empty(),
        "unexpected commands: {stats:?}"
    );

    // After SCRIPT FLUSH (or a restart), the first call of a script costs one more round
    // trip: EVALSHA answers NOSCRIPT, EVAL sends the body and caches it.
    redis::cmd("SCRIPT")
        .arg("FLUSH")
        .exec_async(&mut redis)
        .await
        .unwrap();
    redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .exec_async(&mut redis)
        .await
        .unwrap();
    let owner = OwnerToken::generate();
    assert_eq!(
        store.claim("after-flush", owner, MINUTE).await.unwrap(),
        ClaimOutcome::Claimed
    );
    assert_eq!(
        store.complete("after-flush", owner, MINUTE).await.unwrap(),
        SettleOutcome::Settled
    );
    assert_eq!(
        store.claim("after-flush", owner, MINUTE).await.unwrap(),
        ClaimOutcome::Completed
    );
    let stats = commandstats(&mut redis).await;
    assert_eq!(stats.get("eval"), Some(&2), "{stats:?}");
    assert_eq!(
        stats.get("evalsha").copied().unwrap_or(0) + stats.get("eval").copied().unwrap_or(0),
        5,
        "{stats:?}"
    );
}

async fn pttl(redis: &mut redis::aio::MultiplexedConnection, key: &str) -> i64 {
    redis::cmd("PTTL")
        .arg(key)
        .query_async(redis)
        .await
        .unwrap()
}
