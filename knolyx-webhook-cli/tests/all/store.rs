//! `store show|release` through the binary, against real stores: the shared Redis
//! (`KNOLYX_TEST_REDIS_URL`, a key prefix of the test's own), a private Redis Cluster, and
//! PostgreSQL (`KNOLYX_TEST_DATABASE_URL`, a table of the test's own). Each test claims an
//! id through the library as a receiver that then crashed would have, and checks what the
//! command shows and frees against the store itself.

use std::sync::Arc;
use std::time::Duration;

use knolyx_webhook_core::store::{
    ClaimOutcome, IdState, IdempotencyStore, OwnerToken, SettleOutcome,
};
use knolyx_webhook_core::testing::service_url;
use knolyx_webhook_postgres::PostgresStore;
use knolyx_webhook_redis::RedisStore;
use knolyx_webhook_redis::testing::{PrivateCluster, redis_server_installed};
use serde_json::Value;

use crate::support::run;

const HOUR: Duration = Duration::from_secs(3600);

/// The whole script against `store`, reached by the binary with `args` (`--store URL` and
/// the table or key prefix).
async fn script(store: Arc<dyn IdempotencyStore>, args: &[&str]) {
    let id = format!("cli-store-{}", OwnerToken::generate());
    let with = |command: &[&str]| -> Vec<String> {
        ["store"]
            .iter()
            .chain(command)
            .chain(args)
            .map(|s| (*s).to_owned())
            .collect()
    };
    let go = async |command: &[&str]| {
        let argv = with(command);
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        run(&argv, &[]).await
    };

    let absent = go(&["show", &id]).await;
    assert_eq!(absent.code, 0, "{}", absent.stderr);
    assert!(absent.stdout.contains("absent"), "{}", absent.stdout);
    let json: Value = serde_json::from_str(&go(&["show", &id, "--json"]).await.stdout).unwrap();
    assert_eq!(json, serde_json::json!({"id": id, "state": "absent"}));

    // A receiver claims it and crashes: the id stays in progress for the lease.
    let crashed = OwnerToken::generate();
    assert_eq!(
        store.claim(&id, crashed, HOUR).await.unwrap(),
        ClaimOutcome::Claimed
    );
    let shown = go(&["show", &id]).await;
    assert_eq!(shown.code, 0);
    assert!(shown.stdout.contains("in progress"), "{}", shown.stdout);
    let json: Value = serde_json::from_str(&go(&["show", &id, "--json"]).await.stdout).unwrap();
    assert_eq!(json["state"], "in_progress");
    let left = json["lease_left_ms"].as_u64().unwrap();
    assert!(left <= 3_600_000 && left > 3_500_000, "{left}");

    // No terminal, no --yes: refused, nothing changed.
    let refused = go(&["release", &id]).await;
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(refused.stderr.contains("--yes"), "{}", refused.stderr);
    assert!(matches!(
        store.inspect(&id).await.unwrap(),
        IdState::InProgress { .. }
    ));

    let released = go(&["release", &id, "--yes"]).await;
    assert_eq!(released.code, 0, "{}", released.stderr);
    assert!(released.stdout.contains("Released"), "{}", released.stdout);
    assert_eq!(store.inspect(&id).await.unwrap(), IdState::Absent);
    assert_eq!(
        store.complete(&id, crashed, HOUR).await.unwrap(),
        SettleOutcome::NotOwner,
        "the crashed holder is fenced out"
    );
    // The retransmission runs the handler at once, and completes.
    let next = OwnerToken::generate();
    assert_eq!(
        store.claim(&id, next, HOUR).await.unwrap(),
        ClaimOutcome::Claimed
    );
    assert_eq!(
        store.complete(&id, next, HOUR).await.unwrap(),
        SettleOutcome::Settled
    );

    let completed = go(&["show", &id]).await;
    assert!(
        completed.stdout.contains("completed"),
        "{}",
        completed.stdout
    );
    let json: Value = serde_json::from_str(&go(&["show", &id, "--json"]).await.stdout).unwrap();
    assert_eq!(json["state"], "completed");
    assert!(json["retention_left_ms"].as_u64().unwrap() > 3_500_000);
    // A completed id is never released.
    let kept = go(&["release", &id, "--yes"]).await;
    assert_eq!(kept.code, 1, "{}", kept.stderr);
    assert!(
        kept.stderr.contains("nothing to release"),
        "{}",
        kept.stderr
    );
    assert!(matches!(
        store.inspect(&id).await.unwrap(),
        IdState::Completed { .. }
    ));
}

#[tokio::test]
#[ignore = "needs KNOLYX_TEST_REDIS_URL (README: Running the store tests)"]
async fn show_and_release_on_redis() {
    let Some(url) = service_url("KNOLYX_TEST_REDIS_URL") else {
        return;
    };
    let prefix = format!("knolyx-test-cli-{}:", OwnerToken::generate());
    let store = RedisStore::builder()
        .key_prefix(&prefix)
        .connect(&url)
        .await
        .unwrap();
    script(Arc::new(store), &["--store", &url, "--key-prefix", &prefix]).await;
}

#[tokio::test]
#[ignore = "needs redis-server and redis-cli (README: Running the store tests)"]
async fn show_and_release_on_a_redis_cluster() {
    if !redis_server_installed() {
        return;
    }
    let cluster = PrivateCluster::start().await;
    let url = cluster.url();
    let store = RedisStore::connect(&url).await.unwrap();
    script(Arc::new(store), &["--store", &url]).await;
}

#[tokio::test]
#[ignore = "needs KNOLYX_TEST_DATABASE_URL (README: Running the store tests)"]
async fn show_and_release_on_postgres() {
    let Some(url) = service_url("KNOLYX_TEST_DATABASE_URL") else {
        return;
    };
    let table = format!("knolyx_test_cli_store_{}", OwnerToken::generate());
    let connected = PostgresStore::connect(&url).await.unwrap();
    let store = PostgresStore::builder(connected.pool().clone())
        .table(&table)
        .build()
        .unwrap();
    store.migrate().await.unwrap();
    script(Arc::new(store), &["--store", &url, "--table", &table]).await;
    knolyx_webhook_postgres::sqlx::query(&format!("DROP TABLE {table}"))
        .execute(connected.pool())
        .await
        .unwrap();
}

/// On a terminal (`script` gives the binary a pseudo-terminal), `release` asks, and
/// anything but `y` keeps the id.
#[tokio::test]
#[ignore = "needs KNOLYX_TEST_REDIS_URL (README: Running the store tests)"]
async fn release_asks_on_a_terminal() {
    let Some(url) = service_url("KNOLYX_TEST_REDIS_URL") else {
        return;
    };
    if std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("`script` (util-linux) is not installed: the terminal prompt is not tested");
        return;
    }
    let prefix = format!("knolyx-test-cli-tty-{}:", OwnerToken::generate());
    let store = RedisStore::builder()
        .key_prefix(&prefix)
        .connect(&url)
        .await
        .unwrap();
    let id = "stuck-1";
    store.claim(id, OwnerToken::generate(), HOUR).await.unwrap();
    let command = format!(
        "{} store release {id} --store {url} --key-prefix {prefix}",
        env!("CARGO_BIN_EXE_knolyx-webhook")
    );
    for (answer, code, state) in [("n\n", 1, "in_progress"), ("y\n", 0, "absent")] {
        let tty = tokio::process::Command::new("script")
            .args(["-qec", &command, "/dev/null"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut tty = tty;
        use tokio::io::AsyncWriteExt as _;
        let mut stdin = tty.stdin.take().unwrap();
        stdin.write_all(answer.as_bytes()).await.unwrap();
        drop(stdin);
        let output = tokio::time::timeout(crate::support::GUARD, tty.wait_with_output())
            .await
            .unwrap()
            .unwrap();
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(text.contains("[y/N]"), "{text}");
        assert_eq!(output.status.code(), Some(code), "{text}");
        assert_eq!(store.inspect(id).await.unwrap().as_str(), state, "{text}");
    }
}

#[tokio::test]
async fn passwords_are_never_printed_and_the_memory_store_is_refused() {
    for url in [
        "redis://:s3cret-pw@127.0.0.1:1/",
        "redis+cluster://:s3cret-pw@127.0.0.1:1,127.0.0.1:2",
        "postgres://user:s3cret-pw@127.0.0.1:1/db",
    ] {
        let out = run(&["store", "show", "an-id", "--store", url], &[]).await;
        assert_eq!(out.code, 3, "{url}: {}", out.stderr);
        assert!(!out.all_output().contains("s3cret-pw"), "{url}");
        let out = run(
            &["store", "show", "an-id"],
            &[("KNOLYX_WEBHOOK_STORE", url)],
        )
        .await;
        assert_eq!(out.code, 3, "{url}");
        assert!(!out.all_output().contains("s3cret-pw"), "{url}");
    }
    let memory = run(&["store", "show", "an-id", "--store", "memory"], &[]).await;
    assert_eq!(memory.code, 2);
    assert!(memory.stderr.contains("shared store"), "{}", memory.stderr);
    let none = run(&["store", "release", "an-id", "--yes"], &[]).await;
    assert_eq!(none.code, 2);
    assert!(
        none.stderr.contains("KNOLYX_WEBHOOK_STORE"),
        "{}",
        none.stderr
    );
}
