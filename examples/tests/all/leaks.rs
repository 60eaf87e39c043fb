//! Secrets and leaks, over real HTTP, on both receivers: the tracing output of rejected and
//! accepted deliveries never contains the token or any part of a body, and no response
//! (rejection or answer) echoes what was sent.
//!
//! Capturing the output: actix-web runs its workers on threads of its own, which a
//! thread-local `tracing::subscriber::set_default` would not cover. So the capture is the
//! **global** subscriber of this test binary, installed once (by whichever test gets there
//! first): a `tracing_subscriber::fmt` layer at `TRACE`, with span events, writing to a
//! shared buffer. `try_init` also installs the `log` bridge, so the `log` records of
//! actix-web, hyper-util and reqwest are captured too. The other tests of the binary then
//! log into the same buffer; that is harmless, since every marker below is unique to one
//! test run. Tracing caches each callsite's interest, and a callsite first hit before the
//! subscriber existed (by a test running in parallel) would stay disabled, so the cache
//! is rebuilt once the subscriber is installed.
//!
//! Each test checks that the capture really saw its deliveries (their ids and outcomes), so
//! it cannot pass by capturing nothing.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use knolyx_webhook_core::WebhookReceiver;
use knolyx_webhook_core::store::MemoryStore;
use knolyx_webhook_core::testing::{Fault, FaultyStore, StoreOp, TestEvent, Times, random_id};
use knolyx_webhook_core::{User, WebhookEvent};
use knolyx_webhook_examples::scenarios::SpawnFn;
use knolyx_webhook_examples::{EventHandler, HandlerError};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::format::FmtSpan;
use tracing_subscriber::util::SubscriberInitExt;

use crate::scenarios::{actix_spawn, axum_spawn};

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Capture {
    type Writer = Capture;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl Capture {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
    }
}

/// The binary's global subscriber, installed on first use.
fn capture() -> Capture {
    static CAPTURE: OnceLock<Capture> = OnceLock::new();
    CAPTURE
        .get_or_init(|| {
            let capture = Capture::default();
            tracing_subscriber::fmt()
                .with_writer(capture.clone())
                .with_max_level(tracing::Level::TRACE)
                .with_span_events(FmtSpan::FULL)
                .with_ansi(false)
                .finish()
                .try_init()
                .expect("no other global subscriber or logger in this test binary");
            tracing::callsite::rebuild_interest_cache();
            capture
        })
        .clone()
}

/// One marker per run: unique, so no other test's output can contain it.
fn marker(what: &str) -> String {
    format!("leakmarker-{what}-{}", random_id().replace('-', ""))
}

struct Sent {
    what: &'static str,
    status: u16,
    body: String,
    headers: String,
}

async fn leaks_on(name: &str, spawn: SpawnFn) {
    let capture = capture();
    let token = marker("token");
    let wrong_token = marker("wrongtoken");
    let email = format!("{}@example.com", marker("email"));
    let unknown = marker("unknown");
    let header = marker("header");
    let body_marker = marker("body");
    let markers = [
        &token,
        &wrong_token,
        &email,
        &unknown,
        &header,
        &body_marker,
    ];

    let store = FaultyStore::new(MemoryStore::new());
    let receiver = WebhookReceiver::builder()
        .token(token.as_str())
        .store(store.clone())
        .body_limit(4096)
        .build()
        .unwrap();
    // The handler fails for one id, to go through the failure path's logs too.
    let failing = format!("leaks-{name}-fails-{}", random_id());
    let handler: EventHandler = {
        let failing = failing.clone();
        Arc::new(move |event: WebhookEvent| {
            let fail = event.id() == failing;
            Box::pin(async move {
                if fail {
                    Err(HandlerError("scripted failure".into()))
                } else {
                    Ok(())
                }
            })
        })
    };
    let running = spawn(receiver, handler).await.unwrap();
    let url = running.url();
    let client = reqwest::Client::new();

    // A body with the marked email, an unknown field, and data also as a string.
    let id = format!("leaks-{name}-{}", random_id());
    let with_markers = |id: &str| -> Vec<u8> {
        let body = TestEvent::course_payment_received()
            .id(id)
            .user(User::new(7, "Student Name", email.as_str()))
            .to_body();
        let mut value: serde_json::Value = serde_json::from_slice(&body).unwrap();
        value["data"]["user"]["secret_note"] = unknown.clone().into();
        value["unknown_top_level"] = body_marker.clone().into();
        serde_json::to_vec(&value).unwrap()
    };
    let good = with_markers(&id);
    let stored_fail = format!("leaks-{name}-store-{}", random_id());
    let long_id = format!("{body_marker}-{}", "x".repeat(300));

    let mut sent: Vec<Sent> = Vec::new();
    let mut send =
        async |what: &'static str, method: reqwest::Method, tokens: &[&str], body: Vec<u8>| {
            let mut request = client
                .request(method, &url)
                .header("x-marker", header.as_str())
                .header("user-agent", format!("agent {header}"))
                .body(body);
            for t in tokens {
                request = request.header("x-webhook-security-token", *t);
            }
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let headers = format!("{:?}", response.headers());
            let body = response.text().await.unwrap();
            sent.push(Sent {
                what,
                status,
                body,
                headers,
            });
        };
    use reqwest::Method;
    // Accepted: handled, then its duplicate; a handler failure.
    send("handled", Method::PUT, &[&token], good.clone()).await;
    send("duplicate", Method::PUT, &[&token], good.clone()).await;
    send(
        "handler failure",
        Method::POST,
        &[&token],
        with_markers(&failing),
    )
    .await;
    // Rejected from the head: wrong token (a marker), two tokens, none, wrong method.
    send("wrong token", Method::PUT, &[&wrong_token], good.clone()).await;
    send(
        "two tokens",
        Method::PUT,
        &[&token, &wrong_token],
        good.clone(),
    )
    .await;
    send("no token", Method::PUT, &[], good.clone()).await;
    send("wrong method", Method::PATCH, &[&token], good.clone()).await;
    // Rejected from the body: too large, malformed, invalid UTF-8, wrong shape, bad id.
    let mut large = good.clone();
    large.extend(format!(" {}", body_marker.repeat(200)).bytes());
    send("too large", Method::PUT, &[&token], large).await;
    let truncated = good[..good.len() - 10].to_vec();
    send("malformed", Method::PUT, &[&token], truncated).await;
    let mut not_utf8 =
        format!(r#"{{"id":"{body_marker}","type":"PING","data":{{"m":""#).into_bytes();
    not_utf8.extend([0xff, 0xfe]);
    not_utf8.extend(br#""}}"#);
    send("invalid utf-8", Method::PUT, &[&token], not_utf8).await;
    let shape = format!(
        r#"{{"id":"leaks-{name}-shape","type":"COURSE_COMPLETED","data":{{"user":{{"id":"{email}","name":"{unknown}","email":"{email}"}},"course":{{"id":1,"name":"{body_marker}"}}}}}}"#
    );
    send("wrong shape", Method::PUT, &[&token], shape.into_bytes()).await;
    let bad_id = format!(r#"{{"id":"{long_id}","type":"PING","data":{{}}}}"#);
    send("id too long", Method::PUT, &[&token], bad_id.into_bytes()).await;
    // The store fails.
    store.inject(StoreOp::Claim, Fault::Unavailable, Times::Next(1));
    send(
        "store unavailable",
        Method::PUT,
        &[&token],
        with_markers(&stored_fail),
    )
    .await;
    running.stop().await;

    let statuses: Vec<_> = sent.iter().map(|s| (s.what, s.status)).collect();
    assert_eq!(
        statuses,
        [
            ("handled", 200),
            ("duplicate", 200),
            ("handler failure", 500),
            ("wrong token", 401),
            ("two tokens", 401),
            ("no token", 401),
            ("wrong method", 405),
            ("too large", 413),
            ("malformed", 400),
            ("invalid utf-8", 400),
            ("wrong shape", 422),
            ("id too long", 400),
            ("store unavailable", 503),
        ],
        "{name}"
    );
    // No response echoes the request.
    for s in &sent {
        for m in markers {
            assert!(
                !s.body.contains(m.as_str()) && !s.headers.contains(m.as_str()),
                "{name}: the {} response echoes {m}: {} / {}",
                s.what,
                s.headers,
                s.body
            );
        }
    }

    // The capture saw these deliveries, on whichever thread they ran...
    let out = capture.text();
    for seen in [
        id.as_str(),
        failing.as_str(),
        stored_fail.as_str(),
        "handled",
        "duplicate",
        "handler failed",
        "unauthorized",
        "method_not_allowed",
        "payload_too_large",
        "malformed_payload",
        "invalid_event_data",
        "store_unavailable",
    ] {
        assert!(
            out.contains(seen),
            "{name}: the capture misses {seen:?}; captured {} bytes",
            out.len()
        );
    }
    // ...and none of the secrets, nor any part of a body.
    for m in markers {
        if let Some(at) = out.find(m.as_str()) {
            let start = out[..at].rfind('\n').map_or(0, |n| n + 1);
            let end = out[at..].find('\n').map_or(out.len(), |n| at + n);
            panic!("{name}: {m} leaked into the logs:\n{}", &out[start..end]);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn axum_logs_and_answers_leak_no_token_and_no_body() {
    leaks_on("axum", axum_spawn()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actix_logs_and_answers_leak_no_token_and_no_body() {
    leaks_on("actix", actix_spawn()).await;
}

/// A store failure is logged with its kind and its whole cause (here the server refusing
/// the credentials), so that an operator can tell a wrong password from an outage; the
/// password itself never appears. Against the test Redis, with a user that does not exist.
async fn store_failures_show_kind_and_cause_not_the_password(spawn: SpawnFn) {
    let Some(url) = knolyx_webhook_core::testing::service_url("KNOLYX_TEST_REDIS_URL") else {
        return;
    };
    let capture = capture();
    let password = marker("password");
    let host = url
        .trim_start_matches("redis://")
        .rsplit('@')
        .next()
        .unwrap()
        .trim_end_matches('/');
    let wrong = format!("redis://knolyx-no-such-user:{password}@{host}/");
    let store = knolyx_webhook_redis::RedisStore::builder()
        .connect_lazy(&wrong)
        .unwrap();
    let receiver = WebhookReceiver::builder()
        .token("leaks-store-token")
        .store(store)
        .build()
        .unwrap();
    let running = spawn(receiver, Arc::new(|_| Box::pin(async { Ok(()) })))
        .await
        .unwrap();
    let event = TestEvent::course_started();
    let id = event.clone().build().id().to_owned();
    let response = reqwest::Client::new()
        .put(running.url())
        .header("x-webhook-security-token", "leaks-store-token")
        .body(event.to_body())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    running.stop().await;

    let logs = capture.text();
    let line = logs
        .lines()
        .find(|l| l.contains(&id) && l.contains("idempotency store failed"))
        .unwrap_or_else(|| panic!("no store failure logged for {id}"));
    assert!(line.contains(r#"kind="auth""#), "{line}");
    assert!(
        line.to_lowercase().contains("authentication failed"),
        "the cause is in the line: {line}"
    );
    assert!(
        !logs.contains(&password),
        "the password leaked into the logs"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs KNOLYX_TEST_REDIS_URL (README: Running the store tests)"]
async fn axum_store_failures_show_kind_and_cause_not_the_password() {
    store_failures_show_kind_and_cause_not_the_password(axum_spawn()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs KNOLYX_TEST_REDIS_URL (README: Running the store tests)"]
async fn actix_store_failures_show_kind_and_cause_not_the_password() {
    store_failures_show_kind_and_cause_not_the_password(actix_spawn()).await;
}
