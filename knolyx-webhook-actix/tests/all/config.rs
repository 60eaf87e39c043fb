//! A forgotten piece of configuration fails loudly, and marks nothing handled.

use knolyx_webhook_core::MemoryStore;
use knolyx_webhook_core::testing::{FaultyStore, TestEvent};

use crate::support::{Script, Setup, TestServer, receiver_with};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_receiver_is_a_500_naming_it() {
    let script = Script::ok();
    let receiver = receiver_with(MemoryStore::new());
    let server = TestServer::start_with(receiver, &script, Setup::NoReceiver, 1);
    let response = server.deliver(TestEvent::course_started().to_body()).await;
    assert_eq!(response.status, 500);
    assert!(
        response.body.contains("`WebhookReceiver`"),
        "{}",
        response.body
    );
    assert!(response.body.contains("app_data"), "{}", response.body);
    assert_eq!(script.total(), 0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_middleware_is_a_500_naming_it_and_claims_nothing() {
    let script = Script::ok();
    let store = FaultyStore::new(MemoryStore::new());
    let receiver = receiver_with(store.clone());
    let event = TestEvent::course_completed();

    let server = TestServer::start_with(receiver.clone(), &script, Setup::NoMiddleware, 1);
    let response = server.deliver(event.to_body()).await;
    assert_eq!(response.status, 500);
    assert!(
        response.body.contains("`KnolyxWebhookMiddleware`"),
        "{}",
        response.body
    );
    assert!(response.body.contains(".wrap("), "{}", response.body);
    // Refused before anything else, even a request the pipeline would refuse.
    let response = server.send(reqwest::Method::GET, &[], Vec::new()).await;
    assert_eq!(response.status, 500);
    assert_eq!(script.total(), 0);
    server.stop().await;
    assert!(store.calls().is_empty(), "{:?}", store.calls());

    // Nothing was claimed: with the middleware, the same delivery runs the handler.
    let server = TestServer::start(receiver, &script);
    let response = server.deliver(event.to_body()).await;
    assert_eq!(response.status, 200);
    assert!(!response.is_duplicate());
    assert_eq!(script.runs(event.message_id()), 1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_receiver_may_be_registered_as_web_data() {
    let script = Script::ok();
    let receiver = receiver_with(MemoryStore::new());
    let server = TestServer::start_with(receiver, &script, Setup::DataReceiver, 1);
    let event = TestEvent::course_started();
    assert_eq!(server.deliver(event.to_body()).await.status, 200);
    assert!(server.deliver(event.to_body()).await.is_duplicate());
    assert_eq!(script.runs(event.message_id()), 1);
    server.stop().await;
}
