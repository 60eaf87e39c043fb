//! The store behind Redis Sentinel (`redis+sentinel://` URLs), on a private master, replica
//! and 3 sentinels: the conformance suite and the model, and a failover.

use std::sync::Arc;
use std::time::{Duration, Instant};

use knolyx_webhook_core::store::{
    ClaimOutcome, IdempotencyStore, OwnerToken, SettleOutcome, StoreErrorKind,
};
use knolyx_webhook_core::testing::{conformance, model};
use knolyx_webhook_redis::RedisStore;
use redis::AsyncTypedCommands;

use crate::support::{
    PrivateSentinel, commandstats, raw_port, redis_server_installed, store, unique_prefix,
};

const MINUTE: Duration = Duration::from_secs(60);

async fn start() -> Option<PrivateSentinel> {
    if !redis_server_installed() {
        return None;
    }
    Some(PrivateSentinel::start().await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs redis-server and redis-cli (README: Running the store tests)"]
async fn the_sentinel_store_passes_the_conformance_suite_and_the_model() {
    let Some(setup) = start().await else { return };
    let suite = store(&setup.url(), &unique_prefix("conformance")).await;
    conformance::run(Arc::new(suite)).await;
    let modelled = store(&setup.url(), &unique_prefix("model")).await;
    model::check(Arc::new(modelled), crate::model::config()).await;
}

/// Complete an id, kill the master: claims fail (503, Knolyx retries) until the sentinels
/// promote the replica, then resume on it without restarting the store, and the id
/// completed before the failover is still completed (the store waited for the replica to
/// acknowledge the complete).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server and redis-cli (README: Running the store tests)"]
async fn deliveries_resume_on_the_promoted_replica_and_completed_ids_stay_completed() {
    let Some(mut setup) = start().await else {
        return;
    };
    let prefix = unique_prefix("failover");
    let store = RedisStore::builder()
        .key_prefix(&prefix)
        .operation_timeout(Duration::from_millis(1000))
        .connection_timeout(Duration::from_millis(300))
        .connect(&setup.url())
        .await
        .expect("connect through the sentinels");
    let owner = OwnerToken::generate();
    assert_eq!(
        store.claim("before", owner, MINUTE).await.unwrap(),
        ClaimOutcome::Claimed
    );
    assert_eq!(
        store.complete("before", owner, MINUTE).await.unwrap(),
        SettleOutcome::Settled
    );

    // The complete waited for the replica's acknowledgement (`WAIT`, pipelined with it;
    // twice, as its first `EVALSHA` answered NOSCRIPT), so the replica has it.
    let stats = commandstats(&mut raw_port(setup.master_port()).await).await;
    assert_eq!(stats.get("wait"), Some(&2), "{stats:?}");
    let mut replica = raw_port(setup.replica_port()).await;
    assert_eq!(
        replica
            .get(format!("{prefix}before"))
            .await
            .unwrap()
            .as_deref(),
        Some("c")
    );

    setup.kill_master();
    let killed = Instant::now();
    // Like Knolyx: retry the delivery (a fresh id each time) until it is accepted.
    let mut attempt = 0;
    let resumed = loop {
        attempt += 1;
        match store
            .claim(&format!("after-{attempt}"), owner, MINUTE)
            .await
        {
            Ok(ClaimOutcome::Claimed) => break format!("{prefix}after-{attempt}"),
            Ok(other) => panic!("a fresh id answered {other:?}"),
            Err(e) => {
                assert!(
                    matches!(
                        e.kind(),
                        StoreErrorKind::Unavailable
                            | StoreErrorKind::Refused
                            | StoreErrorKind::Timeout
                    ),
                    "{e:?}"
                );
                assert!(
                    killed.elapsed() < Duration::from_secs(30),
                    "claims did not resume within 30 s of the master's death: {e:?}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    eprintln!(
        "claims resumed {:?} after the master was killed ({attempt} attempts)",
        killed.elapsed()
    );
    // On the promoted replica.
    assert_eq!(setup.wait_for_promotion().await, setup.replica_port());
    // A fresh connection: the promotion closed the replica's clients.
    let mut promoted = raw_port(setup.replica_port()).await;
    assert_eq!(
        promoted.get(&resumed).await.unwrap(),
        Some(format!("p:{owner}"))
    );
    // Completed before the failover, still completed after it.
    assert_eq!(
        store
            .claim("before", OwnerToken::generate(), MINUTE)
            .await
            .unwrap(),
        ClaimOutcome::Completed
    );
}
