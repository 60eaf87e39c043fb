//! The vendor's five sample deliveries parse to the right variants and values.

use knolyx_webhook_core::testing::FIXTURES;
use knolyx_webhook_core::{Event, WebhookEvent};

fn parse(name: &str) -> WebhookEvent {
    let (_, body) = FIXTURES.iter().find(|(n, _)| *n == name).unwrap();
    WebhookEvent::from_slice(body).unwrap()
}

#[test]
fn ping() {
    let e = parse("PING");
    assert_eq!(e.id(), "af46ec07-de79-40b5-916c-0058b54b2d2b");
    let Event::Ping(p) = e.event() else {
        panic!("{e:?}")
    };
    assert_eq!(p.message, "PING");
}

#[test]
fn course_completed() {
    let e = parse("COURSE_COMPLETED");
    assert_eq!(e.id(), "0b6a7f0e-3a52-4b1e-9a43-5f1c2d9e8a10");
    let Event::CourseCompleted(d) = e.event() else {
        panic!("{e:?}")
    };
    assert_eq!((d.user.id, d.user.name.as_str()), (48213, "Ana Popescu"));
    assert_eq!(d.user.email, "ana.popescu@example.com");
    assert_eq!(
        (d.course.id, d.course.name.as_str()),
        (1207, "Introduction to Rust")
    );
}

#[test]
fn course_started() {
    let e = parse("COURSE_STARTED");
    assert_eq!(e.id(), "5d0e9a3c-6f7b-4c21-8e1d-2b9a4c7f0e55");
    let Event::CourseStarted(d) = e.event() else {
        panic!("{e:?}")
    };
    assert_eq!((d.user.id, d.course.id), (48213, 1207));
}

#[test]
fn course_payment_received_keeps_a_user_id_above_2_pow_53() {
    let e = parse("COURSE_PAYMENT_RECEIVED");
    assert_eq!(e.id(), "9c1f4e2a-7b3d-4a6e-b5c8-1d2e3f4a5b6c");
    let Event::CoursePaymentReceived(d) = e.event() else {
        panic!("{e:?}")
    };
    assert_eq!(d.user.id, 9_007_199_254_740_993); // 2^53 + 1: not representable in f64
    assert_eq!(d.user.name, "Jürgen Müller");
    assert_eq!(
        (d.course.id, d.course.name.as_str()),
        (88, "Advanced Statistics")
    );
    // and survives re-serialisation
    let json = String::from_utf8(e.to_json()).unwrap();
    assert!(json.contains("9007199254740993"), "{json}");
}

#[test]
fn bundle_payment_received() {
    let e = parse("BUNDLE_PAYMENT_RECEIVED");
    assert_eq!(e.id(), "af46ec03-de79-40b5-916c-0058b54b2d2b");
    let Event::BundlePaymentReceived(d) = e.event() else {
        panic!("{e:?}")
    };
    assert_eq!((d.user.id, d.user.name.as_str()), (77, "Li Wei"));
    assert_eq!(d.bundle.id, 31);
    assert_eq!(d.bundle.slug, "data-science-track");
    assert_eq!(d.bundle.name, "Data Science Track");
}

#[test]
fn every_fixture_round_trips_and_keeps_its_raw_bytes() {
    for (name, body) in FIXTURES {
        let e = WebhookEvent::from_slice(body).unwrap();
        assert_eq!(e.event_type(), name);
        assert_eq!(e.raw().as_ref(), body, "{name}: raw bytes");
        let json = e.to_json();
        let back: WebhookEvent = serde_json::from_slice(&json).unwrap();
        assert_eq!(back.id(), e.id());
        assert_eq!(back.event(), e.event(), "{name}: serde round trip");
        // The re-serialised form is exactly {"id","type","data"}.
        let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys.len(), 3, "{keys:?}");
        let original: serde_json::Value = serde_json::from_slice(body).unwrap();
        assert_eq!(v, original, "{name}: same JSON value as the fixture");
    }
}
