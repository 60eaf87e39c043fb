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
async fn axum_inbox_mode_stores_acknowledges_and_the_worker_handles() {
    inbox_mode("axum").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actix_inbox_mode_stores_acknowledges_and_the_worker_handles() {
    inbox_mode("actix-web").await;
}

/// The example binaries in inbox mode (`KNOLYX_WEBHOOK_INBOX`): the delivery is queued at once
/// although the handler fails its first two attempts; the worker retries it and prints the
/// contract's line; SIGTERM stops both, exit 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
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
