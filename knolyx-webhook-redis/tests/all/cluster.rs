//! The store on a private Redis Cluster of 3 masters (`redis+cluster://` URLs): the
//! conformance suite and the model, keys on every master, a `redis://` URL at one node
//! refused, and a key moved to another master still found.

use std::sync::Arc;
use std::time::Duration;

use knolyx_webhook_core::store::{
    ClaimOutcome, IdempotencyStore, OwnerToken, SettleOutcome, StoreErrorKind,
};
use knolyx_webhook_core::testing::{conformance, model};
use knolyx_webhook_redis::RedisStore;

use crate::support::{
    PrivateCluster, commandstats, raw_port, redis_server_installed, store, unique_prefix,
};

const MINUTE: Duration = Duration::from_secs(60);

async fn start() -> Option<PrivateCluster> {
    if !redis_server_installed() {
        return None;
    }
    Some(PrivateCluster::start().await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs redis-server and redis-cli (README: Running the store tests)"]
async fn the_cluster_store_passes_the_conformance_suite_and_the_model() {
    let Some(cluster) = start().await else { return };
    let suite = store(&cluster.url(), &unique_prefix("conformance")).await;
    conformance::run(Arc::new(suite)).await;
    let modelled = store(&cluster.url(), &unique_prefix("model")).await;
    model::check(Arc::new(modelled), crate::model::config()).await;
}

/// Ids hash to slots on every master: each master holds some of the keys, and each one
/// loaded the scripts itself (its first `EVALSHA` answered `NOSCRIPT`, the store sent
/// `EVAL` to the same node).
#[tokio::test]
#[ignore = "needs redis-server and redis-cli (README: Running the store tests)"]
async fn ids_spread_over_every_master_and_each_loads_the_scripts() {
    let Some(cluster) = start().await else { return };
    let prefix = unique_prefix("spread");
    let store = store(&cluster.url(), &prefix).await;
    for i in 0..60 {
        let id = format!("id-{i}");
        let owner = OwnerToken::generate();
        assert_eq!(
            store.claim(&id, owner, MINUTE).await.unwrap(),
            ClaimOutcome::Claimed
        );
        let settled = if i % 5 == 4 {
            store.release(&id, owner).await.unwrap()
        } else {
            store.complete(&id, owner, MINUTE).await.unwrap()
        };
        assert_eq!(settled, SettleOutcome::Settled, "{id}");
        let again = store
            .claim(&id, OwnerToken::generate(), MINUTE)
            .await
            .unwrap();
        let expected = if i % 5 == 4 {
            ClaimOutcome::Claimed
        } else {
            ClaimOutcome::Completed
        };
        assert_eq!(again, expected, "{id}");
    }
    for port in cluster.ports() {
        let mut node = raw_port(port).await;
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{prefix}*"))
            .query_async(&mut node)
            .await
            .unwrap();
        assert!(!keys.is_empty(), "no key on the master at port {port}");
        let stats = commandstats(&mut node).await;
        assert!(
            stats.get("eval").copied().unwrap_or(0) >= 1,
            "{port}: {stats:?}"
        );
        assert!(
            stats.get("evalsha").copied().unwrap_or(0) >= 1,
            "{port}: {stats:?}"
        );
    }
}

/// A `redis://` URL at one node of a cluster is refused at start-up, saying it is a
/// cluster and how to configure one, and a lazy store refuses every operation the same
/// way, even those whose key is on that node: it never half-works.
#[tokio::test]
#[ignore = "needs redis-server and redis-cli (README: Running the store tests)"]
async fn a_redis_url_at_a_cluster_node_is_refused_saying_how_to_configure_it() {
    let Some(cluster) = start().await else { return };
    let url = cluster.node_url(0);
    let err = RedisStore::connect(&url)
        .await
        .expect_err("a redis:// URL at a cluster node");
    let shown = err.to_string();
    assert!(shown.contains("Redis Cluster"), "{shown}");
    assert!(shown.contains("redis+cluster://"), "{shown}");
    assert_eq!(err.kind(), StoreErrorKind::Misconfigured);

    let lazy = RedisStore::builder()
        .connect_lazy(&url)
        .expect("a lazy store does not connect");
    for i in 0..20 {
        let err = lazy
            .claim(&format!("lazy-{i}"), OwnerToken::generate(), MINUTE)
            .await
            .expect_err("a redis:// URL at a cluster node");
        assert!(err.to_string().contains("redis+cluster://"), "{err}");
    }
}

/// A completed id whose slot is migrated to another master (`CLUSTER SETSLOT` and
/// `MIGRATE`, as `redis-cli --cluster reshard` does) is still found: during the migration
/// through `ASK`, after it through `MOVED`.
#[tokio::test]
#[ignore = "needs redis-server and redis-cli (README: Running the store tests)"]
async fn a_key_moved_to_another_master_is_still_found() {
    let Some(cluster) = start().await else { return };
    let prefix = unique_prefix("moved");
    let store = store(&cluster.url(), &prefix).await;
    let owner = OwnerToken::generate();
    assert_eq!(
        store.claim("moving", owner, MINUTE).await.unwrap(),
        ClaimOutcome::Claimed
    );
    assert_eq!(
        store.complete("moving", owner, MINUTE).await.unwrap(),
        SettleOutcome::Settled
    );

    let key = format!("{prefix}moving");
    let ports = cluster.ports();
    let mut nodes = Vec::new();
    for &port in &ports {
        nodes.push(raw_port(port).await);
    }
    let slot: u16 = redis::cmd("CLUSTER")
        .arg("KEYSLOT")
        .arg(&key)
        .query_async(&mut nodes[0])
        .await
        .unwrap();
    let mut ids = Vec::new();
    let mut source = None;
    for (i, node) in nodes.iter_mut().enumerate() {
        let id: String = redis::cmd("CLUSTER")
            .arg("MYID")
            .query_async(node)
            .await
            .unwrap();
        ids.push(id);
        let here: u64 = redis::cmd("CLUSTER")
            .arg("COUNTKEYSINSLOT")
            .arg(slot)
            .query_async(node)
            .await
            .unwrap();
        if here == 1 {
            source = Some(i);
        }
    }
    let source = source.expect("the key is on one master");
    let target = (source + 1) % ports.len();
    let setslot = |how: &str, node: &str| {
        let mut cmd = redis::cmd("CLUSTER");
        cmd.arg("SETSLOT").arg(slot).arg(how).arg(node);
        cmd
    };
    setslot("IMPORTING", &ids[source])
        .exec_async(&mut nodes[target])
        .await
        .unwrap();
    setslot("MIGRATING", &ids[target])
        .exec_async(&mut nodes[source])
        .await
        .unwrap();
    redis::cmd("MIGRATE")
        .arg("127.0.0.1")
        .arg(ports[target])
        .arg(&key)
        .arg(0)
        .arg(5000)
        .exec_async(&mut nodes[source])
        .await
        .unwrap();

    let found = || async {
        store
            .claim("moving", OwnerToken::generate(), MINUTE)
            .await
            .unwrap()
    };
    // Mid-migration: the source answers ASK, the client asks the target.
    assert_eq!(found().await, ClaimOutcome::Completed);

    for node in nodes.iter_mut() {
        setslot("NODE", &ids[target])
            .exec_async(node)
            .await
            .unwrap();
    }
    // Migrated: the source answers MOVED, the client follows and updates its slot map.
    assert_eq!(found().await, ClaimOutcome::Completed);
    let on_target: u64 = redis::cmd("EXISTS")
        .arg(&key)
        .query_async(&mut nodes[target])
        .await
        .unwrap();
    assert_eq!(on_target, 1);
}
