//! Every row of the design's pipeline table, through the framework-free pipeline: the
//! status, whether the handler would run, and the store's state afterwards.

use std::sync::Arc;
use std::time::Duration;

use http::header::{ALLOW, RETRY_AFTER};
use http::{Method, StatusCode};
use knolyx_webhook_core::store::{IdempotencyStore, MemoryStore};
use knolyx_webhook_core::testing::{CallOutcome, Fault, FaultyStore, StoreOp, Times};
use knolyx_webhook_core::{
    Accepted, Answer, DUPLICATE_HEADER, Event, PingHandling, Rejection, Settled,
    StoreFailureHandling,
};

use crate::support::*;

fn expect_rejection(result: Result<Accepted, Rejection>) -> Rejection {
    match result {
        Err(r) => r,
        Ok(other) => panic!("expected a rejection, got {other:?}"),
    }
}

fn header(reply: &knolyx_webhook_core::Reply, name: &str) -> Option<String> {
    reply
        .headers()
        .iter()
        .find(|(n, _)| n.as_str() == name)
        .map(|(_, v)| v.to_str().unwrap().to_owned())
}

#[tokio::test]
async fn first_delivery_handler_2xx_completes() {
    let store = Arc::new(MemoryStore::new());
    let r = builder().shared_store(store.clone()).build().unwrap();
    let (event, settlement) = expect_deliver(put(&r, course_started("m-ok")).await).into_parts();
    assert_eq!(event.id(), "m-ok");
    assert_eq!(state(&*store, "m-ok").await, State::InProgress);
    assert_eq!(settlement.settle(200).await, Settled::Completed);
    assert_eq!(state(&*store, "m-ok").await, State::Completed);
}

#[tokio::test]
async fn first_delivery_handler_failure_releases_and_the_retry_runs() {
    let store = Arc::new(MemoryStore::new());
    let r = builder().shared_store(store.clone()).build().unwrap();
    for failing_status in [500, 404, 302, 199] {
        let id = format!("m-fail-{failing_status}");
        let (_, settlement) = expect_deliver(put(&r, course_started(&id)).await).into_parts();
        assert_eq!(settlement.settle(failing_status).await, Settled::Released);
        assert_eq!(state(&*store, &id).await, State::Absent, "{failing_status}");
        // The retransmission runs the handler.
        let (_, settlement) = expect_deliver(put(&r, course_started(&id)).await).into_parts();
        assert_eq!(settlement.settle(204).await, Settled::Completed);
    }
}

#[tokio::test]
async fn handler_dropped_or_panicked_releases_on_the_runtime() {
    let store = Arc::new(MemoryStore::new());
    let r = builder().shared_store(store.clone()).build().unwrap();
    let delivery = expect_deliver(put(&r, course_started("m-drop")).await);
    drop(delivery); // what unwinding from a panicking handler, or a dropped request, does
    // The release runs as a task on this (current-thread) runtime: wait for it.
    r.drain().await;
    assert_eq!(state(&*store, "m-drop").await, State::Absent);
    let _retry = expect_deliver(put(&r, course_started("m-drop")).await);
}

#[test]
fn handler_dropped_without_a_runtime_leaves_the_lease_to_expire() {
    let store = Arc::new(MemoryStore::new());
    let r = builder()
        .shared_store(store.clone())
        .lease(Duration::from_millis(200))
        .build()
        .unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let delivery = runtime.block_on(put(&r, course_started("m-norun")));
    drop(delivery); // outside any runtime: nothing can release it now
    runtime.block_on(async {
        assert_eq!(state(&*store, "m-norun").await, State::InProgress);
        tokio::time::sleep(Duration::from_millis(300)).await; // the lease set above
        let _retry = expect_deliver(put(&r, course_started("m-norun")).await);
    });
}

#[tokio::test]
async fn duplicate_of_a_completed_message_is_answered_200_with_the_marker() {
    let store = Arc::new(MemoryStore::new());
    let r = builder().shared_store(store.clone()).build().unwrap();
    let (_, s) = expect_deliver(put(&r, course_started("m-dup")).await).into_parts();
    s.settle(200).await;
    let result = put(&r, course_started("m-dup")).await;
    let Ok(Accepted::Answered(answer)) = result else {
        panic!("{result:?}")
    };
    assert_eq!(answer, Answer::Duplicate);
    let reply = answer.reply();
    assert_eq!(reply.status(), StatusCode::OK);
    assert_eq!(header(&reply, DUPLICATE_HEADER).as_deref(), Some("true"));
    assert_eq!(state(&*store, "m-dup").await, State::Completed);
}

#[tokio::test]
async fn duplicate_while_in_progress_is_retryable_and_changes_nothing() {
    let store = Arc::new(MemoryStore::new());
    let r = builder().shared_store(store.clone()).build().unwrap();
    let first = expect_deliver(put(&r, course_started("m-busy")).await);
    let rejection = expect_rejection(put(&r, course_started("m-busy")).await);
    assert_eq!(rejection.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        header(&rejection.reply(), "retry-after").as_deref(),
        Some("5")
    );
    assert_eq!(state(&*store, "m-busy").await, State::InProgress);
    // The first delivery still owns its claim.
    let (_, s) = first.into_parts();
    assert_eq!(s.settle(200).await, Settled::Completed);
}

#[tokio::test]
async fn in_flight_status_is_configurable() {
    let r = builder()
        .in_flight_response(StatusCode::CONFLICT, None)
        .build()
        .unwrap();
    let _first = expect_deliver(put(&r, course_started("m-409")).await);
    let rejection = expect_rejection(put(&r, course_started("m-409")).await);
    assert_eq!(rejection.status(), StatusCode::CONFLICT);
    assert_eq!(header(&rejection.reply(), RETRY_AFTER.as_str()), None);
    let err = builder()
        .in_flight_response(StatusCode::OK, None)
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("4xx or 5xx"), "{err}");
}

#[tokio::test]
async fn store_unavailable_fails_closed_with_503_and_recovers() {
    let store = FaultyStore::new(MemoryStore::new());
    let r = builder().store(store.clone()).build().unwrap();
    take_down(&store);
    let rejection = expect_rejection(put(&r, course_started("m-down")).await);
    assert_eq!(rejection.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        header(&rejection.reply(), "retry-after").as_deref(),
        Some("5")
    );
    assert!(
        std::error::Error::source(&rejection).is_some(),
        "keeps the store error"
    );
    store.reset_all();
    assert_eq!(state(store.inner(), "m-down").await, State::Absent);
    // Back up: delivery resumes.
    let (_, s) = expect_deliver(put(&r, course_started("m-down")).await).into_parts();
    assert_eq!(s.settle(200).await, Settled::Completed);
}

#[tokio::test]
async fn store_failing_while_settling_is_reported() {
    let store = FaultyStore::new(MemoryStore::new());
    let r = builder().store(store.clone()).build().unwrap();
    let (_, s) = expect_deliver(put(&r, course_started("m-settle")).await).into_parts();
    take_down(&store);
    assert_eq!(s.settle(200).await, Settled::StoreFailed);
}

#[tokio::test]
async fn fail_open_runs_the_handler_without_a_claim() {
    let store = FaultyStore::new(MemoryStore::new());
    let r = builder()
        .store(store.clone())
        .store_failure(StoreFailureHandling::FailOpen)
        .build()
        .unwrap();
    take_down(&store);
    let (_, s) = expect_deliver(put(&r, course_started("m-open")).await).into_parts();
    assert!(!s.has_claim());
    assert_eq!(s.settle(200).await, Settled::NoClaim);
}

#[tokio::test]
async fn ping_is_answered_by_default_and_never_stored() {
    let store = Arc::new(MemoryStore::new());
    let r = builder().shared_store(store.clone()).build().unwrap();
    let ping = br#"{"id":"p-1","type":"PING","data":{"message":"PING"}}"#.to_vec();
    for _ in 0..2 {
        let result = put(&r, ping.clone()).await;
        let Ok(Accepted::Answered(Answer::Ping)) = result else {
            panic!("{result:?}")
        };
    }
    assert_eq!(Answer::Ping.reply().status(), StatusCode::OK);
    assert!(store.is_empty());
}

#[tokio::test]
async fn ping_can_be_forwarded_and_is_still_not_stored() {
    let store = Arc::new(MemoryStore::new());
    let r = builder()
        .shared_store(store.clone())
        .ping(PingHandling::Forward)
        .build()
        .unwrap();
    let ping = br#"{"id":"p-2","type":"PING","data":{"message":"PING"}}"#.to_vec();
    for _ in 0..2 {
        let (event, s) = expect_deliver(put(&r, ping.clone()).await).into_parts();
        assert!(matches!(event.event(), Event::Ping(_)));
        assert!(!s.has_claim());
        assert_eq!(s.settle(200).await, Settled::NoClaim);
    }
    assert!(store.is_empty());
}

#[tokio::test]
async fn unknown_types_are_delivered_and_deduplicated() {
    let store = Arc::new(MemoryStore::new());
    let r = builder().shared_store(store.clone()).build().unwrap();
    let body = br#"{"id":"u-1","type":"QUIZ_PASSED","data":{"quiz":9}}"#.to_vec();
    let (event, s) = expect_deliver(put(&r, body.clone()).await).into_parts();
    let Event::Unknown(u) = event.event() else {
        panic!()
    };
    assert_eq!(u.event_type(), "QUIZ_PASSED");
    s.settle(200).await;
    assert!(matches!(
        put(&r, body).await,
        Ok(Accepted::Answered(Answer::Duplicate))
    ));
}

#[tokio::test]
async fn methods_other_than_put_and_post_get_405_with_allow() {
    let store = Arc::new(MemoryStore::new());
    let r = builder().shared_store(store.clone()).build().unwrap();
    for method in [
        Method::GET,
        Method::DELETE,
        Method::PATCH,
        Method::HEAD,
        Method::OPTIONS,
    ] {
        let rejection = expect_rejection(
            r.receive(&method, &good_headers(), course_started("m-405").into())
                .await,
        );
        assert_eq!(
            rejection.status(),
            StatusCode::METHOD_NOT_ALLOWED,
            "{method}"
        );
        assert_eq!(
            header(&rejection.reply(), ALLOW.as_str()).as_deref(),
            Some("PUT, POST")
        );
    }
    // POST is accepted as well as PUT.
    let d = expect_deliver(
        r.receive(
            &Method::POST,
            &good_headers(),
            course_started("m-post").into(),
        )
        .await,
    );
    drop(d.into_parts());
    // Method is checked before the token.
    let rejection = expect_rejection(r.receive(&Method::GET, &headers_with(&[]), "".into()).await);
    assert_eq!(rejection.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(state(&*store, "m-405").await, State::Absent);
}

#[tokio::test]
async fn rotation_accepts_every_configured_token() {
    let r = builder().token("next-token").build().unwrap();
    for token in [TOKEN, "next-token"] {
        let result = r
            .receive(
                &Method::PUT,
                &headers_with(&[token.as_bytes()]),
                course_started(&format!("rot-{token}")).into(),
            )
            .await;
        let _delivery = expect_deliver(result);
    }
}

#[tokio::test]
async fn the_store_is_object_safe_behind_arc_dyn() {
    let store: Arc<dyn IdempotencyStore> = Arc::new(MemoryStore::new());
    let r = builder().shared_store(store.clone()).build().unwrap();
    let (_, s) = expect_deliver(put(&r, course_started("m-dyn")).await).into_parts();
    s.settle(200).await;
    assert_eq!(state(&*store, "m-dyn").await, State::Completed);
}

#[tokio::test]
async fn a_settle_dropped_half_way_is_finished_in_the_background() {
    let store = FaultyStore::new(MemoryStore::new());
    let r = builder().store(store.clone()).build().unwrap();
    let (_, settlement) = expect_deliver(put(&r, course_started("m-hangup")).await).into_parts();
    // The handler succeeded; the store holds the complete, and the request is dropped
    // meanwhile (a client hanging up, as hyper does it).
    store.inject(StoreOp::Complete, Fault::Hold, Times::Next(1));
    let settling = tokio::spawn(settlement.settle(200));
    store
        .wait_for(|c| c.op == StoreOp::Complete && c.outcome == CallOutcome::Pending)
        .await;
    settling.abort();
    assert!(settling.await.unwrap_err().is_cancelled());
    // The success is not lost: the same complete is sent again, detached, and applies.
    let done = store
        .wait_for(|c| {
            c.op == StoreOp::Complete
                && c.outcome
                    == CallOutcome::Settle(knolyx_webhook_core::store::SettleOutcome::Settled)
        })
        .await;
    assert_eq!(done.id, "m-hangup");
    assert_eq!(state(store.inner(), "m-hangup").await, State::Completed);
}
