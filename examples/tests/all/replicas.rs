//! Four receivers (two axum, two actix-web, on four ports, each with its own connection)
//! share one store, as replicas behind a load balancer do: 50 concurrent deliveries of one
//! id, spread over all, run the handler exactly once in total; the same id afterwards runs
//! it no more; and in steady state a stream of events spread over the replicas is handled
//! once each, without a single 503.
//!
//! Runs on every topology the Redis store supports: the real Redis named by
//! `KNOLYX_TEST_REDIS_URL`, a private Redis Cluster of 3 masters and a private Sentinel
//! setup (started by the tests); and on the real PostgreSQL named by
//! `KNOLYX_TEST_DATABASE_URL`, directly and through a private PgBouncer in transaction mode
//! (`?pooler=transaction`). Skipped with a notice when a service is missing, failed then
//! when `KNOLYX_TEST_REQUIRE_SERVICES=1` (as in CI).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use knolyx_webhook_core::WebhookReceiver;
use knolyx_webhook_core::testing::{TestEvent, service_url};
use knolyx_webhook_examples::{EventHandler, StoreChoice, actix_receiver, axum_receiver};
use knolyx_webhook_redis::testing::{PrivateCluster, PrivateSentinel, redis_server_installed};
use tokio::sync::Semaphore;

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

async fn replicas_run_the_handler_once(url: &str) {
    let runs = Arc::new(AtomicUsize::new(0));
    // Closed until the burst below is answered; then open for good (the permit comes back
    // after each use).
    let release = Arc::new(Semaphore::new(0));
    let handler: EventHandler = {
        let (runs, release) = (Arc::clone(&runs), Arc::clone(&release));
        Arc::new(move |_event| {
            let (runs, release) = (Arc::clone(&runs), Arc::clone(&release));
            Box::pin(async move {
                runs.fetch_add(1, Ordering::SeqCst);
                // Hold the claim until every other delivery has been answered.
                let _permit = release.acquire().await;
                Ok(())
            })
        })
    };
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let mut replicas = Vec::new();
    for _ in 0..2 {
        let a = axum_receiver::spawn(replica(url).await, handler.clone(), loopback);
        replicas.push(a.await.unwrap());
        let b = actix_receiver::spawn(replica(url).await, handler.clone(), loopback, 2);
        replicas.push(b.await.unwrap());
    }
    let urls: Vec<String> = replicas.iter().map(|r| r.url()).collect();

    let event = TestEvent::course_payment_received();
    let body = event.to_body();
    let client = reqwest::Client::new();
    let send = |url: String| {
        let (client, body) = (client.clone(), body.clone());
        async move { crate::support::deliver(&client, &url, TOKEN, body).await }
    };
    let mut deliveries = tokio::task::JoinSet::new();
    for i in 0..DELIVERIES {
        deliveries.spawn(send(urls[i % urls.len()].clone()));
    }
    // All but the one whose handler holds the claim answer while it waits.
    let mut answers = Vec::new();
    while answers.len() < DELIVERIES - 1 {
        answers.push(deliveries.join_next().await.unwrap().unwrap());
    }
    release.add_permits(1);
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

    // The same id again, on any replica: a duplicate, no run.
    for url in &urls {
        assert_eq!(send(url.clone()).await, (200, true));
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    steady_state(&urls, &runs).await;
    for replica in replicas {
        replica.stop().await;
    }
}

/// Events one after another, each sent to one replica and retransmitted to the next: each
/// handled once (200), then a duplicate (200), never a 503.
async fn steady_state(urls: &[String], runs: &AtomicUsize) {
    let client = reqwest::Client::new();
    let before = runs.load(Ordering::SeqCst);
    for i in 0..20 {
        let body = TestEvent::course_completed().to_body();
        for (attempt, url) in [&urls[i % urls.len()], &urls[(i + 1) % urls.len()]]
            .into_iter()
            .enumerate()
        {
            let response = client
                .put(url)
                .header("x-webhook-security-token", TOKEN)
                .body(body.clone())
                .send()
                .await
                .unwrap();
            let duplicate = response
                .headers()
                .contains_key("x-knolyx-webhook-duplicate");
            assert_eq!(
                (response.status().as_u16(), duplicate),
                (200, attempt == 1),
                "event {i}, attempt {attempt}"
            );
        }
    }
    assert_eq!(runs.load(Ordering::SeqCst), before + 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs KNOLYX_TEST_REDIS_URL (README: Running the store tests)"]
async fn replicas_on_redis_run_the_handler_once() {
    if let Some(url) = service_url("KNOLYX_TEST_REDIS_URL") {
        replicas_run_the_handler_once(&url).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs KNOLYX_TEST_DATABASE_URL (README: Running the store tests)"]
async fn replicas_on_postgres_run_the_handler_once() {
    if let Some(url) = service_url("KNOLYX_TEST_DATABASE_URL") {
        replicas_run_the_handler_once(&url).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server and redis-cli (README: Running the store tests)"]
async fn replicas_on_a_redis_cluster_run_the_handler_once() {
    if !redis_server_installed() {
        return;
    }
    let cluster = PrivateCluster::start().await;
    replicas_run_the_handler_once(&cluster.url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server and redis-cli (README: Running the store tests)"]
async fn replicas_on_redis_sentinel_run_the_handler_once() {
    if !redis_server_installed() {
        return;
    }
    let sentinel = PrivateSentinel::start().await;
    replicas_run_the_handler_once(&sentinel.url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs KNOLYX_TEST_DATABASE_URL and pgbouncer (README: Running the store tests)"]
async fn replicas_on_postgres_behind_pgbouncer_run_the_handler_once() {
    let Some(url) = service_url("KNOLYX_TEST_DATABASE_URL") else {
        return;
    };
    // Transaction mode, two server connections for every client connection of 4 replicas.
    let Some(pooler) = knolyx_webhook_postgres::testing::PrivatePgBouncer::start(&url).await else {
        return;
    };
    replicas_run_the_handler_once(&format!("{}?pooler=transaction", pooler.url())).await;
}
