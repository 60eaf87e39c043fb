//! Bad inputs: each gets its precise status and a short fixed body, nothing is stored, and
//! nothing panics.

use std::sync::Arc;

use http::{HeaderMap, Method, StatusCode};
use knolyx_webhook_core::store::MemoryStore;
use knolyx_webhook_core::{Accepted, Event, InvalidDataHandling, WebhookReceiver};

use crate::support::*;

async fn status_of(
    r: &WebhookReceiver,
    headers: &HeaderMap,
    body: Vec<u8>,
) -> (StatusCode, String) {
    match r.receive(&Method::PUT, headers, body.into()).await {
        Err(rejection) => {
            let text = rejection.body_text();
            assert!(text.len() < 64, "short body: {text}");
            (rejection.status(), text.to_owned())
        }
        Ok(Accepted::Answered(a)) => (a.status(), a.body_text().to_owned()),
        Ok(Accepted::Deliver(d)) => {
            drop(d.into_parts());
            (StatusCode::OK, "delivered".to_owned())
        }
    }
}

fn receiver_and_store() -> (WebhookReceiver, Arc<MemoryStore>) {
    let store = Arc::new(MemoryStore::new());
    (
        builder().shared_store(store.clone()).build().unwrap(),
        store,
    )
}

#[tokio::test]
async fn malformed_bodies_are_400_and_store_nothing() {
    let (r, store) = receiver_and_store();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("not json", b"hello".to_vec()),
        ("truncated", br#"{"id":"a","type":"PING""#.to_vec()),
        ("empty body", Vec::new()),
        ("json array", b"[1,2,3]".to_vec()),
        ("json string", br#""{\"id\":\"a\"}""#.to_vec()),
        ("null", b"null".to_vec()),
        (
            "trailing comma (the guide's samples)",
            br#"{"id":"a","type":"PING","data":{},}"#.to_vec(),
        ),
        (
            "trailing garbage",
            br#"{"id":"a","type":"PING"} x"#.to_vec(),
        ),
        (
            "invalid utf-8 in a string",
            b"{\"id\":\"a\xff\xfe\",\"type\":\"PING\"}".to_vec(),
        ),
        (
            "invalid utf-8 outside strings",
            b"\xff{\"id\":\"a\",\"type\":\"PING\"}".to_vec(),
        ),
        (
            "missing id",
            br#"{"type":"COURSE_STARTED","data":{}}"#.to_vec(),
        ),
        ("missing type", br#"{"id":"a","data":{}}"#.to_vec()),
        ("numeric id", br#"{"id":12,"type":"PING"}"#.to_vec()),
        ("null id", br#"{"id":null,"type":"PING"}"#.to_vec()),
        ("numeric type", br#"{"id":"a","type":7}"#.to_vec()),
        ("empty type", br#"{"id":"a","type":""}"#.to_vec()),
        (
            "empty id",
            br#"{"id":"","type":"COURSE_STARTED","data":{}}"#.to_vec(),
        ),
        (
            "1,000-byte id",
            format!(
                r#"{{"id":"{}","type":"COURSE_STARTED","data":{{}}}}"#,
                "a".repeat(1000)
            )
            .into_bytes(),
        ),
        (
            "256-byte id",
            format!(r#"{{"id":"{}","type":"PING"}}"#, "a".repeat(256)).into_bytes(),
        ),
        (
            "id with a NUL",
            br#"{"id":"a\u0000b","type":"PING"}"#.to_vec(),
        ),
        (
            "id with a newline",
            br#"{"id":"a\nINFO forged","type":"PING"}"#.to_vec(),
        ),
        (
            "duplicate id field",
            br#"{"id":"a","id":"b","type":"PING"}"#.to_vec(),
        ),
        ("10,000-deep nesting", {
            let mut v = b"[".repeat(10_000);
            v.extend(b"]".repeat(10_000));
            v
        }),
    ];
    for (name, body) in cases {
        let (status, text) = status_of(&r, &good_headers(), body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{name}");
        assert_eq!(text, "malformed webhook payload", "{name}");
    }
    assert!(store.is_empty());
}

#[tokio::test]
async fn an_id_of_exactly_255_bytes_is_accepted() {
    let (r, _) = receiver_and_store();
    let id = "é".repeat(127) + "a"; // 255 bytes, 128 characters
    assert_eq!(id.len(), 255);
    let (status, _) = status_of(&r, &good_headers(), course_started(&id)).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn deep_nesting_in_data_is_refused_without_overflowing_the_stack() {
    let (r, store) = receiver_and_store();
    // A known type: its data cannot have the documented shape (422). An unknown type: its
    // raw data would reach the handler, so it is bounded too (400).
    for (event_type, expected) in [
        ("COURSE_COMPLETED", StatusCode::UNPROCESSABLE_ENTITY),
        ("SOMETHING_NEW", StatusCode::BAD_REQUEST),
    ] {
        let mut body = format!(r#"{{"id":"deep","type":"{event_type}","data":"#).into_bytes();
        body.extend(b"[".repeat(10_000));
        body.extend(b"]".repeat(10_000));
        body.push(b'}');
        let (status, _) = status_of(&r, &good_headers(), body).await;
        assert_eq!(status, expected, "{event_type}");
    }
    assert!(store.is_empty());
}

#[tokio::test]
async fn deep_nesting_in_an_unknown_field_is_skipped_without_recursion() {
    let (r, _) = receiver_and_store();
    let mut body = course_started("deep-extra");
    body.pop();
    body.extend(br#","extra":"#);
    body.extend(b"[".repeat(30_000));
    body.extend(b"]".repeat(30_000));
    body.push(b'}');
    let (status, _) = status_of(&r, &good_headers(), body).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn data_of_the_wrong_shape_is_422_and_not_marked_handled() {
    let (r, store) = receiver_and_store();
    let cases = [
        r#"{"id":"w1","type":"COURSE_COMPLETED","data":{"user":{"id":1,"name":"a","email":"e"}}}"#,
        r#"{"id":"w2","type":"COURSE_STARTED","data":{"user":{"id":"1","name":"a","email":"e"},"course":{"id":1,"name":"c"}}}"#,
        r#"{"id":"w3","type":"COURSE_PAYMENT_RECEIVED","data":[]}"#,
        r#"{"id":"w4","type":"BUNDLE_PAYMENT_RECEIVED","data":{"user":{"id":1,"name":"a","email":"e"},"course":{"id":1,"name":"c"}}}"#,
        r#"{"id":"w5","type":"COURSE_COMPLETED"}"#,
        r#"{"id":"w6","type":"COURSE_COMPLETED","data":"not an object"}"#,
        r#"{"id":"w7","type":"COURSE_COMPLETED","data":{"user":{"id":1.5,"name":"a","email":"e"},"course":{"id":1,"name":"c"}}}"#,
        r#"{"id":"w8","type":"COURSE_COMPLETED","data":{"user":{"id":9223372036854775808,"name":"a","email":"e"},"course":{"id":1,"name":"c"}}}"#,
        r#"{"id":"w9","type":"PING","data":{"message":5}}"#,
    ];
    for body in cases {
        let (status, text) = status_of(&r, &good_headers(), body.as_bytes().to_vec()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(text, "event data does not match its type");
    }
    assert!(store.is_empty());
}

#[tokio::test]
async fn wrong_shaped_data_can_be_delivered_as_unknown() {
    let r = builder()
        .invalid_data(InvalidDataHandling::DeliverAsUnknown)
        .build()
        .unwrap();
    let body = br#"{"id":"w1","type":"COURSE_COMPLETED","data":{"user":{"id":"x"}}}"#;
    let result = put(&r, body.to_vec()).await;
    let Ok(Accepted::Deliver(d)) = result else {
        panic!("{result:?}")
    };
    let Event::Unknown(u) = d.event().event() else {
        panic!()
    };
    assert_eq!(u.event_type(), "COURSE_COMPLETED");
    assert_eq!(u.data_json(), r#"{"user":{"id":"x"}}"#);
    drop(d.into_parts());
}

#[tokio::test]
async fn unknown_fields_are_ignored_everywhere() {
    let (r, _) = receiver_and_store();
    let body = br#"{"id":"f1","type":"COURSE_COMPLETED","version":3,"data":{"extra":[1],"user":{"id":1,"name":"a","email":"e","avatar":null},"course":{"id":2,"name":"c","tags":["x"]}}}"#;
    let (status, _) = status_of(&r, &good_headers(), body.to_vec()).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn bodies_over_the_limit_are_413() {
    let r = builder().body_limit(1024).build().unwrap();
    let mut body = course_started("big");
    body.truncate(body.len() - 1);
    body.extend(format!(r#","pad":"{}"}}"#, "x".repeat(1024)).bytes());
    let (status, text) = status_of(&r, &good_headers(), body).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(text, "payload too large");
    // A declared Content-Length over the limit is refused before the body is read.
    let reception = r.begin();
    let rejection = reception
        .check_head("PUT", [super::support::TOKEN.as_bytes()], Some(1025))
        .unwrap_err();
    assert_eq!(rejection.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let reception = r.begin();
    assert!(
        reception
            .check_head("PUT", [super::support::TOKEN.as_bytes()], Some(1024))
            .is_ok()
    );
    // The default limit is 64 KiB.
    assert_eq!(receiver().body_limit(), 64 * 1024);
}

#[tokio::test]
async fn token_problems_are_all_401_with_the_same_body() {
    let (r, store) = receiver_and_store();
    let prefix = &TOKEN.as_bytes()[..TOKEN.len() - 1];
    let longer = format!("{TOKEN}x");
    let cases: Vec<(&str, HeaderMap)> = vec![
        ("no token header", headers_with(&[])),
        (
            "two token headers",
            headers_with(&[TOKEN.as_bytes(), TOKEN.as_bytes()]),
        ),
        (
            "two different token headers",
            headers_with(&[b"wrong", TOKEN.as_bytes()]),
        ),
        ("empty token header", headers_with(&[b""])),
        ("a prefix of the right token", headers_with(&[prefix])),
        (
            "the right token and more",
            headers_with(&[longer.as_bytes()]),
        ),
        (
            "wrong case",
            headers_with(&[TOKEN.to_uppercase().as_bytes()]),
        ),
        ("wrong token", headers_with(&[b"guess"])),
    ];
    for (name, headers) in cases {
        let (status, text) = status_of(&r, &headers, course_started("t-1")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{name}");
        assert_eq!(text, "invalid webhook token", "{name}");
    }
    assert!(store.is_empty());
    // The token is checked before the body: a malformed body with a wrong token is 401.
    let (status, _) = status_of(&r, &headers_with(&[b"guess"]), b"not json".to_vec()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[test]
fn configuration_errors_are_refused_at_build_time() {
    assert!(WebhookReceiver::builder().build().is_err(), "no token");
    assert!(
        WebhookReceiver::builder().token("").build().is_err(),
        "empty token"
    );
    assert!(builder().body_limit(0).build().is_err());
    assert!(builder().lease(std::time::Duration::ZERO).build().is_err());
    let err = WebhookReceiver::builder().token("").build().unwrap_err();
    assert!(
        std::error::Error::source(&err).is_some(),
        "keeps its source"
    );
}
