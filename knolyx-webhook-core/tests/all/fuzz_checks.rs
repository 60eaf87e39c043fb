//! Invariant checks shared by the fuzz targets and the corpus replay test.
//!
//! This one file is compiled twice: as a module of this test binary (the replay test in
//! `corpus.rs` runs every file of `tests/corpus/{envelope,pipeline}/` through it on stable
//! `cargo test`), and by the fuzz targets in `/fuzz/fuzz_targets/`, which include it with
//! `#[path = "../../knolyx-webhook-core/tests/all/fuzz_checks.rs"]`. So a corpus file
//! replays exactly the checks that the fuzzer ran on it. It only uses the crate's public
//! API, `serde`, `serde_json`, `http`, `bytes` and `arbitrary`, and needs no async runtime:
//! the memory store answers at once, so a no-op waker drives the pipeline's futures.
//!
//! Every check panics, with a description, at the first broken invariant.

use std::future::Future;
use std::task::{Context, Poll, Waker};

use arbitrary::Unstructured;
use bytes::Bytes;
use http::header::{ALLOW, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use knolyx_webhook_core::event::MAX_ID_LEN;
use knolyx_webhook_core::{
    Accepted, DUPLICATE_HEADER, Event, InvalidDataHandling, ParseErrorKind, PingHandling, Reply,
    Settled, TOKEN_HEADER, WebhookEvent, WebhookReceiver,
};
use serde::Deserialize;
use serde_json::value::RawValue;

// ---------------------------------------------------------------------------------------
// Envelope
// ---------------------------------------------------------------------------------------

/// The exact path, written independently of the crate: the envelope through serde's
/// derive, then [`Event::from_parts`].
#[derive(Deserialize)]
struct ExactEnvelope {
    id: String,
    #[serde(rename = "type")]
    event_type: String,
    #[serde(default)]
    data: Option<Box<RawValue>>,
}

fn exact_parse(body: &[u8]) -> Result<(String, Event), ParseErrorKind> {
    // Invalid UTF-8 anywhere in the body is malformed (DESIGN: "invalid UTF-8 → 400"), even
    // inside an ignored field, where serde_json alone would skip it unchecked.
    if std::str::from_utf8(body).is_err() {
        return Err(ParseErrorKind::Malformed);
    }
    let envelope: ExactEnvelope =
        serde_json::from_slice(body).map_err(|_| ParseErrorKind::Malformed)?;
    // Control characters (NUL, newlines) are refused in ids too (they forge log lines).
    if envelope.id.is_empty()
        || envelope.id.len() > MAX_ID_LEN
        || envelope.id.chars().any(char::is_control)
    {
        return Err(ParseErrorKind::InvalidId);
    }
    if envelope.event_type.is_empty() {
        return Err(ParseErrorKind::Malformed);
    }
    let event =
        Event::from_parts(&envelope.event_type, envelope.data.as_deref()).map_err(|e| e.kind())?;
    Ok((envelope.id, event))
}

/// `WebhookEvent::from_slice` (the one-pass fast path with its exact fallback) against the
/// exact path; and, for an accepted body, the id's bounds and the re-serialisation round
/// trips.
pub(crate) fn check_envelope(body: &[u8]) {
    let parsed = WebhookEvent::from_slice(body);
    let exact = exact_parse(body);
    let show = || String::from_utf8_lossy(body).into_owned();
    match (&parsed, &exact) {
        (Ok(event), Ok((id, exact_event))) => {
            assert_eq!(event.id(), id, "fast and exact ids differ for {:?}", show());
            assert_eq!(
                event.event(),
                exact_event,
                "fast and exact events differ for {:?}",
                show()
            );
        }
        (Err(e), Err(kind)) => assert_eq!(
            e.kind(),
            *kind,
            "fast and exact errors differ for {:?}",
            show()
        ),
        (Ok(event), Err(kind)) => {
            panic!(
                "from_slice accepted what the exact path refuses ({kind:?}): {event:?} from {:?}",
                show()
            )
        }
        (Err(e), Ok(event)) => panic!(
            "from_slice refused ({:?}: {e}) what the exact path accepts: {event:?} from {:?}",
            e.kind(),
            show()
        ),
    }
    // Without a copy, the same.
    let from_bytes = WebhookEvent::from_bytes(Bytes::copy_from_slice(body));
    match (&parsed, &from_bytes) {
        (Ok(a), Ok(b)) => assert_eq!(a, b),
        (Err(a), Err(b)) => assert_eq!(a.kind(), b.kind()),
        _ => panic!("from_slice and from_bytes disagree for {:?}", show()),
    }
    let Ok(event) = parsed else { return };

    assert!(!event.id().is_empty(), "empty id accepted");
    assert!(event.id().len() <= MAX_ID_LEN, "over-long id accepted");
    assert!(
        !event.id().chars().any(char::is_control),
        "control character in id"
    );
    assert_eq!(event.raw().as_ref(), body, "raw() is not the body");
    assert_eq!(event.event_type(), event.event().event_type());
    if let Event::Unknown(unknown) = event.event() {
        assert!(!event.event().is_known());
        // The raw data is JSON text (not necessarily a `serde_json::Value`: a number such as
        // 1e400 is valid JSON that `Value` refuses).
        if let Err(e) = unknown.data_as::<serde::de::IgnoredAny>() {
            panic!("unknown event's data does not decode ({e}): {:?}", show())
        }
    }

    // Re-serialised and parsed again: the same event.
    let json = event.to_json();
    let again = match WebhookEvent::from_slice(&json) {
        Ok(again) => again,
        Err(e) => panic!(
            "re-serialised event does not parse ({:?}: {e}): {:?} from {:?}",
            e.kind(),
            String::from_utf8_lossy(&json),
            show()
        ),
    };
    assert_eq!(again.id(), event.id(), "round trip changed the id");
    assert_eq!(
        again.event(),
        event.event(),
        "round trip changed the event: {:?} from {:?}",
        String::from_utf8_lossy(&json),
        show()
    );
    assert_eq!(again.to_json(), json, "re-serialisation is not stable");
    // The envelope is an object with `id`, `type` and `data` (read through a struct: data
    // nested MAX_DEPTH deep is one level too deep for a whole `serde_json::Value`).
    #[derive(Deserialize)]
    struct Shape {
        id: String,
        #[serde(rename = "type")]
        event_type: String,
        data: Box<RawValue>,
    }
    let shape: Shape = serde_json::from_slice(&json).expect("to_json is an envelope");
    assert_eq!(shape.id, event.id());
    assert_eq!(shape.event_type, event.event_type());
    assert_ne!(shape.data.get(), "", "to_json has no data");
    // serde's Deserialize for WebhookEvent and for Event agree.
    let de: WebhookEvent = serde_json::from_slice(&json).expect("Deserialize of to_json");
    assert_eq!(de.event(), event.event());
    let event_json = serde_json::to_vec(event.event()).expect("Event serialises");
    let de_event: Event = serde_json::from_slice(&event_json).expect("Deserialize of Event");
    assert_eq!(&de_event, event.event());
}

// ---------------------------------------------------------------------------------------
// Pipeline
// ---------------------------------------------------------------------------------------

/// The tokens the fuzzed receiver accepts (two, as during a rotation).
pub(crate) const TOKENS: [&str; 2] = ["fuzz-token-current-0123456789", "fuzz-token-previous"];

/// Every body the pipeline answers with by itself.
const FIXED_BODIES: [&str; 10] = [
    "method not allowed",
    "invalid webhook token",
    "payload too large",
    "failed to read the request body",
    "malformed webhook payload",
    "event data does not match its type",
    "delivery already in progress",
    "temporarily unavailable",
    "pong",
    "duplicate",
];

/// What to do with a delivery once the pipeline handed it over.
#[derive(Clone, Copy, Debug)]
enum Settle {
    /// Settle at once with this status.
    Now(u16),
    /// Keep it running (in progress) until all deliveries were made, then settle with this.
    Hold(u16),
    /// Drop the settlement unsettled (no runtime: the lease, 60 s, must expire).
    Abandon,
}

#[derive(Debug)]
struct PipelineInput {
    method: Method,
    headers: HeaderMap,
    body_limit: usize,
    ping: PingHandling,
    invalid_data: InvalidDataHandling,
    steps: Vec<Settle>,
    body: Bytes,
}

fn byte(u: &mut Unstructured<'_>) -> u8 {
    u.arbitrary::<u8>().unwrap_or(0)
}

fn some_bytes<'a>(u: &mut Unstructured<'a>) -> &'a [u8] {
    let len = usize::from(byte(u) % 40);
    let len = len.min(u.len());
    u.bytes(len).unwrap_or(&[])
}

impl PipelineInput {
    /// Layout (one byte each unless said): method; config; header count; per header a kind
    /// (and its own bytes); step count; per step a settle byte; the rest is the body.
    fn decode(data: &[u8]) -> Self {
        let mut u = Unstructured::new(data);
        let method = match byte(&mut u) % 8 {
            1 => Method::POST,
            2 => Method::GET,
            3 => Method::DELETE,
            4 => Method::from_bytes(b"put").unwrap_or(Method::PUT),
            5 => Method::from_bytes(some_bytes(&mut u)).unwrap_or(Method::PATCH),
            _ => Method::PUT,
        };
        let config = byte(&mut u);
        let ping = if config & 1 == 0 {
            PingHandling::Answer
        } else {
            PingHandling::Forward
        };
        let invalid_data = if config & 2 == 0 {
            InvalidDataHandling::Reject
        } else {
            InvalidDataHandling::DeliverAsUnknown
        };
        let body_limit = match (config >> 2) & 3 {
            1 => 64,
            2 => 512,
            3 => 1,
            _ => 64 * 1024,
        };
        let mut headers = HeaderMap::new();
        let token = HeaderName::from_static(TOKEN_HEADER);
        for _ in 0..byte(&mut u) % 5 {
            let (name, value): (HeaderName, Vec<u8>) = match byte(&mut u) % 10 {
                0..=2 => (token.clone(), TOKENS[0].into()),
                3 => (token.clone(), TOKENS[1].into()),
                4 => (token.clone(), some_bytes(&mut u).to_vec()),
                5 => (token.clone(), Vec::new()),
                6 => {
                    let t = TOKENS[0].as_bytes();
                    let variant = match byte(&mut u) % 4 {
                        0 => t[..t.len() - 1].to_vec(),
                        1 => [t, b"x"].concat(),
                        2 => t.to_ascii_uppercase(),
                        _ => [b" ", t].concat(),
                    };
                    (token.clone(), variant)
                }
                7 => {
                    let value = match byte(&mut u) % 3 {
                        0 => u64::from(u.arbitrary::<u32>().unwrap_or(0))
                            .to_string()
                            .into_bytes(),
                        1 => u.arbitrary::<u64>().unwrap_or(0).to_string().into_bytes(),
                        _ => some_bytes(&mut u).to_vec(),
                    };
                    (CONTENT_LENGTH, value)
                }
                8 => (HeaderName::from_static("x-other"), TOKENS[0].into()),
                _ => (
                    HeaderName::from_static("x-webhook-security-token-2"),
                    TOKENS[0].into(),
                ),
            };
            // Bytes a header cannot carry (CR, LF, NUL…) never reach a receiver.
            if let Ok(value) = HeaderValue::from_bytes(&value) {
                headers.append(name, value);
            }
        }
        let steps = (0..=byte(&mut u) % 4)
            .map(|_| match byte(&mut u) % 8 {
                0 => Settle::Now(200),
                1 => Settle::Now(204),
                2 => Settle::Now(500),
                3 => Settle::Now(u.arbitrary::<u16>().unwrap_or(0)),
                4 => Settle::Hold(200),
                5 => Settle::Hold(500),
                6 => Settle::Abandon,
                _ => Settle::Now(300),
            })
            .collect();
        let body = Bytes::copy_from_slice(u.take_rest());
        Self {
            method,
            headers,
            body_limit,
            ping,
            invalid_data,
            steps,
            body,
        }
    }
}

/// Drives a future that never waits (the memory store answers at once) to completion.
fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..1_000 {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
    }
    panic!("a pipeline future over the memory store did not complete")
}

/// The outcome the pipeline must reach, computed independently from the documented order.
fn expected_head(input: &PipelineInput) -> Option<&'static str> {
    if input.method != Method::PUT && input.method != Method::POST {
        return Some("method_not_allowed");
    }
    let mut tokens = input.headers.get_all(TOKEN_HEADER).iter();
    match (tokens.next(), tokens.next()) {
        (Some(t), None) if TOKENS.iter().any(|ok| ok.as_bytes() == t.as_bytes()) => {}
        _ => return Some("unauthorized"),
    }
    let declared = input
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > input.body_limit as u64)
        || input.body.len() > input.body_limit
    {
        return Some("payload_too_large");
    }
    None
}

/// A reply: status class, fixed body, and only the documented headers.
fn check_reply(reply: &Reply, what: &str) {
    let body = reply.body_text();
    assert!(
        FIXED_BODIES.contains(&body),
        "{what}: body {body:?} is not one of the fixed texts"
    );
    for (name, value) in reply.headers() {
        let fine = (name == CONTENT_TYPE && value == "text/plain; charset=utf-8")
            || (name == ALLOW && value == "PUT, POST")
            || (name == RETRY_AFTER && value.to_str().is_ok_and(|v| v.parse::<u64>().is_ok()))
            || (name.as_str() == DUPLICATE_HEADER && value == "true");
        assert!(fine, "{what}: unexpected header {name}: {value:?}");
    }
}

/// Runs the decoded deliveries through a fresh receiver on a memory store and checks every
/// answer against [`expected_head`], the strict parser and the ids' known states.
pub(crate) fn check_pipeline(data: &[u8]) {
    let input = PipelineInput::decode(data);
    let receiver = WebhookReceiver::builder()
        .token(TOKENS[0])
        .token(TOKENS[1])
        .body_limit(input.body_limit)
        .ping(input.ping)
        .invalid_data(input.invalid_data)
        .build()
        .expect("the fuzz configuration is valid");
    // What the strict parser makes of the body (the pipeline must agree).
    let parsed = WebhookEvent::from_slice(&input.body);
    // The id's state, as the deliveries so far left it.
    let mut completed = false;
    let mut in_progress = false;
    let mut held = Vec::new();

    for step in &input.steps {
        let result = block_on(receiver.receive(&input.method, &input.headers, input.body.clone()));
        let outcome = match &result {
            Err(rejection) => {
                let reply = rejection.reply();
                check_reply(&reply, rejection.outcome());
                assert!(
                    reply.status().is_client_error() || reply.status().is_server_error(),
                    "rejection {} with status {}",
                    rejection.outcome(),
                    reply.status()
                );
                assert_eq!(rejection.to_string(), rejection.body_text());
                rejection.outcome()
            }
            Ok(Accepted::Answered(answer)) => {
                let reply = answer.reply();
                check_reply(&reply, answer.outcome());
                assert!(reply.status().is_success());
                answer.outcome()
            }
            Ok(Accepted::Deliver(_)) => "deliver",
        };

        // The outcome the documented order gives.
        let expected: &[&str] = if let Some(head) = expected_head(&input) {
            &[head][..]
        } else {
            match &parsed {
                Err(e) if e.kind() == ParseErrorKind::InvalidData => match input.invalid_data {
                    InvalidDataHandling::Reject => &["invalid_event_data"],
                    // Delivered as Unknown (or refused, data nested too deeply), and then
                    // subject to the store like any event.
                    _ if completed => &["duplicate", "malformed_payload"],
                    _ if in_progress => &["in_flight", "malformed_payload"],
                    _ => &["deliver", "malformed_payload"],
                },
                Err(_) => &["malformed_payload"],
                Ok(event) if matches!(event.event(), Event::Ping(_)) => match input.ping {
                    PingHandling::Answer => &["ping"],
                    _ => &["deliver"],
                },
                Ok(_) if completed => &["duplicate"],
                Ok(_) if in_progress => &["in_flight"],
                Ok(_) => &["deliver"],
            }
        };
        assert!(
            expected.contains(&outcome),
            "outcome {outcome:?}, expected one of {expected:?} (completed: {completed}, in \
             progress: {in_progress}) for {input:?}"
        );

        let Ok(Accepted::Deliver(delivery)) = result else {
            continue;
        };
        let (event, settlement) = delivery.into_parts();
        match &parsed {
            Ok(strict) => assert_eq!(&event, strict, "the pipeline's event differs"),
            Err(_) => {
                // Lenient: an Unknown event keeping the type name.
                assert!(
                    matches!(event.event(), Event::Unknown(_)),
                    "invalid data delivered as {:?}",
                    event.event()
                );
            }
        }
        let is_ping = matches!(event.event(), Event::Ping(_));
        assert_eq!(settlement.has_claim(), !is_ping, "a ping is never stored");
        match *step {
            Settle::Now(status) => {
                let settled = block_on(settlement.settle(status));
                let success = (200..300).contains(&status);
                let want = match (is_ping, success) {
                    (true, _) => Settled::NoClaim,
                    (false, true) => Settled::Completed,
                    (false, false) => Settled::Released,
                };
                assert_eq!(settled, want, "settling with {status}");
                completed |= success && !is_ping;
            }
            Settle::Hold(status) => {
                in_progress |= !is_ping;
                held.push((settlement, status));
            }
            Settle::Abandon => {
                drop(settlement);
                in_progress |= !is_ping;
            }
        }
    }
    for (settlement, status) in held {
        let settled = block_on(settlement.settle(status));
        assert!(
            matches!(
                settled,
                Settled::Completed | Settled::Released | Settled::NoClaim
            ),
            "a held delivery lost its lease: {settled:?}"
        );
    }
}
