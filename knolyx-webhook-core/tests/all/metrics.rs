//! The metrics (feature `metrics`), read from a recorder local to each test: one count per
//! delivery with the span's outcome word and a bounded `event_type`, the handler and store
//! durations, and the inbox worker's attempts and gauges.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method};
use knolyx_webhook_core::inbox::{Inbox, MemoryInbox, Worker};
use knolyx_webhook_core::metrics as names;
use knolyx_webhook_core::store::MemoryStore;
use knolyx_webhook_core::testing::{Fault, FaultyStore, StoreOp, TestEvent, Times};
use knolyx_webhook_core::{Accepted, Rejection, WebhookReceiver};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};

const TOKEN: &str = "metrics-token";

/// Runs `test` on a current-thread runtime (every task on this thread) with a recorder of
/// its own.
fn with_recorder(test: impl AsyncFnOnce(&Snapshotter)) {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    metrics::with_local_recorder(&recorder, || runtime.block_on(test(&snapshotter)));
}

/// What was recorded: by name, each series' labels (sorted, `k=v` joined by `,`) and its
/// non-zero value (a counter's count, a gauge's value, a histogram's number of samples).
/// The debugging recorder drains what a snapshot returns: counters and histograms since
/// the last snapshot, gauges set since then.
type Recorded = BTreeMap<String, BTreeMap<String, f64>>;

/// Adds the counts and samples of `more` to `total` (gauges are not sums: not to be added).
fn add(total: &mut Recorded, more: &Recorded) {
    for (name, series) in more {
        for (labels, n) in series {
            *total
                .entry(name.clone())
                .or_default()
                .entry(labels.clone())
                .or_default() += n;
        }
    }
}

fn snapshot(snapshotter: &Snapshotter) -> Recorded {
    let mut recorded = Recorded::new();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let mut labels: Vec<String> = key
            .key()
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        labels.sort();
        let value = match value {
            DebugValue::Counter(n) => n as f64,
            DebugValue::Gauge(g) => g.into_inner(),
            DebugValue::Histogram(samples) => samples.len() as f64,
        };
        if value != 0.0 {
            recorded
                .entry(key.key().name().to_owned())
                .or_default()
                .insert(labels.join(","), value);
        }
    }
    recorded
}

fn series(recorded: &Recorded, name: &str) -> BTreeMap<String, f64> {
    recorded.get(name).cloned().unwrap_or_default()
}

fn expect(pairs: &[(&str, f64)]) -> BTreeMap<String, f64> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
}

fn headers(token: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("x-webhook-security-token", token.parse().unwrap());
    headers
}

async fn receive(receiver: &WebhookReceiver, body: Bytes) -> Result<Accepted, Rejection> {
    receiver.receive(&Method::PUT, &headers(TOKEN), body).await
}

async fn deliver(receiver: &WebhookReceiver, event: &TestEvent, status: Option<u16>) {
    match receive(receiver, event.to_body()).await {
        Ok(Accepted::Deliver(delivery)) => {
            let (_, settlement) = delivery.into_parts();
            match status {
                Some(status) => {
                    let _ = settlement.settle(status).await;
                }
                None => drop(settlement), // abandoned
            }
        }
        other => panic!("expected a delivery, got {other:?}"),
    }
}

#[test]
fn every_outcome_is_counted_once_with_a_bounded_event_type() {
    with_recorder(async |snapshotter| {
        let store = Arc::new(FaultyStore::new(MemoryStore::new()));
        let receiver = WebhookReceiver::builder()
            .token(TOKEN)
            .body_limit(4096)
            .shared_store(store.clone())
            .build()
            .unwrap();
        let started = TestEvent::course_started();
        deliver(&receiver, &started, Some(200)).await; // handled
        deliver(&receiver, &TestEvent::course_completed(), Some(500)).await; // handler_failed
        let duplicate = receive(&receiver, started.to_body()).await.unwrap();
        assert!(matches!(duplicate, Accepted::Answered(_)));
        let ping = receive(&receiver, TestEvent::ping().to_body())
            .await
            .unwrap();
        assert!(matches!(ping, Accepted::Answered(_)));

        // In flight: a copy while the first is being handled, which then succeeds.
        let paid = TestEvent::course_payment_received();
        let Ok(Accepted::Deliver(first)) = receive(&receiver, paid.to_body()).await else {
            panic!("expected a delivery")
        };
        let copy = receive(&receiver, paid.to_body()).await.unwrap_err();
        assert_eq!(copy.outcome(), "in_flight");
        let _ = first.into_parts().1.settle(200).await;

        let wrong = receiver
            .receive(&Method::PUT, &headers("guess"), started.to_body())
            .await;
        assert_eq!(wrong.unwrap_err().outcome(), "unauthorized");
        let get = receiver
            .receive(&Method::GET, &headers(TOKEN), started.to_body())
            .await;
        assert_eq!(get.unwrap_err().outcome(), "method_not_allowed");
        let big = receive(&receiver, Bytes::from(vec![b' '; 5000])).await;
        assert_eq!(big.unwrap_err().outcome(), "payload_too_large");
        let malformed = receive(&receiver, Bytes::from_static(b"{")).await;
        assert_eq!(malformed.unwrap_err().outcome(), "malformed_payload");
        let invalid = receive(
            &receiver,
            Bytes::from_static(br#"{"id":"x-1","type":"COURSE_STARTED","data":{"user":"n"}}"#),
        )
        .await;
        assert_eq!(invalid.unwrap_err().outcome(), "invalid_event_data");
        // An unknown type is delivered; its label is `unknown`, never the sender's text.
        let novel = TestEvent::unknown("SOMETHING_NEW_42", "{}").unwrap();
        deliver(&receiver, &novel, Some(204)).await;

        store.inject(StoreOp::Claim, Fault::Unavailable, Times::Next(1));
        let down = receive(&receiver, TestEvent::bundle_payment_received().to_body()).await;
        assert_eq!(down.unwrap_err().outcome(), "store_unavailable");
        deliver(&receiver, &TestEvent::bundle_payment_received(), None).await; // abandoned
        receiver.drain().await; // the background releases

        let recorded = snapshot(snapshotter);
        assert_eq!(
            series(&recorded, names::DELIVERIES_TOTAL),
            expect(&[
                ("event_type=BUNDLE_PAYMENT_RECEIVED,outcome=abandoned", 1.0),
                (
                    "event_type=BUNDLE_PAYMENT_RECEIVED,outcome=store_unavailable",
                    1.0
                ),
                ("event_type=COURSE_COMPLETED,outcome=handler_failed", 1.0),
                ("event_type=COURSE_PAYMENT_RECEIVED,outcome=handled", 1.0),
                ("event_type=COURSE_PAYMENT_RECEIVED,outcome=in_flight", 1.0),
                ("event_type=COURSE_STARTED,outcome=duplicate", 1.0),
                ("event_type=COURSE_STARTED,outcome=handled", 1.0),
                ("event_type=COURSE_STARTED,outcome=invalid_event_data", 1.0),
                ("event_type=PING,outcome=ping", 1.0),
                ("event_type=none,outcome=malformed_payload", 1.0),
                ("event_type=none,outcome=method_not_allowed", 1.0),
                ("event_type=none,outcome=payload_too_large", 1.0),
                ("event_type=none,outcome=unauthorized", 1.0),
                ("event_type=unknown,outcome=handled", 1.0),
            ])
        );
        assert_eq!(
            series(&recorded, names::HANDLER_DURATION_SECONDS),
            expect(&[
                ("event_type=COURSE_COMPLETED,outcome=handler_failed", 1.0),
                ("event_type=COURSE_PAYMENT_RECEIVED,outcome=handled", 1.0),
                ("event_type=COURSE_STARTED,outcome=handled", 1.0),
                ("event_type=unknown,outcome=handled", 1.0),
            ])
        );
        // Claims: started ×2, completed, paid ×2, novel, the failed one, the abandoned one.
        // Releases: the failed handler, behind the failed claim, the abandoned delivery.
        assert_eq!(
            series(&recorded, names::STORE_DURATION_SECONDS),
            expect(&[
                ("operation=claim", 8.0),
                ("operation=complete", 3.0),
                ("operation=release", 3.0),
            ])
        );
        assert_eq!(store.calls().len(), 14, "every store call was timed");
    });
}

#[test]
fn inbox_mode_counts_queued_and_the_worker_counts_attempts_and_sets_the_gauges() {
    with_recorder(async |snapshotter| {
        let inbox = Arc::new(MemoryInbox::new());
        let receiver = WebhookReceiver::builder()
            .token(TOKEN)
            .inbox(inbox.clone() as Arc<dyn Inbox>)
            .build()
            .unwrap();
        let ids = ["ok", "retry", "dead"];
        for id in ids {
            let event = TestEvent::course_completed().id(id);
            assert!(matches!(
                receive(&receiver, event.to_body()).await,
                Ok(Accepted::Answered(_))
            ));
        }
        let again = receive(&receiver, TestEvent::course_completed().id("ok").to_body()).await;
        assert!(matches!(again, Ok(Accepted::Answered(_))));
        assert_eq!(
            series(&snapshot(snapshotter), names::DELIVERIES_TOTAL),
            expect(&[
                ("event_type=COURSE_COMPLETED,outcome=duplicate", 1.0),
                ("event_type=COURSE_COMPLETED,outcome=queued", 3.0),
            ])
        );

        let runs = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let seen = runs.clone();
        let worker = Worker::builder(inbox.clone() as Arc<dyn Inbox>, move |event| {
            let seen = seen.clone();
            async move {
                let id = event.id().to_owned();
                let mut seen = seen.lock().unwrap();
                let before = seen.iter().filter(|s| **s == id).count();
                seen.push(id.clone());
                match (id.as_str(), before) {
                    ("ok", _) | ("retry", 1..) => Ok(()),
                    _ => Err(format!("{id} fails")),
                }
            }
        })
        .max_attempts(2)
        .first_retry(Duration::from_millis(20))
        .poll_interval(Duration::from_millis(50))
        .stats_interval(Duration::from_millis(100))
        .build()
        .spawn();

        // Wait on the real condition: the gauges say every entry has ended.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        let ended = expect(&[("state=dead", 1.0), ("state=done", 2.0)]);
        let mut total = Recorded::new();
        loop {
            let recorded = snapshot(snapshotter);
            add(&mut total, &recorded);
            if series(&recorded, names::INBOX_ENTRIES) == ended {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "gauges: {recorded:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        worker.shutdown(Duration::from_secs(5)).await;
        let recorded = snapshot(snapshotter);
        add(&mut total, &recorded);
        assert_eq!(
            series(&total, names::INBOX_ATTEMPTS_TOTAL),
            expect(&[
                ("result=dead", 1.0),
                ("result=done", 2.0),
                ("result=retry", 2.0)
            ])
        );
        assert_eq!(
            series(&total, names::HANDLER_DURATION_SECONDS),
            expect(&[
                ("event_type=COURSE_COMPLETED,outcome=handled", 2.0),
                ("event_type=COURSE_COMPLETED,outcome=handler_failed", 3.0),
            ])
        );
        assert_eq!(runs.lock().unwrap().len(), 5);
    });
}
