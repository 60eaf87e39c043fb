//! Helpers shared by the test modules.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method};
use knolyx_webhook_core::store::{ClaimOutcome, IdempotencyStore, OwnerToken, SettleOutcome};
use knolyx_webhook_core::testing::{Fault, FaultyStore, StoreOp, Times};
use knolyx_webhook_core::{Accepted, Rejection, WebhookReceiver, WebhookReceiverBuilder};

pub(crate) const TOKEN: &str = "correct-horse-battery-staple";

pub(crate) fn builder() -> WebhookReceiverBuilder {
    WebhookReceiver::builder().token(TOKEN)
}

pub(crate) fn receiver() -> WebhookReceiver {
    builder().build().unwrap()
}

pub(crate) fn headers_with(tokens: &[&[u8]]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for t in tokens {
        headers.append(
            "x-webhook-security-token",
            HeaderValue::from_bytes(t).unwrap(),
        );
    }
    headers
}

pub(crate) fn good_headers() -> HeaderMap {
    headers_with(&[TOKEN.as_bytes()])
}

pub(crate) async fn put(
    receiver: &WebhookReceiver,
    body: impl Into<Bytes>,
) -> Result<Accepted, Rejection> {
    receiver
        .receive(&Method::PUT, &good_headers(), body.into())
        .await
}

pub(crate) fn course_started(id: &str) -> Vec<u8> {
    format!(
        r#"{{"id":"{id}","type":"COURSE_STARTED","data":{{"user":{{"id":1,"name":"Ana","email":"ana@example.com"}},"course":{{"id":2,"name":"Rust"}}}}}}"#
    )
    .into_bytes()
}

/// What a store says of an id, found by claiming it with a fresh owner (and releasing the
/// claim if it succeeded, so the probe leaves no trace).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum State {
    Absent,
    InProgress,
    Completed,
}

pub(crate) async fn state(store: &dyn IdempotencyStore, id: &str) -> State {
    let probe = OwnerToken::generate();
    match store
        .claim(id, probe, Duration::from_secs(60))
        .await
        .unwrap()
    {
        ClaimOutcome::Claimed => {
            assert_eq!(
                store.release(id, probe).await.unwrap(),
                SettleOutcome::Settled
            );
            State::Absent
        }
        ClaimOutcome::InProgress => State::InProgress,
        ClaimOutcome::Completed => State::Completed,
    }
}

/// Takes `store`'s backend down: every call fails as unavailable, until
/// [`FaultyStore::reset_all`].
pub(crate) fn take_down<S>(store: &FaultyStore<S>) {
    for op in [StoreOp::Claim, StoreOp::Complete, StoreOp::Release] {
        store.inject(op, Fault::Unavailable, Times::UntilReset);
    }
}

/// Log output, captured.
#[derive(Clone, Default)]
pub(crate) struct Capture(Arc<Mutex<Vec<u8>>>);

impl Capture {
    /// Everything logged so far.
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

pub(crate) fn expect_deliver(result: Result<Accepted, Rejection>) -> knolyx_webhook_core::Delivery {
    match result {
        Ok(Accepted::Deliver(d)) => d,
        other => panic!("expected the handler to run, got {other:?}"),
    }
}
