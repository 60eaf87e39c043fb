//! `inbox list|show|retry|purge` through the binary, against the real PostgreSQL
//! (`KNOLYX_TEST_DATABASE_URL`): each test seeds a table of its own through the library.

use std::time::Duration;

use knolyx_webhook_core::inbox::{EntryState, Inbox};
use knolyx_webhook_core::store::{OwnerToken, SettleOutcome};
use knolyx_webhook_core::testing::TestEvent;
use knolyx_webhook_postgres::PostgresInbox;
use knolyx_webhook_postgres::sqlx::{self, PgPool};
use serde_json::Value;

use crate::support::run;

/// The student's e-mail in every seeded body: never printed unless `--body` asks.
const EMAIL: &str = "ana.popescu@example.com";

fn database_url() -> Option<String> {
    knolyx_webhook_core::testing::service_url("KNOLYX_TEST_DATABASE_URL")
}

/// A seeded inbox table, dropped at the end of the test.
struct Seeded {
    url: String,
    pool: PgPool,
    table: String,
    inbox: PostgresInbox,
}

/// The ids [`seed`] stores, one per state (two dead ones).
const PENDING: &str = "cli-pending";
const RUNNING: &str = "cli-running";
const DEAD: &str = "cli-dead";
const DEAD_2: &str = "cli-dead-2";
const DONE: &str = "cli-done";

/// A new, empty inbox table.
async fn empty(url: String, test: &str) -> Seeded {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .connect(&url)
        .await
        .expect("connect to postgres");
    let table = format!("knolyx_test_cli_{test}_{}", OwnerToken::generate());
    let inbox = PostgresInbox::builder(pool.clone())
        .table(&table)
        .operation_timeout(Duration::from_secs(10))
        .build()
        .expect("a valid table name");
    inbox.migrate().await.expect("migrate the inbox");
    Seeded {
        url,
        pool,
        table,
        inbox,
    }
}

/// A new table holding one pending, one running, two dead and one done entry.
async fn seed(url: String, test: &str) -> Seeded {
    let seeded = empty(url, test).await;
    let inbox = &seeded.inbox;
    let worker = OwnerToken::generate();
    let lease = Duration::from_secs(3600);
    // One at a time: the entry just accepted is the only one due, so `take` gets it.
    for (id, settle) in [
        (DEAD, Some("handler failed: the CRM answered 502")),
        (DEAD_2, Some("handler failed:\nline two")),
        (DONE, None),
        (RUNNING, None),
    ] {
        let event = TestEvent::course_started().id(id).build();
        inbox.accept(&event).await.expect("accept");
        let taken = inbox.take(worker, lease, 1).await.expect("take");
        assert_eq!(taken.len(), 1);
        assert_eq!(taken[0].id(), id);
        let outcome = match (id, settle) {
            (RUNNING, _) => continue,
            (_, Some(error)) => inbox.fail(id, worker, error, None).await,
            (_, None) => inbox.complete(id, worker).await,
        };
        assert_eq!(outcome.expect("settle"), SettleOutcome::Settled);
    }
    let event = TestEvent::course_payment_received().id(PENDING).build();
    inbox.accept(&event).await.expect("accept");
    seeded
}

impl Seeded {
    /// `args` followed by `--database-url URL --table TABLE`.
    fn args<'a>(&'a self, args: &[&'a str]) -> Vec<&'a str> {
        let mut all = args.to_vec();
        all.extend(["--database-url", &self.url, "--table", &self.table]);
        all
    }

    async fn state(&self, id: &str) -> Option<EntryState> {
        self.inbox.show(id).await.expect("show").map(|e| e.state())
    }

    async fn drop_table(self) {
        sqlx::raw_sql(&format!("DROP TABLE IF EXISTS {}", self.table))
            .execute(&self.pool)
            .await
            .expect("drop the test table");
    }
}

fn json(stdout: &str) -> Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

/// The ids of a `list --json` array, in order.
fn ids(list: &Value) -> Vec<&str> {
    list.as_array()
        .expect("a JSON array")
        .iter()
        .map(|e| e["id"].as_str().expect("an id"))
        .collect()
}

/// The first column of each text line after the header.
fn text_ids(stdout: &str) -> Vec<&str> {
    stdout
        .lines()
        .skip(1)
        .map(|line| line.split_whitespace().next().expect("an id"))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs KNOLYX_TEST_DATABASE_URL (README: Running the store tests)"]
async fn list_and_show_print_every_state_and_never_the_body() {
    let Some(url) = database_url() else { return };
    let seeded = seed(url, "list").await;

    // Text: a header and one aligned line per entry, oldest first.
    let out = run(&seeded.args(&["inbox", "list"]), &[]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        text_ids(&out.stdout),
        [DEAD, DEAD_2, DONE, RUNNING, PENDING]
    );
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(lines[0].starts_with("ID"), "{}", out.stdout);
    let state_column = lines[0].find("STATE").expect("a STATE column");
    for (line, state) in lines[1..]
        .iter()
        .zip(["dead", "dead", "done", "running", "pending"])
    {
        assert_eq!(
            line.get(state_column..state_column + state.len()),
            Some(state),
            "not aligned: {line}"
        );
    }
    // A multi-line error stays on its entry's line.
    assert_eq!(lines.len(), 6, "{}", out.stdout);
    assert!(lines[1].contains("the CRM answered 502"), "{}", lines[1]);
    assert!(!out.all_output().contains(EMAIL), "the body was printed");

    // By state, and limited.
    let out = run(&seeded.args(&["inbox", "list", "--state", "dead"]), &[]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(text_ids(&out.stdout), [DEAD, DEAD_2]);
    let out = run(&seeded.args(&["inbox", "list", "--limit", "2"]), &[]).await;
    assert_eq!(text_ids(&out.stdout), [DEAD, DEAD_2]);
    let out = run(&seeded.args(&["inbox", "list", "--state", "bogus"]), &[]).await;
    assert_eq!(out.code, 2, "{}", out.stderr);

    // JSON: one array of objects with the documented fields.
    let out = run(&seeded.args(&["inbox", "list", "--json"]), &[]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let list = json(&out.stdout);
    assert_eq!(ids(&list), [DEAD, DEAD_2, DONE, RUNNING, PENDING]);
    let dead = &list[0];
    assert_eq!(dead["type"], "COURSE_STARTED");
    assert_eq!(dead["state"], "dead");
    assert_eq!(dead["attempts"], 1);
    assert_eq!(dead["last_error"], "handler failed: the CRM answered 502");
    assert!(
        dead["created_at"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );
    assert_eq!(list[2]["state"], "done");
    assert!(list[2]["done_at"].is_string());
    assert_eq!(list[4]["type"], "COURSE_PAYMENT_RECEIVED");
    assert_eq!(list[4]["attempts"], 0);
    assert!(list[4]["last_error"].is_null());
    assert!(!out.all_output().contains(EMAIL), "the body was printed");
    let out = run(
        &seeded.args(&["inbox", "list", "--state", "pending", "--json"]),
        &[],
    )
    .await;
    assert_eq!(ids(&json(&out.stdout)), [PENDING]);

    // show: text and JSON, the body only with --body.
    let out = run(&seeded.args(&["inbox", "show", DEAD]), &[]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    for needle in [DEAD, "COURSE_STARTED", "dead", "the CRM answered 502"] {
        assert!(
            out.stdout.contains(needle),
            "lacks {needle}: {}",
            out.stdout
        );
    }
    assert!(!out.all_output().contains(EMAIL), "the body was printed");
    let out = run(&seeded.args(&["inbox", "show", DEAD, "--json"]), &[]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let shown = json(&out.stdout);
    assert_eq!(shown, list[0], "show --json is the entry list --json shows");
    let out = run(&seeded.args(&["inbox", "show", PENDING, "--body"]), &[]).await;
    assert!(out.stdout.contains(EMAIL), "{}", out.stdout);
    let out = run(
        &seeded.args(&["inbox", "show", PENDING, "--json", "--body"]),
        &[],
    )
    .await;
    let shown = json(&out.stdout);
    assert_eq!(shown["body"]["id"], PENDING);
    assert_eq!(shown["body"]["data"]["user"]["email"], EMAIL);

    // An id the inbox does not hold.
    let out = run(&seeded.args(&["inbox", "show", "no-such-id"]), &[]).await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("no-such-id"), "{}", out.stderr);

    // The database URL from the environment instead of the flag.
    let out = run(
        &["inbox", "list", "--table", &seeded.table, "--json"],
        &[("KNOLYX_WEBHOOK_INBOX", &seeded.url)],
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(ids(&json(&out.stdout)).len(), 5);

    seeded.drop_table().await;
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs KNOLYX_TEST_DATABASE_URL (README: Running the store tests)"]
async fn retry_puts_dead_entries_back_to_pending() {
    let Some(url) = database_url() else { return };
    let seeded = seed(url, "retry").await;

    let out = run(&seeded.args(&["inbox", "retry", DEAD]), &[]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains(DEAD), "{}", out.stdout);
    assert_eq!(seeded.state(DEAD).await, Some(EntryState::Pending));
    let entry = seeded.inbox.show(DEAD).await.unwrap().unwrap();
    assert_eq!(entry.attempts(), 0);
    assert_eq!(seeded.state(DEAD_2).await, Some(EntryState::Dead));

    // Not dead (any more), or not there: a clear message and a non-zero exit.
    for (id, needle) in [
        (DEAD, "pending"),
        (DONE, "done"),
        (RUNNING, "running"),
        ("no-such-id", "no entry"),
    ] {
        let out = run(&seeded.args(&["inbox", "retry", id]), &[]).await;
        assert_eq!(out.code, 1, "{id}: {}", out.stderr);
        assert!(out.stderr.contains(needle), "{id}: {}", out.stderr);
        assert!(out.stderr.contains("not dead"), "{id}: {}", out.stderr);
    }
    assert_eq!(seeded.state(DONE).await, Some(EntryState::Done));

    // Neither an id nor --all-dead, or both.
    let out = run(&seeded.args(&["inbox", "retry"]), &[]).await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    let out = run(&seeded.args(&["inbox", "retry", DEAD_2, "--all-dead"]), &[]).await;
    assert_eq!(out.code, 2, "{}", out.stderr);

    // Every dead one: here the one left.
    let out = run(&seeded.args(&["inbox", "retry", "--all-dead"]), &[]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("1 dead entry"), "{}", out.stdout);
    assert_eq!(seeded.state(DEAD_2).await, Some(EntryState::Pending));
    let out = run(&seeded.args(&["inbox", "retry", "--all-dead"]), &[]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("0 dead entries"), "{}", out.stdout);

    seeded.drop_table().await;
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs KNOLYX_TEST_DATABASE_URL (README: Running the store tests)"]
async fn purge_removes_done_entries_past_the_age_only() {
    let Some(url) = database_url() else { return };
    let seeded = seed(url, "purge").await;

    // The default (the retention, 72 h): the entry done just now is kept.
    let out = run(&seeded.args(&["inbox", "purge"]), &[]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("0 done entries"), "{}", out.stdout);
    assert_eq!(seeded.state(DONE).await, Some(EntryState::Done));

    let out = run(
        &seeded.args(&["inbox", "purge", "--older-than", "forever"]),
        &[],
    )
    .await;
    assert_eq!(out.code, 2, "{}", out.stderr);

    let out = run(&seeded.args(&["inbox", "purge", "--older-than", "0s"]), &[]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("1 done entry"), "{}", out.stdout);
    assert_eq!(seeded.state(DONE).await, None);
    for (id, state) in [
        (PENDING, EntryState::Pending),
        (RUNNING, EntryState::Running),
        (DEAD, EntryState::Dead),
        (DEAD_2, EntryState::Dead),
    ] {
        assert_eq!(seeded.state(id).await, Some(state), "{id}");
    }

    seeded.drop_table().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_or_unreachable_database_is_reported_without_its_password() {
    // No URL at all: a usage error naming the flag and the variable.
    let out = run(&["inbox", "list"], &[]).await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("--database-url"), "{}", out.stderr);
    assert!(
        out.stderr.contains("KNOLYX_WEBHOOK_INBOX"),
        "{}",
        out.stderr
    );

    // Nothing listens there: the transport exit code, the cause, never the password.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let password = "inbox-pa55word";
    let url = format!("postgres://postgres:{password}@127.0.0.1:{port}/test");
    for args in [
        &["inbox", "list", "--database-url", &url][..],
        &["inbox", "retry", "--all-dead", "--database-url", &url][..],
    ] {
        let out = run(args, &[]).await;
        assert_eq!(out.code, 3, "{}", out.stderr);
        assert!(out.stderr.contains("refused"), "{}", out.stderr);
        assert!(!out.all_output().contains(password), "{}", out.stderr);
        assert!(
            out.stderr
                .contains(&format!("postgres://***@127.0.0.1:{port}/test")),
            "{}",
            out.stderr
        );
    }
    let out = run(&["inbox", "list"], &[("KNOLYX_WEBHOOK_INBOX", &url)]).await;
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(!out.all_output().contains(password), "{}", out.stderr);
}

/// A table that does not exist, or a name that is not one: a configuration error with its
/// cause.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs KNOLYX_TEST_DATABASE_URL (README: Running the store tests)"]
async fn a_missing_or_invalid_table_is_a_configuration_error_with_its_cause() {
    let Some(url) = database_url() else { return };
    for (table, needle) in [
        ("knolyx_test_cli_no_such_table", "does not exist"),
        ("no such table", "invalid table name"),
    ] {
        let out = run(
            &["inbox", "list", "--database-url", &url, "--table", table],
            &[],
        )
        .await;
        assert_eq!(out.code, 2, "{}", out.stderr);
        assert!(out.stderr.contains(table), "{}", out.stderr);
        assert!(out.stderr.contains(needle), "{}", out.stderr);
    }
}

/// End to end: a delivery acknowledged over HTTP by a receiver in inbox mode, its handler
/// failing until the entry is dead after the maximum attempts; `inbox retry ID` through the
/// binary puts it back, and the worker (woken by NOTIFY) runs it to done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs KNOLYX_TEST_DATABASE_URL (README: Running the store tests)"]
async fn a_dead_entry_retried_from_the_cli_is_run_by_the_worker() {
    use std::collections::HashMap;
    use std::net::SocketAddr;
    use std::sync::{Arc, Mutex};

    use knolyx_webhook_core::WebhookReceiver;
    use knolyx_webhook_core::inbox::Worker;
    use knolyx_webhook_examples::{EventHandler, axum_receiver};

    let Some(url) = database_url() else { return };
    let seeded = empty(url, "e2e_retry").await;
    let inbox: Arc<dyn Inbox> = Arc::new(seeded.inbox.clone());
    let receiver = WebhookReceiver::builder()
        .token("cli-inbox-e2e-token")
        .inbox(Arc::clone(&inbox))
        .build()
        .unwrap();
    let route: EventHandler = Arc::new(|_| Box::pin(async { Ok(()) }));
    let running = axum_receiver::spawn(receiver, route, SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap();
    let waker = Arc::new(tokio::sync::Notify::new());
    let _listening = seeded
        .inbox
        .wake_on_notify(Arc::clone(&waker))
        .await
        .unwrap();
    // Fails the first two calls of each id; the entry is dead after two attempts.
    let calls = Arc::new(Mutex::new(HashMap::<String, u32>::new()));
    let (ran, mut runs) = tokio::sync::mpsc::unbounded_channel();
    let worker = Worker::builder(
        Arc::clone(&inbox),
        move |event: knolyx_webhook_core::WebhookEvent| {
            let n = {
                let mut calls = calls.lock().unwrap();
                let n = calls.entry(event.id().to_owned()).or_default();
                *n += 1;
                *n
            };
            let _ = ran.send((event.id().to_owned(), n));
            async move {
                if n <= 2 {
                    Err(format!("the CRM answered 502 (call {n})"))
                } else {
                    Ok(())
                }
            }
        },
    )
    .max_attempts(2)
    .first_retry(Duration::from_millis(50))
    .wake_on(waker)
    .build()
    .spawn();

    let event = TestEvent::course_payment_received();
    let id = event.clone().build().id().to_owned();
    let response = reqwest::Client::new()
        .put(running.url())
        .header("x-webhook-security-token", "cli-inbox-e2e-token")
        .body(event.to_body())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "queued");
    for call in 1..=2 {
        assert_eq!(next(&mut runs).await, (id.clone(), call));
    }
    let dead = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let entry = seeded.inbox.show(&id).await.unwrap().unwrap();
            if entry.state() == EntryState::Dead {
                break entry;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("dead after the maximum attempts");
    assert!(
        dead.last_error().unwrap().contains("(call 2)"),
        "{:?}",
        dead.last_error()
    );

    let out = run(&seeded.args(&["inbox", "retry", &id]), &[]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(next(&mut runs).await, (id.clone(), 3));
    let done = tokio::time::timeout(Duration::from_secs(20), async {
        while seeded.state(&id).await != Some(EntryState::Done) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(
        done.is_ok(),
        "done after the retry: {:?}",
        seeded.state(&id).await
    );
    worker.shutdown(Duration::from_secs(5)).await;
    running.stop().await;
    seeded.drop_table().await;
}

async fn next<T>(runs: &mut tokio::sync::mpsc::UnboundedReceiver<T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), runs.recv())
        .await
        .expect("the worker ran the handler")
        .unwrap()
}
