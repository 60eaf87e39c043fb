//! Inbox mode through both adapters, over real HTTP and the real PostgreSQL: the delivery is
//! answered `200 queued` once stored, whatever the handler does (the route's handler never
//! runs), a retransmission is a duplicate, PING is not stored, an unreachable inbox gets
//! 503; and a `Worker` runs the user's handler from the inbox, retrying a failure until it
//! succeeds. (The example receivers' `KNOLYX_WEBHOOK_INBOX` comes next.)

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use knolyx_webhook_core::WebhookReceiver;
use knolyx_webhook_core::inbox::{EntryState, Inbox, Worker};
use knolyx_webhook_core::testing::{TestEvent, service_url};
use knolyx_webhook_examples::RunningReceiver;
use knolyx_webhook_postgres::{PostgresInbox, sqlx};
use tokio::sync::mpsc;

use crate::support::serve_counting;

const TOKEN: &str = "examples-inbox-token";
const WAIT: Duration = Duration::from_secs(20);

async fn serve(framework: &str, inbox: Arc<dyn Inbox>) -> (RunningReceiver, Arc<AtomicUsize>) {
    let receiver = WebhookReceiver::builder()
        .token(TOKEN)
        .inbox(inbox)
        .build()
        .unwrap();
    serve_counting(framework, receiver).await
}

async fn put(url: &str, body: Vec<u8>) -> (u16, String, bool) {
    let response = reqwest::Client::new()
        .put(url)
        .header("x-webhook-security-token", TOKEN)
        .body(body)
        .send()
        .await
        .unwrap();
    let duplicate = response
        .headers()
        .contains_key("x-knolyx-webhook-duplicate");
    let retry_after = response.headers().contains_key("retry-after");
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        if retry_after {
            format!("{text} (retry-after)")
        } else {
            text
        },
        duplicate,
    )
}

async fn inbox_mode(framework: &str) {
    let Some(url) = service_url("KNOLYX_TEST_DATABASE_URL") else {
        return;
    };
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    let table = format!(
        "knolyx_test_inbox_e2e_{}",
        knolyx_webhook_core::store::OwnerToken::generate()
    );
    let inbox = PostgresInbox::builder(pool.clone())
        .table(&table)
        .build()
        .unwrap();
    inbox.migrate().await.unwrap();
    let inbox: Arc<dyn Inbox> = Arc::new(inbox);
    let (running, route_runs) = serve(framework, Arc::clone(&inbox)).await;

    // Acknowledged once stored, before any handler ran.
    let event = TestEvent::course_payment_received();
    let id = event.clone().build().id().to_owned();
    assert_eq!(
        put(&running.url(), event.to_body().to_vec()).await,
        (200, "queued".into(), false)
    );
    let stored = inbox.show(&id).await.unwrap().expect("stored");
    assert_eq!(stored.state(), EntryState::Pending);
    assert_eq!(
        put(&running.url(), event.to_body().to_vec()).await,
        (200, "duplicate".into(), true)
    );
    let ping = TestEvent::ping();
    let ping_id = ping.clone().build().id().to_owned();
    assert_eq!(put(&running.url(), ping.to_body().to_vec()).await.0, 200);
    assert!(
        inbox.show(&ping_id).await.unwrap().is_none(),
        "PING is never stored"
    );
    assert_eq!(
        route_runs.load(Ordering::SeqCst),
        0,
        "the route's handler never runs"
    );

    // The worker runs the user's handler: its first attempt fails, the retry succeeds.
    let (ran, mut runs) = mpsc::unbounded_channel();
    let attempts = Arc::new(AtomicUsize::new(0));
    let worker = Worker::builder(Arc::clone(&inbox), {
        let attempts = Arc::clone(&attempts);
        move |event: knolyx_webhook_core::WebhookEvent| {
            let n = attempts.fetch_add(1, Ordering::SeqCst);
            let ran = ran.clone();
            async move {
                let _ = ran.send(event.id().to_owned());
                if n == 0 {
                    Err("the CRM is down")
                } else {
                    Ok(())
                }
            }
        }
    })
    .poll_interval(Duration::from_millis(50))
    .first_retry(Duration::from_millis(50))
    .build()
    .spawn();
    for _ in 0..2 {
        let handled = tokio::time::timeout(WAIT, runs.recv())
            .await
            .expect("the worker ran it");
        assert_eq!(handled.as_deref(), Some(id.as_str()));
    }
    // The completion follows the handler's Ok; the inbox is the only place to see it.
    let done = tokio::time::timeout(WAIT, async {
        loop {
            let entry = inbox.show(&id).await.unwrap().unwrap();
            if entry.state() == EntryState::Done {
                break entry;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the entry is done");
    assert_eq!(done.attempts(), 2);
    worker.shutdown(Duration::from_secs(5)).await;
    // Still a duplicate once done (kept for the retention window).
    assert!(put(&running.url(), event.to_body().to_vec()).await.2);
    running.stop().await;

    // An inbox that cannot store: 503 with Retry-After, nothing acknowledged.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dead = sqlx::postgres::PgPoolOptions::new()
        .acquire_timeout(Duration::from_millis(300))
        .connect_lazy(&format!("postgres://postgres@127.0.0.1:{port}/test"))
        .unwrap();
    let (running, _) = serve(framework, Arc::new(PostgresInbox::new(dead))).await;
    let (status, text, _) = put(
        &running.url(),
        TestEvent::course_started().to_body().to_vec(),
    )
    .await;
    assert_eq!(
        (status, text.ends_with("(retry-after)")),
        (503, true),
        "{text}"
    );
    running.stop().await;
    let _ = sqlx::query(&format!("DROP TABLE IF EXISTS {table}"))
        .execute(&pool)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs KNOLYX_TEST_DATABASE_URL (README: Running the store tests)"]
async fn axum_inbox_mode_stores_acknowledges_and_the_worker_handles() {
    inbox_mode("axum").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs KNOLYX_TEST_DATABASE_URL (README: Running the store tests)"]
async fn actix_inbox_mode_stores_acknowledges_and_the_worker_handles() {
    inbox_mode("actix-web").await;
}

/// The example binaries in inbox mode (`KNOLYX_WEBHOOK_INBOX`): the delivery is queued at once
/// although the handler fails its first two attempts; the worker retries it and prints the
/// contract's line; SIGTERM stops both, exit 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs KNOLYX_TEST_DATABASE_URL (README: Running the store tests)"]
async fn the_receivers_in_inbox_mode_queue_then_retry_until_handled() {
    use crate::deploy::{BINARIES, Replica, TOKEN as BIN_TOKEN};
    let Some(url) = service_url("KNOLYX_TEST_DATABASE_URL") else {
        return;
    };
    for path in BINARIES {
        let replica = Replica::start_with(
            path,
            &[
                ("KNOLYX_WEBHOOK_INBOX", &url),
                ("KNOLYX_EXAMPLE_HANDLER_FAIL_FIRST", "2"),
                ("KNOLYX_INBOX_FIRST_RETRY_MS", "50"),
                ("KNOLYX_SHUTDOWN_GRACE_SECS", "5"),
            ],
        );
        let event = TestEvent::course_completed();
        let id = event.clone().build().id().to_owned();
        let response = reqwest::Client::new()
            .put(&replica.url)
            .header("x-webhook-security-token", BIN_TOKEN)
            .body(event.to_body())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(response.text().await.unwrap(), "queued", "{path}");
        // Two failed attempts logged by the worker, then the event handled.
        replica.wait_for_line("failing attempt 2 of 2");
        let handled = replica.wait_for_line("inbox entry handled");
        assert!(handled.contains(&id), "{path}: {handled}");
        replica.terminate();
        let (status, stdout) = replica.exit();
        assert!(status.success(), "{path}: {status}");
        assert!(
            stdout.contains(&id),
            "{path}: the worker ran the event: {stdout:?}"
        );
    }
}

/// Polls the inbox until `id` is done (the completion follows the handler's `Ok`).
async fn until_done(inbox: &dyn Inbox, id: &str) {
    let done = tokio::time::timeout(WAIT, async {
        while inbox.show(id).await.ok().flatten().map(|e| e.state()) != Some(EntryState::Done) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(done.is_ok(), "{id} is done: {:?}", inbox.show(id).await);
}

/// The database stalls (a partition: packets held, nothing refused) and recovers, in inbox
/// mode, for real: PostgreSQL behind a [`TcpProxy`]. During the stall a delivery gets 503
/// with Retry-After within the operation timeout (never an acknowledgement of what is not
/// stored), and the worker's takes fail without a busy loop; after the heal the
/// retransmission is acknowledged (stored now, or as a duplicate if the insert sent into the
/// stall landed late), the worker recovers on its own, and each event runs exactly once.
///
/// [`TcpProxy`]: knolyx_webhook_core::testing::TcpProxy
async fn inbox_stall(framework: &str) {
    use std::collections::HashMap;
    let Some(url) = service_url("KNOLYX_TEST_DATABASE_URL") else {
        return;
    };
    let (proxy, pool) = crate::support::postgres_behind_proxy(&url).await;
    let table = format!(
        "knolyx_test_inbox_stall_{}",
        knolyx_webhook_core::store::OwnerToken::generate()
    );
    let postgres = PostgresInbox::builder(pool.clone())
        .table(&table)
        .operation_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    postgres.migrate().await.unwrap();
    let inbox: Arc<dyn Inbox> = Arc::new(postgres);
    let (running, _) = serve(framework, Arc::clone(&inbox)).await;
    let runs = Arc::new(std::sync::Mutex::new(HashMap::<String, usize>::new()));
    let worker = Worker::builder(Arc::clone(&inbox), {
        let runs = Arc::clone(&runs);
        move |event: knolyx_webhook_core::WebhookEvent| {
            *runs
                .lock()
                .unwrap()
                .entry(event.id().to_owned())
                .or_default() += 1;
            async { Ok::<(), String>(()) }
        }
    })
    .poll_interval(Duration::from_millis(100))
    .build()
    .spawn();

    let before = TestEvent::course_started();
    let before_id = before.clone().build().id().to_owned();
    assert_eq!(put(&running.url(), before.to_body().to_vec()).await.0, 200);
    until_done(inbox.as_ref(), &before_id).await;

    proxy.stall();
    let during = TestEvent::course_payment_received();
    let during_id = during.clone().build().id().to_owned();
    let (status, text, _) = put(&running.url(), during.to_body().to_vec()).await;
    assert_eq!(
        (status, text.ends_with("(retry-after)")),
        (503, true),
        "{text}"
    );
    proxy.heal();

    // Knolyx retransmits until acknowledged.
    let acknowledged = tokio::time::timeout(WAIT, async {
        loop {
            let (status, _, duplicate) = put(&running.url(), during.to_body().to_vec()).await;
            if status == 200 {
                break duplicate;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
    assert!(
        acknowledged.is_ok(),
        "the retransmission after the heal is acknowledged"
    );
    let after = TestEvent::course_completed();
    let after_id = after.clone().build().id().to_owned();
    assert_eq!(
        put(&running.url(), after.to_body().to_vec()).await,
        (200, "queued".into(), false)
    );
    until_done(inbox.as_ref(), &during_id).await;
    until_done(inbox.as_ref(), &after_id).await;
    worker.shutdown(Duration::from_secs(5)).await;
    running.stop().await;
    let runs = runs.lock().unwrap().clone();
    let once: HashMap<String, usize> = [before_id, during_id, after_id]
        .into_iter()
        .map(|id| (id, 1))
        .collect();
    assert_eq!(runs, once, "each event ran exactly once");
    drop(proxy);
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    let _ = sqlx::query(&format!("DROP TABLE IF EXISTS {table}"))
        .execute(&pool)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs KNOLYX_TEST_DATABASE_URL (README: Running the store tests)"]
async fn axum_inbox_mode_answers_503_in_a_database_stall_and_recovers() {
    inbox_stall("axum").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs KNOLYX_TEST_DATABASE_URL (README: Running the store tests)"]
async fn actix_inbox_mode_answers_503_in_a_database_stall_and_recovers() {
    inbox_stall("actix-web").await;
}

/// The receiver binaries in inbox mode on a table of their own.
mod binaries {
    use std::collections::HashMap;
    use std::time::Duration;

    use knolyx_webhook_core::testing::{TestEvent, service_url};
    use knolyx_webhook_postgres::sqlx;

    use crate::deploy::{BINARIES, Replica, TOKEN};

    /// A bound for what must happen soon (never a synchronisation).
    const SOON: Duration = Duration::from_secs(30);

    struct Table {
        pool: sqlx::PgPool,
        name: String,
    }

    impl Table {
        async fn new(url: &str, test: &str) -> Self {
            let name = format!(
                "knolyx_test_{test}_{}",
                knolyx_webhook_core::store::OwnerToken::generate()
            );
            let pool = sqlx::PgPool::connect(url).await.unwrap();
            Self { pool, name }
        }

        /// The states of the table's entries, counted.
        async fn states(&self) -> HashMap<String, i64> {
            let sql = format!("SELECT state, count(*) FROM {} GROUP BY state", self.name);
            sqlx::query_as::<_, (String, i64)>(&sql)
                .fetch_all(&self.pool)
                .await
                .unwrap_or_default()
                .into_iter()
                .collect()
        }

        /// Waits (polling the database) until `n` entries are done.
        async fn until_done(&self, n: i64) {
            let waited = tokio::time::timeout(SOON, async {
                while self.states().await.get("done").copied().unwrap_or(0) < n {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            })
            .await;
            assert!(
                waited.is_ok(),
                "{n} done entries: {:?}",
                self.states().await
            );
        }

        async fn attempts(&self) -> HashMap<String, i32> {
            let sql = format!("SELECT id, attempts FROM {}", self.name);
            sqlx::query_as::<_, (String, i32)>(&sql)
                .fetch_all(&self.pool)
                .await
                .unwrap()
                .into_iter()
                .collect()
        }

        async fn drop(self) {
            let sql = format!("DROP TABLE IF EXISTS {}", self.name);
            let _ = sqlx::raw_sql(&sql).execute(&self.pool).await;
        }
    }

    fn start(path: &str, url: &str, table: &str, env: &[(&str, &str)]) -> Replica {
        let mut all = vec![
            ("KNOLYX_WEBHOOK_INBOX", url),
            ("KNOLYX_INBOX_TABLE", table),
            ("KNOLYX_SHUTDOWN_GRACE_SECS", "5"),
        ];
        all.extend_from_slice(env);
        Replica::start_with(path, &all)
    }

    /// Delivers `body` to `url` with the binaries' token.
    async fn deliver(
        client: &reqwest::Client,
        url: &str,
        body: impl Into<reqwest::Body>,
    ) -> (u16, bool) {
        crate::support::deliver(client, url, TOKEN, body).await
    }

    /// How many times each id appears in the event lines of `stdout`.
    fn handled(stdout: &str) -> HashMap<String, usize> {
        let mut seen = HashMap::new();
        for line in stdout.lines() {
            let event: serde_json::Value = serde_json::from_str(line).unwrap();
            *seen
                .entry(event["id"].as_str().unwrap().to_owned())
                .or_default() += 1;
        }
        seen
    }

    /// `kill -9` of a receiver holding acknowledged, unprocessed entries (16 running, their
    /// handlers mid-way, and 4 pending behind them): a receiver started afterwards on the
    /// same table takes the pending ones at once and the running ones once their lease
    /// expired, and runs each exactly once. (The lease is 6 s: a handler still running at
    /// 90 % of it would be cancelled and retried, which a very slow machine could reach
    /// before the kill; the checks hold either way.)
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "needs KNOLYX_TEST_DATABASE_URL (README: Running the store tests)"]
    async fn a_receiver_killed_with_acknowledged_entries_loses_none() {
        let Some(url) = service_url("KNOLYX_TEST_DATABASE_URL") else {
            return;
        };
        for path in BINARIES {
            let table = Table::new(&url, "inbox_kill").await;
            let slow = start(
                path,
                &url,
                &table.name,
                &[
                    ("KNOLYX_EXAMPLE_HANDLER_DELAY_MS", "600000"),
                    ("KNOLYX_INBOX_LEASE_SECS", "6"),
                ],
            );
            let client = reqwest::Client::new();
            let events: Vec<_> = (0..20)
                .map(|_| TestEvent::course_payment_received().build())
                .collect();
            for event in &events {
                let body = event.raw().clone();
                assert_eq!(deliver(&client, &slow.url, body).await, (200, false));
            }
            // The worker runs 16 at once: wait until all 16 handlers started.
            for _ in 0..16 {
                slow.wait_for_line("handler started");
            }
            let states = table.states().await;
            assert_eq!(states.get("done"), None, "{path}: {states:?}");
            assert!(states.get("running") >= Some(&1), "{path}: {states:?}");
            let before = table.attempts().await;
            assert_eq!(before.len(), 20, "{path}: all stored");
            slow.kill9();
            let (status, stdout) = slow.exit();
            assert!(!status.success(), "{path}: killed");
            assert_eq!(stdout, "", "{path}: the killed receiver handled nothing");

            let next = start(path, &url, &table.name, &[]);
            table.until_done(20).await;
            next.terminate();
            let (status, stdout) = next.exit();
            assert!(status.success(), "{path}: {status}");
            let seen = handled(&stdout);
            assert_eq!(seen.len(), 20, "{path}: every event handled: {seen:?}");
            assert!(
                seen.values().all(|n| *n == 1),
                "{path}: once each: {seen:?}"
            );
            // Each ran once more after the kill: the attempts cut by it still count.
            let after = table.attempts().await;
            for (id, attempts) in &before {
                assert_eq!(after[id], attempts + 1, "{path}: {id}");
            }
            table.drop().await;
        }
    }

    /// Two replicas (one of each adapter) on one table: concurrent copies of one id sent to
    /// both are stored once (one `queued`, one duplicate), and with many distinct ids sent
    /// to either, each event is handled exactly once across the two.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "needs KNOLYX_TEST_DATABASE_URL (README: Running the store tests)"]
    async fn two_replicas_handle_each_event_once() {
        let Some(url) = service_url("KNOLYX_TEST_DATABASE_URL") else {
            return;
        };
        let table = Table::new(&url, "inbox_replicas").await;
        let replicas: Vec<Replica> = BINARIES
            .iter()
            .map(|path| start(path, &url, &table.name, &[]))
            .collect();
        let urls: Vec<String> = replicas.iter().map(|r| r.url.clone()).collect();
        let client = reqwest::Client::new();

        // 20 ids, each sent to both replicas at once.
        const COPIED: usize = 20;
        for _ in 0..COPIED {
            let body = TestEvent::course_completed().to_body();
            let (a, b) = tokio::join!(
                deliver(&client, &urls[0], body.clone()),
                deliver(&client, &urls[1], body)
            );
            let mut answers = [a, b];
            answers.sort_unstable();
            assert_eq!(
                answers,
                [(200, false), (200, true)],
                "one stored, one duplicate"
            );
        }
        // 200 distinct ids, 16 at a time, alternating between the replicas.
        const DISTINCT: usize = 200;
        let bodies: Vec<_> = (0..DISTINCT)
            .map(|_| TestEvent::course_started().to_body())
            .collect();
        for (n, chunk) in bodies.chunks(16).enumerate() {
            let sends = chunk
                .iter()
                .enumerate()
                .map(|(i, body)| deliver(&client, &urls[(n + i) % 2], body.clone()));
            for answer in futures_util::future::join_all(sends).await {
                assert_eq!(answer, (200, false));
            }
        }
        let total = (COPIED + DISTINCT) as i64;
        table.until_done(total).await;
        let mut seen = HashMap::new();
        for replica in replicas {
            replica.terminate();
            let (status, stdout) = replica.exit();
            assert!(status.success(), "{status}");
            for (id, n) in handled(&stdout) {
                *seen.entry(id).or_insert(0) += n;
            }
        }
        assert_eq!(seen.len() as i64, total, "every event handled");
        assert!(
            seen.values().all(|n| *n == 1),
            "an event ran twice: {seen:?}"
        );
        table.drop().await;
    }
}
