//! Every row of the pipeline table, over real HTTP.

use std::sync::Arc;
use std::time::Duration;

use knolyx_webhook_core::store::SettleOutcome;
use knolyx_webhook_core::testing::{CallOutcome, FIXTURES, FaultyStore, StoreOp, TestEvent};
use knolyx_webhook_core::{Event, MemoryStore, PingHandling, WebhookReceiver};
use tokio::sync::Notify;

use crate::support::{Plan, Script, TOKEN, TestServer, failing_store, receiver_with};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_delivery_2xx_completes_and_the_retransmission_is_a_duplicate() {
    let store = FaultyStore::new(MemoryStore::new());
    let script = Script::ok();
    let server = TestServer::start(receiver_with(store.clone()), &script);
    let event = TestEvent::course_completed();

    let first = server.deliver(event.to_body()).await;
    assert_eq!(first.status, 200);
    assert_eq!(first.body, "handled", "the handler's own response");
    assert!(!first.is_duplicate());
    assert_eq!(script.runs(event.message_id()), 1);
    // Completed before the response went out: no waiting needed.
    assert!(
        store.calls().iter().any(|c| c.op == StoreOp::Complete
            && c.id == event.message_id()
            && c.outcome == CallOutcome::Settle(SettleOutcome::Settled)),
        "the claim was completed before the 200 was sent"
    );

    let again = server.deliver(event.to_body()).await;
    assert_eq!(again.status, 200);
    assert!(again.is_duplicate());
    assert_eq!(again.body, "duplicate");
    assert_eq!(
        script.runs(event.message_id()),
        1,
        "the handler did not run again"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_error_releases_the_claim_and_the_retry_runs() {
    let script = Script::new(|_, run| if run == 1 { Plan::Error } else { Plan::Ok });
    let server = TestServer::start(receiver_with(MemoryStore::new()), &script);
    let event = TestEvent::bundle_payment_received();

    let failed = server.deliver(event.to_body()).await;
    assert_eq!(failed.status, 500);
    assert!(!failed.is_duplicate());
    let retried = server.deliver(event.to_body()).await;
    assert_eq!(retried.status, 200);
    assert!(!retried.is_duplicate());
    assert_eq!(
        script.runs(event.message_id()),
        2,
        "the retry ran the handler"
    );
    let again = server.deliver(event.to_body()).await;
    assert!(again.is_duplicate());
    assert_eq!(script.runs(event.message_id()), 2);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_2xx_releases_the_claim_and_any_2xx_completes_it() {
    let script = Script::new(|_, run| match run {
        1 => Plan::Status(409),
        2 => Plan::Status(302),
        _ => Plan::Status(202),
    });
    let server = TestServer::start(receiver_with(MemoryStore::new()), &script);
    let event = TestEvent::course_started();

    assert_eq!(server.deliver(event.to_body()).await.status, 409);
    assert_eq!(server.deliver(event.to_body()).await.status, 302);
    let accepted = server.deliver(event.to_body()).await;
    assert_eq!(accepted.status, 202);
    assert!(!accepted.is_duplicate());
    assert_eq!(script.runs(event.message_id()), 3);
    let again = server.deliver(event.to_body()).await;
    assert_eq!(again.status, 200);
    assert!(again.is_duplicate(), "a 202 marked the event handled");
    assert_eq!(script.runs(event.message_id()), 3);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_handler_releases_the_claim_and_the_next_delivery_runs() {
    let store = FaultyStore::new(MemoryStore::new());
    let script = Script::new(|_, run| if run == 1 { Plan::Panic } else { Plan::Ok });
    let server = TestServer::start(receiver_with(store.clone()), &script);
    let event = TestEvent::course_payment_received();

    // The connection dies with the handler (or, at best, a 5xx comes back).
    match server
        .try_send(reqwest::Method::PUT, &[TOKEN], event.to_body())
        .await
    {
        Err(_) => {}
        Ok(response) => assert!(response.status >= 500, "{response:?}"),
    }
    assert_eq!(script.runs(event.message_id()), 1);
    // Core releases the dropped settlement on the worker's runtime.
    let released = store.wait_for(|c| {
        c.op == StoreOp::Release && c.outcome == CallOutcome::Settle(SettleOutcome::Settled)
    });
    let release = tokio::time::timeout(Duration::from_secs(10), released)
        .await
        .expect("the claim of the panicked delivery was released");
    assert_eq!(release.id, event.message_id());

    let retried = server.deliver(event.to_body()).await;
    assert_eq!(retried.status, 200);
    assert!(!retried.is_duplicate());
    assert_eq!(
        script.runs(event.message_id()),
        2,
        "the next delivery ran the handler"
    );
    // The worker survived the panic and keeps serving.
    assert!(server.deliver(event.to_body()).await.is_duplicate());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_while_the_first_runs_gets_503_with_retry_after() {
    let started = Arc::new(Notify::new());
    let release = Arc::new(Notify::new());
    let script = Script::block_first(&started, &release);
    let server = TestServer::start(receiver_with(MemoryStore::new()), &script);
    let event = TestEvent::course_completed();

    let first = server.deliver(event.to_body());
    let second = async {
        started.notified().await;
        let second = server.deliver(event.to_body()).await;
        release.notify_one();
        second
    };
    let (first, second) = tokio::join!(first, second);
    assert_eq!(second.status, 503);
    assert_eq!(second.header("retry-after"), Some("5"));
    assert_eq!(second.body, "delivery already in progress");
    assert_eq!(first.status, 200);
    assert_eq!(script.runs(event.message_id()), 1);
    // The in-flight answer changed nothing: the first delivery completed the id.
    assert!(server.deliver(event.to_body()).await.is_duplicate());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unavailable_store_gets_503_with_retry_after_and_the_handler_does_not_run() {
    let script = Script::ok();
    let server = TestServer::start(receiver_with(failing_store()), &script);
    let response = server.deliver(TestEvent::course_started().to_body()).await;
    assert_eq!(response.status, 503);
    assert_eq!(response.header("retry-after"), Some("5"));
    assert_eq!(response.body, "temporarily unavailable");
    assert_eq!(script.total(), 0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_is_answered_by_the_pipeline_by_default() {
    let script = Script::ok();
    let server = TestServer::start(receiver_with(MemoryStore::new()), &script);
    let response = server.deliver(TestEvent::ping().to_body()).await;
    assert_eq!(response.status, 200);
    assert_eq!(response.body, "pong");
    assert!(!response.is_duplicate());
    assert_eq!(script.total(), 0, "the handler did not run");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_can_be_forwarded_and_is_never_stored() {
    let receiver = WebhookReceiver::builder()
        .token(TOKEN)
        .ping(PingHandling::Forward)
        .build()
        .unwrap();
    let script = Script::ok();
    let server = TestServer::start(receiver, &script);
    let ping = TestEvent::ping();
    for _ in 0..2 {
        let response = server.deliver(ping.to_body()).await;
        assert_eq!(response.status, 200);
        assert_eq!(response.body, "handled");
    }
    assert_eq!(
        script.runs(ping.message_id()),
        2,
        "pings are not deduplicated"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_vendor_fixtures_reach_the_handler_typed() {
    let script = Script::ok();
    let server = TestServer::start(receiver_with(MemoryStore::new()), &script);
    for (name, body) in FIXTURES {
        let response = server.deliver(body.to_vec()).await;
        assert_eq!(response.status, 200, "{name}");
        let ran = script.events().iter().any(|e| e.event_type() == name);
        assert_eq!(ran, name != "PING", "{name}: handler ran = {ran}");
    }
    let events = script.events();
    assert_eq!(events.len(), 4);
    assert!(
        events
            .iter()
            .all(|e| !matches!(e.event(), Event::Unknown(_) | Event::Ping(_)))
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_type_is_delivered_and_post_is_accepted() {
    let script = Script::ok();
    let server = TestServer::start(receiver_with(MemoryStore::new()), &script);
    let unknown = TestEvent::unknown("QUIZ_PASSED", r#"{"user":{"id":48213},"score":92}"#).unwrap();
    assert_eq!(server.deliver(unknown.to_body()).await.status, 200);
    let posted = TestEvent::course_started();
    let response = server
        .send(reqwest::Method::POST, &[TOKEN], posted.to_body())
        .await;
    assert_eq!(response.status, 200);
    let events = script.events();
    match events[0].event() {
        Event::Unknown(unknown) => assert_eq!(unknown.event_type(), "QUIZ_PASSED"),
        other => panic!("expected an unknown event, got {other:?}"),
    }
    assert_eq!(script.runs(posted.message_id()), 1);
    server.stop().await;
}
