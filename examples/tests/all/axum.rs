//! The axum receiver's app over real HTTP (the binaries' contract is in `binaries`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use knolyx_webhook_core::testing::TestEvent;
use knolyx_webhook_core::{WebhookEvent, WebhookReceiver};
use knolyx_webhook_examples::axum_receiver;
use knolyx_webhook_examples::{EventHandler, HandlerError};

const TOKEN: &str = "examples-axum-token";

fn receiver() -> WebhookReceiver {
    WebhookReceiver::builder().token(TOKEN).build().unwrap()
}

/// A handler that fails its first run and counts every run.
fn failing_once() -> (EventHandler, Arc<AtomicUsize>) {
    let runs = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&runs);
    let handler: EventHandler = Arc::new(move |_event: WebhookEvent| {
        let n = counted.fetch_add(1, Ordering::SeqCst) + 1;
        Box::pin(async move {
            if n == 1 {
                Err(HandlerError("first run fails".into()))
            } else {
                Ok(())
            }
        })
    });
    (handler, runs)
}

/// A delivery with `token`, as Knolyx sends it.
pub(crate) async fn put(url: &str, token: &str, body: Vec<u8>) -> reqwest::Response {
    reqwest::Client::new()
        .put(url)
        .header("x-webhook-security-token", token)
        .body(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_app_runs_the_handler_once_and_retries_a_failure() {
    let (handler, runs) = failing_once();
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let running = axum_receiver::spawn(receiver(), handler, addr)
        .await
        .unwrap();
    assert_eq!(running.framework(), "axum");
    assert_ne!(running.addr().port(), 0);
    let url = running.url();
    let event = TestEvent::course_completed();

    let response = put(&url, TOKEN, event.to_body().to_vec()).await;
    assert_eq!(response.status(), 500);
    assert_eq!(response.text().await.unwrap(), "handler failed");
    let response = put(&url, TOKEN, event.to_body().to_vec()).await;
    assert_eq!(response.status(), 200);
    assert!(
        response
            .headers()
            .get("x-knolyx-webhook-duplicate")
            .is_none()
    );
    let response = put(&url, TOKEN, event.to_body().to_vec()).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-knolyx-webhook-duplicate"], "true");
    assert_eq!(runs.load(Ordering::SeqCst), 2);

    let response = put(&url, "wrong", event.to_body().to_vec()).await;
    assert_eq!(response.status(), 401);
    let client = reqwest::Client::new();
    let response = client.get(&url).send().await.unwrap();
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["allow"], "PUT, POST");
    // `/health` is outside the layer: no token needed.
    let health = format!("http://{}/health", running.addr());
    let response = client.get(&health).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(runs.load(Ordering::SeqCst), 2);

    // (Whether the port is closed afterwards cannot be asserted here: tests running in
    // parallel may be handed the same port. The binaries' test checks the graceful stop.)
    running.stop().await;
}
