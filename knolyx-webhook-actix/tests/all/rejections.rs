//! Everything refused before the handler: 405, 401, 400, 422, 413; opaque bodies.

use knolyx_webhook_core::MemoryStore;
use knolyx_webhook_core::WebhookReceiver;
use knolyx_webhook_core::testing::TestEvent;

use crate::support::{Response, Script, TOKEN, TestServer, receiver_with};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_methods_get_405_with_allow() {
    let script = Script::ok();
    let server = TestServer::start(receiver_with(MemoryStore::new()), &script);
    let event = TestEvent::course_started();
    for method in [
        reqwest::Method::GET,
        reqwest::Method::DELETE,
        reqwest::Method::PATCH,
        reqwest::Method::OPTIONS,
    ] {
        let response = server.send(method.clone(), &[TOKEN], event.to_body()).await;
        assert_eq!(response.status, 405, "{method}");
        assert_eq!(response.header("allow"), Some("PUT, POST"), "{method}");
        assert_eq!(response.body, "method not allowed");
    }
    assert_eq!(script.total(), 0);
    // Refused before the claim: the event is still new.
    assert_eq!(server.deliver(event.to_body()).await.status, 200);
    assert_eq!(script.runs(event.message_id()), 1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_get_401_with_one_body() {
    let script = Script::ok();
    let server = TestServer::start(receiver_with(MemoryStore::new()), &script);
    let event = TestEvent::course_completed();
    let prefix = &TOKEN[..TOKEN.len() - 1];
    let longer = format!("{TOKEN}x");
    let cases: [(&str, &[&str]); 6] = [
        ("missing", &[]),
        ("two headers, both right", &[TOKEN, TOKEN]),
        ("empty", &[""]),
        ("a prefix of the token", &[prefix]),
        ("the token and more", &[&longer]),
        ("wrong", &["not-the-token"]),
    ];
    for (case, tokens) in cases {
        let response = server
            .send(reqwest::Method::PUT, tokens, event.to_body())
            .await;
        assert_eq!(response.status, 401, "{case}");
        assert_eq!(response.body, "invalid webhook token", "{case}");
    }
    assert_eq!(script.total(), 0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_bodies_get_400_and_wrong_data_422() {
    let script = Script::ok();
    let server = TestServer::start(receiver_with(MemoryStore::new()), &script);
    let bad: [(&str, &[u8]); 6] = [
        ("not JSON", b"definitely not json"),
        (
            "truncated",
            br#"{"id": "m-1", "type": "COURSE_STARTED", "data": {"#,
        ),
        (
            "missing id",
            br#"{"type":"PING","data":{"message":"PING"}}"#,
        ),
        ("empty id", br#"{"id":"","type":"PING","data":{}}"#),
        ("invalid UTF-8", b"\xff\xfe not utf-8"),
        ("empty body", b""),
    ];
    for (case, body) in bad {
        let response = server.deliver(body.to_vec()).await;
        assert_eq!(response.status, 400, "{case}");
        assert_eq!(response.body, "malformed webhook payload", "{case}");
    }
    let wrong = br#"{"id":"w-1","type":"COURSE_COMPLETED","data":{"user":"x"}}"#;
    let response = server.deliver(wrong.to_vec()).await;
    assert_eq!(response.status, 422);
    assert_eq!(response.body, "event data does not match its type");
    assert_eq!(script.total(), 0);
    // A 422 does not mark the id handled.
    let fixed = TestEvent::course_completed().id("w-1");
    assert_eq!(server.deliver(fixed.to_body()).await.status, 200);
    assert_eq!(script.runs("w-1"), 1);
    server.stop().await;
}

fn small_limit_receiver() -> WebhookReceiver {
    WebhookReceiver::builder()
        .token(TOKEN)
        .body_limit(1024)
        .build()
        .unwrap()
}

/// A valid event padded with an unknown field to `len` bytes.
fn padded(len: usize) -> Vec<u8> {
    let mut body = TestEvent::course_started().to_body().to_vec();
    body.pop();
    let room = len - body.len() - r#","padding":""}"#.len();
    body.extend(format!(r#","padding":"{}"}}"#, "x".repeat(room)).bytes());
    assert_eq!(body.len(), len);
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_over_the_limit_get_413_with_or_without_content_length() {
    let script = Script::ok();
    let server = TestServer::start(small_limit_receiver(), &script);

    // Exactly the limit is fine; one byte more is not.
    assert_eq!(server.deliver(padded(1024)).await.status, 200);
    let response = server.deliver(padded(1025)).await;
    assert_eq!(response.status, 413);
    assert_eq!(response.body, "payload too large");
    let response = server.deliver(padded(64 * 1024)).await;
    assert_eq!(response.status, 413);

    // Chunked, no Content-Length: read only up to the limit, then 413.
    assert_eq!(server.deliver_chunked(&padded(1000), 100).await, 200);
    assert_eq!(server.deliver_chunked(&padded(4096), 512).await, 413);
    assert_eq!(server.deliver_chunked(&padded(1025), 1025).await, 413);
    assert_eq!(
        script.total(),
        2,
        "only the two bodies within the limit ran"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejection_bodies_never_echo_the_request() {
    const MARK: &str = "ECHO-MARK-93ab";
    let script = Script::ok();
    let server = TestServer::start(small_limit_receiver(), &script);
    let token = format!("{MARK}-token");
    let with_mark = |s: &str| s.replace("Ana Popescu", MARK).into_bytes();
    let event = String::from_utf8(TestEvent::course_completed().to_body().to_vec()).unwrap();
    let long = format!(
        r#"{{"id":"{MARK}","type":"X","data":{{"p":"{}"}}}}"#,
        MARK.repeat(100)
    );
    let long_id = format!(
        r#"{{"id":"{}","type":"PING","data":{{}}}}"#,
        MARK.repeat(30)
    );
    let requests: Vec<(reqwest::Method, Vec<&str>, Vec<u8>)> = vec![
        (reqwest::Method::GET, vec![TOKEN], with_mark(&event)),
        (reqwest::Method::PUT, vec![&token], with_mark(&event)),
        (
            reqwest::Method::PUT,
            vec![&token, &token],
            with_mark(&event),
        ),
        (
            reqwest::Method::PUT,
            vec![TOKEN],
            format!("{MARK} not json").into_bytes(),
        ),
        (reqwest::Method::PUT, vec![TOKEN], long_id.into_bytes()),
        (
            reqwest::Method::PUT,
            vec![TOKEN],
            format!(r#"{{"id":"{MARK}","type":"COURSE_STARTED","data":{{"user":"{MARK}"}}}}"#)
                .into_bytes(),
        ),
        (reqwest::Method::PUT, vec![TOKEN], long.into_bytes()),
    ];
    let mut statuses = Vec::new();
    for (method, tokens, body) in requests {
        let response: Response = server.send(method, &tokens, body).await;
        statuses.push(response.status);
        assert!(!response.body.contains(MARK), "{response:?}");
        assert!(!response.body.contains("token-"), "{response:?}");
        assert!(response.body.len() <= 64, "{response:?}");
        for (name, value) in &response.headers {
            let value = value.to_str().unwrap_or_default();
            assert!(!value.contains(MARK), "{name}: {value}");
        }
    }
    assert_eq!(statuses, [405, 401, 401, 400, 400, 422, 413]);
    assert_eq!(script.total(), 0);
    server.stop().await;
}
