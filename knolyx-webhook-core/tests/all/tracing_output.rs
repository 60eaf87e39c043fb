//! One span per delivery with the id, the type and the outcome; never the token or the body.

use http::Method;
use knolyx_webhook_core::Accepted;

use crate::support::*;

#[tokio::test]
async fn logs_name_id_type_and_outcome_but_never_token_or_body() {
    let capture = Capture::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(capture.clone())
        .with_max_level(tracing::Level::TRACE)
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let r = receiver();
    let secret_email = "very-private-student@example.com";
    let body = format!(
        r#"{{"id":"trace-1","type":"COURSE_COMPLETED","data":{{"user":{{"id":1,"name":"N","email":"{secret_email}"}},"course":{{"id":2,"name":"C"}}}}}}"#
    );
    let Ok(Accepted::Deliver(d)) = put(&r, body.clone()).await else {
        panic!()
    };
    let (_, settlement) = d.into_parts();
    settlement.settle(200).await;
    // A duplicate, a wrong token, a malformed body quoting a secret, wrong-shaped data.
    let _ = put(&r, body.clone()).await;
    let wrong = "wrong-token-value-123";
    let _ = r
        .receive(
            &Method::PUT,
            &headers_with(&[wrong.as_bytes()]),
            body.clone().into(),
        )
        .await;
    let _ = put(
        &r,
        format!(r#"{{"id":"m","type":"X","data":{secret_email}}}"#),
    )
    .await;
    let _ = put(
        &r,
        format!(r#"{{"id":"bad","type":"COURSE_COMPLETED","data":{{"user":"{secret_email}"}}}}"#),
    )
    .await;

    let out = capture.text();
    assert!(out.contains("knolyx_webhook.delivery"), "{out}");
    assert!(out.contains("trace-1"), "{out}");
    assert!(out.contains("COURSE_COMPLETED"), "{out}");
    for outcome in [
        "handled",
        "duplicate",
        "unauthorized",
        "malformed_payload",
        "invalid_event_data",
    ] {
        assert!(out.contains(outcome), "outcome {outcome} missing:\n{out}");
    }
    for secret in [TOKEN, wrong, secret_email] {
        assert!(
            !out.contains(secret),
            "{secret} leaked into the logs:\n{out}"
        );
    }
}

/// An inbox that cannot store is named as the inbox in the log line (with its kind), not as
/// the idempotency store: the operator looks at the right database.
#[tokio::test]
async fn an_inbox_failure_is_logged_as_the_inbox() {
    use std::sync::Arc;

    use knolyx_webhook_core::inbox::MemoryInbox;
    use knolyx_webhook_core::testing::TestEvent;

    let capture = Capture::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(capture.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    // Full after one pending entry: the next accept fails (kind `full`).
    let inbox = Arc::new(MemoryInbox::builder().capacity(1).build());
    let r = builder().inbox(inbox).build().unwrap();
    assert!(put(&r, TestEvent::course_started().to_body()).await.is_ok());
    let refused = put(&r, TestEvent::course_started().to_body()).await;
    assert_eq!(refused.err().map(|r| r.status().as_u16()), Some(503));
    let out = capture.text();
    let line = out
        .lines()
        .find(|l| l.contains("inbox failed; nothing acknowledged"))
        .unwrap_or_else(|| panic!("no inbox failure line:\n{out}"));
    assert!(line.contains("kind=\"full\""), "{line}");
    assert!(!out.contains("idempotency store"), "{out}");
}
