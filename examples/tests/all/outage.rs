//! A shared store that goes away, for real: the receiver answers 503 with `Retry-After`
//! and does not run the handler (fail closed); when the store is back, delivery resumes
//! without restarting anything.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use knolyx_webhook_core::WebhookReceiver;
use knolyx_webhook_core::store::IdempotencyStore;
use knolyx_webhook_core::testing::TestEvent;
use knolyx_webhook_examples::{EventHandler, axum_receiver};
use knolyx_webhook_postgres::{PostgresStore, sqlx};
use knolyx_webhook_redis::RedisStore;
use knolyx_webhook_redis::testing::PrivateRedis;

use crate::support::counting;

const TOKEN: &str = "examples-outage-token";

async fn serve(
    store: Arc<dyn IdempotencyStore>,
    handler: EventHandler,
) -> knolyx_webhook_examples::RunningReceiver {
    let receiver = WebhookReceiver::builder()
        .token(TOKEN)
        .shared_store(store)
        .build()
        .unwrap();
    axum_receiver::spawn(receiver, handler, SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap()
}

/// Status and `Retry-After` of one delivery.
async fn deliver(url: &str, event: &TestEvent) -> (u16, Option<String>) {
    let response = reqwest::Client::new()
        .put(url)
        .header("x-webhook-security-token", TOKEN)
        .body(event.to_body())
        .send()
        .await
        .unwrap();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    (response.status().as_u16(), retry_after)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server and redis-cli (README: Running the store tests)"]
async fn redis_stopped_gives_503_and_delivery_resumes_when_it_is_back() {
    if !knolyx_webhook_redis::testing::redis_server_installed() {
        return;
    }
    let mut redis = PrivateRedis::start().await;
    let store = RedisStore::builder()
        .operation_timeout(Duration::from_millis(500))
        .connect(&redis.url())
        .await
        .unwrap();
    let (handler, runs) = counting();
    let running = serve(Arc::new(store), handler).await;
    let url = running.url();

    let first = TestEvent::course_completed();
    assert_eq!(deliver(&url, &first).await.0, 200);
    assert_eq!(runs.load(Ordering::SeqCst), 1);

    redis.kill();
    let during = TestEvent::course_payment_received();
    for _ in 0..3 {
        let (status, retry_after) = deliver(&url, &during).await;
        assert_eq!(status, 503);
        assert!(retry_after.is_some(), "503 carries Retry-After");
    }
    assert_eq!(
        runs.load(Ordering::SeqCst),
        1,
        "the handler did not run while Redis was down"
    );

    redis.restart().await;
    // Like Knolyx: retry while the receiver says 503 (the connection manager reconnects on
    // its own; bounded).
    let mut status = 503;
    for _ in 0..100 {
        status = deliver(&url, &during).await.0;
        if status != 503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status, 200, "delivery resumed without a restart");
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_on_a_wrong_port_gives_503_without_running_the_handler() {
    // A port nothing listens on.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let pool = sqlx::postgres::PgPoolOptions::new()
        .acquire_timeout(Duration::from_millis(500))
        .connect_lazy(&format!("postgres://postgres@127.0.0.1:{port}/test"))
        .unwrap();
    let (handler, runs) = counting();
    let running = serve(Arc::new(PostgresStore::new(pool)), handler).await;
    let (status, retry_after) = deliver(&running.url(), &TestEvent::course_started()).await;
    assert_eq!(status, 503);
    assert!(retry_after.is_some());
    assert_eq!(runs.load(Ordering::SeqCst), 0);
    running.stop().await;
}
