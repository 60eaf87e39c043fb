//! Two receivers (an axum one and an actix-web one, on two ports, each with its own
//! connection) share one store, as replicas behind a load balancer do: 50 concurrent
//! deliveries of one id, spread over both, run the handler exactly once in total; the same
//! id afterwards runs it no more.
//!
//! Runs against the real Redis and PostgreSQL named by `KNOLYX_TEST_REDIS_URL` and
//! `KNOLYX_TEST_DATABASE_URL`; skipped with a notice when unset, failed when unset and
//! `KNOLYX_TEST_REQUIRE_SERVICES=1` (as in CI).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use knolyx_webhook_core::WebhookReceiver;
use knolyx_webhook_core::testing::{TestEvent, service_url};
use knolyx_webhook_examples::{EventHandler, StoreChoice, actix_receiver, axum_receiver};
use tokio::sync::Notify;

const TOKEN: &str = "examples-replicas-token";
const DELIVERIES: usize = 50;

async fn replica(url: &str) -> WebhookReceiver {
    let store = StoreChoice::parse(url).unwrap().connect().await.unwrap();
    WebhookReceiver::builder()
        .token(TOKEN)
        .shared_store(store)
        .build()
        .unwrap()
}

async fn two_replicas_run_the_handler_once(url: &str) {
    let runs = Arc::new(AtomicUsize::new(0));
    let release = Arc::new(Notify::new());
    let handler: EventHandler = {
        let (runs, release) = (Arc::clone(&runs), Arc::clone(&release));
        Arc::new(move |_event| {
            let (runs, release) = (Arc::clone(&runs), Arc::clone(&release));
            Box::pin(async move {
                runs.fetch_add(1, Ordering::SeqCst);
                // Hold the claim until every other delivery has been answered.
                release.notified().await;
                Ok(())
            })
        })
    };
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let a = axum_receiver::spawn(replica(url).await, handler.clone(), loopback)
        .await
        .unwrap();
    let b = actix_receiver::spawn(replica(url).await, handler, loopback, 2)
        .await
        .unwrap();
    assert_ne!(a.addr(), b.addr());

    let event = TestEvent::course_payment_received();
    let body = event.to_body();
    let client = reqwest::Client::new();
    let send = |url: String| {
        let (client, body) = (client.clone(), body.clone());
        async move {
            let response = client
                .put(url)
                .header("x-webhook-security-token", TOKEN)
                .body(body)
                .send()
                .await
                .unwrap();
            let duplicate = response
                .headers()
                .contains_key("x-knolyx-webhook-duplicate");
            (response.status().as_u16(), duplicate)
        }
    };
    let mut deliveries = tokio::task::JoinSet::new();
    for i in 0..DELIVERIES {
        let url = if i % 2 == 0 { a.url() } else { b.url() };
        deliveries.spawn(send(url));
    }
    // All but the one whose handler holds the claim answer while it waits.
    let mut answers = Vec::new();
    while answers.len() < DELIVERIES - 1 {
        answers.push(deliveries.join_next().await.unwrap().unwrap());
    }
    release.notify_one();
    answers.push(deliveries.join_next().await.unwrap().unwrap());

    assert_eq!(
        runs.load(Ordering::SeqCst),
        1,
        "the handler ran once in total"
    );
    let handled = answers.iter().filter(|a| **a == (200, false)).count();
    let in_flight = answers.iter().filter(|a| **a == (503, false)).count();
    let duplicates = answers.iter().filter(|a| **a == (200, true)).count();
    assert_eq!(handled, 1, "{answers:?}");
    assert_eq!(in_flight + duplicates, DELIVERIES - 1, "{answers:?}");

    // The same id again, on either replica: a duplicate, no run.
    for url in [a.url(), b.url()] {
        assert_eq!(send(url).await, (200, true));
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_on_redis_run_the_handler_once() {
    if let Some(url) = service_url("KNOLYX_TEST_REDIS_URL") {
        two_replicas_run_the_handler_once(&url).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_on_postgres_run_the_handler_once() {
    if let Some(url) = service_url("KNOLYX_TEST_DATABASE_URL") {
        two_replicas_run_the_handler_once(&url).await;
    }
}
