//! Every row of the pipeline table, and the checks before it, over HTTP.

use std::sync::{Arc, Mutex};

use axum::http::StatusCode;
use bytes::Bytes;
use knolyx_webhook_core::Event;
use knolyx_webhook_core::store::{MemoryStore, SettleOutcome};
use knolyx_webhook_core::testing::{CallOutcome, FaultyStore, StoreOp, TestEvent};
use tokio::sync::watch;

use crate::support::{
    Handler, Server, TOKEN, bounded, builder, client, deliver, failing_store, header, is_completed,
    receiver, start, text, webhook_app,
};

#[tokio::test]
async fn a_first_delivery_runs_the_handler_and_its_2xx_completes_the_id() {
    let receiver = receiver();
    let store = Arc::clone(receiver.store());
    let handler = Handler::new(|_, _| async { StatusCode::ACCEPTED });
    let server = Server::start(webhook_app(receiver, handler.clone())).await;
    let event = TestEvent::course_completed();

    let response = deliver(&server.hook(), event.to_body()).await;
    assert_eq!(
        response.status(),
        StatusCode::ACCEPTED,
        "the handler's own response"
    );
    assert_eq!(header(&response, "x-knolyx-webhook-duplicate"), None);
    assert_eq!(handler.runs(), 1);
    assert!(is_completed(&store, event.message_id()).await);
}

#[tokio::test]
async fn a_completed_duplicate_is_200_flagged_and_does_not_run_the_handler() {
    let handler = Handler::ok();
    let server = start(handler.clone()).await;
    let event = TestEvent::course_started();
    assert_eq!(
        deliver(&server.hook(), event.to_body()).await.status(),
        StatusCode::OK
    );

    let response = deliver(&server.hook(), event.to_body()).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        header(&response, "x-knolyx-webhook-duplicate").as_deref(),
        Some("true")
    );
    assert_eq!(text(response).await, "duplicate");
    assert_eq!(handler.runs(), 1);
}

#[tokio::test]
async fn a_failing_handler_releases_the_id_and_the_retry_runs_it() {
    let handler = Handler::new(|_, n| async move {
        if n == 1 {
            StatusCode::INTERNAL_SERVER_ERROR
        } else {
            StatusCode::OK
        }
    });
    let server = start(handler.clone()).await;
    let event = TestEvent::course_payment_received();

    let response = deliver(&server.hook(), event.to_body()).await;
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let response = deliver(&server.hook(), event.to_body()).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, "x-knolyx-webhook-duplicate"), None);
    assert_eq!(handler.runs(), 2);
    // Now handled: the next one is a duplicate.
    let response = deliver(&server.hook(), event.to_body()).await;
    assert_eq!(
        header(&response, "x-knolyx-webhook-duplicate").as_deref(),
        Some("true")
    );
    assert_eq!(handler.runs(), 2);
}

#[tokio::test]
async fn a_panicking_handler_releases_the_id_and_the_next_delivery_runs_it() {
    let store = FaultyStore::new(MemoryStore::new());
    let receiver = builder().store(store.clone()).build().unwrap();
    let handler = Handler::new(|_, n| async move {
        assert!(n > 1, "the handler panics on its first run");
        StatusCode::OK
    });
    let server = Server::start(webhook_app(receiver, handler.clone())).await;
    let event = TestEvent::bundle_payment_received();

    // axum's default: the panic ends the connection, with no response.
    let first = client()
        .put(server.hook())
        .header("x-webhook-security-token", TOKEN)
        .body(event.to_body())
        .send()
        .await;
    assert!(
        first.is_err(),
        "a panicking handler sends no response: {first:?}"
    );
    assert_eq!(handler.runs(), 1);
    // The unsettled claim is released on the runtime (not waiting for the 60 s lease).
    let released = store.wait_for(|c| {
        c.op == StoreOp::Release && c.outcome == CallOutcome::Settle(SettleOutcome::Settled)
    });
    let release = bounded("the release", released).await;
    assert_eq!(release.id, event.message_id());

    let response = deliver(&server.hook(), event.to_body()).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, "x-knolyx-webhook-duplicate"), None);
    assert_eq!(handler.runs(), 2);
}

#[tokio::test]
async fn a_duplicate_while_the_first_is_running_is_503_with_retry_after() {
    let (started_tx, mut started) = watch::channel(false);
    let (go, go_rx) = watch::channel(false);
    let handler = Handler::new(move |_, _| {
        let started_tx = started_tx.clone();
        let mut go_rx = go_rx.clone();
        async move {
            started_tx.send_replace(true);
            go_rx.wait_for(|go| *go).await.unwrap();
            StatusCode::OK
        }
    });
    let server = start(handler.clone()).await;
    let event = TestEvent::course_completed();

    let url = server.hook();
    let body = event.to_body();
    let first = tokio::spawn(async move { deliver(&url, body).await.status() });
    bounded("the first handler", started.wait_for(|s| *s))
        .await
        .unwrap();

    let response = deliver(&server.hook(), event.to_body()).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(header(&response, "retry-after").as_deref(), Some("5"));
    assert_eq!(text(response).await, "delivery already in progress");

    go.send_replace(true);
    assert_eq!(
        bounded("the first delivery", first).await.unwrap(),
        StatusCode::OK
    );
    assert_eq!(handler.runs(), 1);
    let response = deliver(&server.hook(), event.to_body()).await;
    assert_eq!(
        header(&response, "x-knolyx-webhook-duplicate").as_deref(),
        Some("true")
    );
}

#[tokio::test]
async fn an_unavailable_store_is_503_with_retry_after_and_the_handler_does_not_run() {
    let handler = Handler::ok();
    let receiver = builder().store(failing_store()).build().unwrap();
    let server = Server::start(webhook_app(receiver, handler.clone())).await;

    let response = deliver(&server.hook(), TestEvent::course_completed().to_body()).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(header(&response, "retry-after").as_deref(), Some("5"));
    assert_eq!(text(response).await, "temporarily unavailable");
    assert_eq!(handler.runs(), 0);
}

#[tokio::test]
async fn ping_is_answered_without_the_handler_and_never_stored() {
    let handler = Handler::ok();
    let server = start(handler.clone()).await;
    let ping = TestEvent::ping();
    for _ in 0..2 {
        let response = deliver(&server.hook(), ping.to_body()).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(header(&response, "x-knolyx-webhook-duplicate"), None);
        assert_eq!(text(response).await, "pong");
    }
    assert_eq!(handler.runs(), 0);
}

#[tokio::test]
async fn post_is_accepted_and_other_methods_get_405_with_allow() {
    let handler = Handler::ok();
    let server = start(handler.clone()).await;
    for method in [
        reqwest::Method::GET,
        reqwest::Method::DELETE,
        reqwest::Method::PATCH,
    ] {
        let response = client()
            .request(method.clone(), server.hook())
            .header("x-webhook-security-token", TOKEN)
            .body(TestEvent::course_started().to_body())
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::METHOD_NOT_ALLOWED,
            "{method}"
        );
        assert_eq!(header(&response, "allow").as_deref(), Some("PUT, POST"));
        assert_eq!(text(response).await, "method not allowed");
    }
    assert_eq!(handler.runs(), 0);

    let response = client()
        .post(server.hook())
        .header("x-webhook-security-token", TOKEN)
        .body(TestEvent::course_started().to_body())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(handler.runs(), 1);
}

#[tokio::test]
async fn a_missing_repeated_empty_or_wrong_token_is_401_with_one_body() {
    let handler = Handler::ok();
    let server = start(handler.clone()).await;
    let prefix = &TOKEN[..TOKEN.len() - 1];
    let longer = format!("{TOKEN}x");
    let cases: [(&str, &[&str]); 6] = [
        ("missing", &[]),
        ("two headers", &[TOKEN, TOKEN]),
        ("empty", &[""]),
        ("prefix", &[prefix]),
        ("longer", &[&longer]),
        ("wrong", &["guess"]),
    ];
    for (case, tokens) in cases {
        let mut request = client().put(server.hook());
        for token in tokens {
            request = request.header("x-webhook-security-token", *token);
        }
        let response = request
            .body(TestEvent::course_completed().to_body())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{case}");
        assert_eq!(text(response).await, "invalid webhook token", "{case}");
    }
    assert_eq!(handler.runs(), 0);
}

#[tokio::test]
async fn a_malformed_body_is_400() {
    let handler = Handler::ok();
    let server = start(handler.clone()).await;
    let bodies: [(&str, Bytes); 5] = [
        ("not json", Bytes::from_static(b"hello")),
        (
            "truncated",
            Bytes::from_static(br#"{"id":"m-1","type":"PING""#),
        ),
        ("no id", Bytes::from_static(br#"{"type":"PING","data":{}}"#)),
        (
            "empty id",
            Bytes::from_static(br#"{"id":"","type":"PING","data":{}}"#),
        ),
        (
            "invalid utf-8",
            Bytes::from_static(b"{\"id\":\"m-\xff\",\"type\":\"PING\"}"),
        ),
    ];
    for (case, body) in bodies {
        let response = deliver(&server.hook(), body).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{case}");
        assert_eq!(text(response).await, "malformed webhook payload", "{case}");
    }
    assert_eq!(handler.runs(), 0);
}

#[tokio::test]
async fn a_known_type_with_data_of_the_wrong_shape_is_422_and_not_marked_handled() {
    let receiver = receiver();
    let store = Arc::clone(receiver.store());
    let handler = Handler::ok();
    let server = Server::start(webhook_app(receiver, handler.clone())).await;
    let body = br#"{"id":"shape-1","type":"COURSE_COMPLETED","data":{"user":"Ana"}}"#;

    let response = deliver(&server.hook(), &body[..]).await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(text(response).await, "event data does not match its type");
    assert_eq!(handler.runs(), 0);
    assert!(!is_completed(&store, "shape-1").await);
}

#[tokio::test]
async fn an_unknown_type_reaches_the_handler_with_its_raw_data() {
    let seen = Arc::new(Mutex::new(None));
    let record = Arc::clone(&seen);
    let handler = Handler::new(move |event, _| {
        *record.lock().unwrap() = Some(event);
        async { StatusCode::OK }
    });
    let server = start(handler.clone()).await;
    let body = br#"{"id":"new-1","type":"CERTIFICATE_ISSUED","data":{"certificate":{"id":9}}}"#;

    let response = deliver(&server.hook(), &body[..]).await;
    assert_eq!(response.status(), StatusCode::OK);
    let event = seen.lock().unwrap().take().expect("the handler ran");
    assert_eq!(event.id(), "new-1");
    let Event::Unknown(unknown) = event.event() else {
        panic!("expected an unknown event, got {event:?}");
    };
    assert_eq!(unknown.event_type(), "CERTIFICATE_ISSUED");
    assert_eq!(
        unknown.data_as::<serde_json::Value>().unwrap()["certificate"]["id"],
        9
    );
}
