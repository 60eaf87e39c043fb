//! The scripted Knolyx sender: one list of deliveries and the outcome the design promises
//! for each, played over real HTTP against any receiver.
//!
//! The demo plays it against the axum receiver and prints the table; the tests play it
//! against both receivers and require the same statuses and the same handler output, so
//! the two adapters cannot drift apart.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use knolyx_webhook_core::testing::TestEvent;
use knolyx_webhook_core::{DUPLICATE_HEADER, WebhookEvent, WebhookReceiver};
use tokio::sync::Notify;

use crate::handler::{EventHandler, HandlerError};
use crate::running::RunningReceiver;

/// The token the scripted sender and the receivers under test share.
pub const SCENARIO_TOKEN: &str = "demo-token-7d1f3b9c2a";

/// Starts a receiver for a scenario run: the pipeline and the handler to serve.
pub type SpawnFn = Arc<
    dyn Fn(
            WebhookReceiver,
            EventHandler,
        ) -> Pin<Box<dyn Future<Output = io::Result<RunningReceiver>> + Send>>
        + Send
        + Sync,
>;

/// Which deliveries to play.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScenarioSet {
    /// The demo's list: the five types, a retransmission, two concurrent deliveries of one
    /// id, a wrong token, a malformed body, an oversized body, an unknown type, and a
    /// handler failure followed by a successful retry.
    Demo,
    /// The demo's list and more: every rejection, a chunked oversized body, a handler that
    /// panics and its retry.
    Full,
}

/// What a handler does for one message id.
#[derive(Clone, Debug)]
enum Plan {
    FailOnce,
    PanicOnce,
    Block {
        started: Arc<Notify>,
        release: Arc<Notify>,
    },
}

#[derive(Default)]
struct HandlerState {
    runs: HashMap<String, u32>,
    plans: HashMap<String, Plan>,
    lines: Vec<String>,
}

/// A handler that records every run and the line it would print, and fails, panics or
/// waits on demand for chosen ids.
#[derive(Default)]
pub struct ScriptedHandler {
    state: Mutex<HandlerState>,
}

impl std::fmt::Debug for ScriptedHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScriptedHandler").finish_non_exhaustive()
    }
}

impl ScriptedHandler {
    fn lock(&self) -> MutexGuard<'_, HandlerState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The handler to give a receiver.
    pub fn handler(self: &Arc<Self>) -> EventHandler {
        let this = Arc::clone(self);
        Arc::new(move |event: WebhookEvent| {
            let this = Arc::clone(&this);
            Box::pin(async move { this.run(event).await })
        })
    }

    async fn run(&self, event: WebhookEvent) -> Result<(), HandlerError> {
        let plan = {
            let mut state = self.lock();
            *state.runs.entry(event.id().to_owned()).or_default() += 1;
            match state.plans.get(event.id()) {
                Some(Plan::FailOnce | Plan::PanicOnce) => state.plans.remove(event.id()),
                other => other.cloned(),
            }
        };
        match plan {
            Some(Plan::FailOnce) => return Err(HandlerError("scripted failure".into())),
            Some(Plan::PanicOnce) => panic!("scripted panic in the handler"),
            Some(Plan::Block { started, release }) => {
                started.notify_one();
                release.notified().await;
            }
            None => {}
        }
        let line = String::from_utf8_lossy(&event.to_json()).into_owned();
        self.lock().lines.push(line);
        Ok(())
    }

    /// How many times the handler ran for `id`.
    pub fn runs(&self, id: &str) -> u32 {
        self.lock().runs.get(id).copied().unwrap_or(0)
    }

    /// The lines the handler printed (one per successful run), in order.
    pub fn lines(&self) -> Vec<String> {
        self.lock().lines.clone()
    }

    fn plan(&self, id: &str, plan: Plan) {
        self.lock().plans.insert(id.to_owned(), plan);
    }
}

/// What a delivery got back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Got {
    /// The status, or `None` when the connection closed without a response.
    pub status: Option<u16>,
    /// Whether the response carried the duplicate marker.
    pub duplicate: bool,
    /// How many times the handler ran during this delivery.
    pub handler_runs: u32,
    /// The start of the response's body: the receiver's reason.
    pub body: String,
}

/// What the design promises for a delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expected {
    /// This status; the handler runs (`true`) or not.
    Status(u16, bool),
    /// 200 with the duplicate marker; the handler does not run.
    Duplicate,
    /// No response (the handler panicked and the connection closed) or a 5xx; the handler ran.
    Aborted,
}

impl Expected {
    fn matches(self, got: &Got) -> bool {
        match self {
            Expected::Status(status, ran) => {
                got.status == Some(status) && (got.handler_runs == 1) == ran && !got.duplicate
            }
            Expected::Duplicate => {
                got.status == Some(200) && got.duplicate && got.handler_runs == 0
            }
            Expected::Aborted => got.status.is_none_or(|s| s >= 500) && got.handler_runs == 1,
        }
    }

    fn describe(self) -> String {
        match self {
            Expected::Status(s, true) => format!("{s}, handler runs"),
            Expected::Status(s, false) => format!("{s}, handler not run"),
            Expected::Duplicate => "200 duplicate, handler not run".to_owned(),
            Expected::Aborted => "no response, handler ran".to_owned(),
        }
    }
}

/// One delivery of a scenario run.
#[derive(Clone, Debug)]
pub struct Row {
    /// What was sent.
    pub sent: String,
    /// What the design promises.
    pub expected: Expected,
    /// What happened.
    pub got: Got,
}

impl Row {
    /// Whether the outcome is the promised one.
    pub fn ok(&self) -> bool {
        self.expected.matches(&self.got)
    }
}

/// The outcome of a scenario run.
#[derive(Clone, Debug)]
pub struct Report {
    /// The framework that served the deliveries.
    pub framework: &'static str,
    /// One row per delivery, in order.
    pub rows: Vec<Row>,
    /// The lines the handler printed, in order.
    pub lines: Vec<String>,
    /// The prefix of this run's message ids.
    pub id_prefix: String,
}

impl Report {
    /// Whether every delivery had its promised outcome.
    pub fn all_ok(&self) -> bool {
        self.rows.iter().all(Row::ok)
    }

    /// A short readable table of the deliveries.
    pub fn table(&self) -> String {
        let width = self
            .rows
            .iter()
            .map(|r| r.sent.len())
            .max()
            .unwrap_or(4)
            .max(4);
        let mut out = String::new();
        let _ = writeln!(
            out,
            "  #  {:width$}  status          handler  receiver said                   ok",
            "sent"
        );
        for (i, row) in self.rows.iter().enumerate() {
            let status = match (row.got.status, row.got.duplicate) {
                (Some(s), true) => format!("{s} duplicate"),
                (Some(s), false) => s.to_string(),
                (None, _) => "closed".to_owned(),
            };
            let handler = if row.got.handler_runs > 0 { "ran" } else { "-" };
            let _ = writeln!(
                out,
                " {:>2}  {:width$}  {:14}  {:7}  {:32}  {}",
                i + 1,
                row.sent,
                status,
                handler,
                row.got.body,
                if row.ok() {
                    "yes".to_owned()
                } else {
                    format!("NO, expected {}", row.expected.describe())
                }
            );
        }
        out
    }

    /// The handler's lines with this run's id prefix replaced by `RUN`, comparable across
    /// runs.
    pub fn normalized_lines(&self) -> Vec<String> {
        self.lines
            .iter()
            .map(|l| l.replace(&self.id_prefix, "RUN"))
            .collect()
    }

    /// The rows as comparable tuples: what was sent, status, duplicate marker, handler runs.
    pub fn outcomes(&self) -> Vec<(String, Option<u16>, bool, u32)> {
        self.rows
            .iter()
            .map(|r| {
                (
                    r.sent.clone(),
                    r.got.status,
                    r.got.duplicate,
                    r.got.handler_runs,
                )
            })
            .collect()
    }
}

/// The receiver configuration the scenarios assume: the scenario token, defaults
/// otherwise (64 KiB body limit, PING answered, 503 for in-flight duplicates).
pub fn scenario_receiver() -> WebhookReceiver {
    match WebhookReceiver::builder().token(SCENARIO_TOKEN).build() {
        Ok(r) => r,
        Err(e) => unreachable!("the scenario configuration is valid: {e}"),
    }
}

struct Player {
    client: reqwest::Client,
    url: String,
    handler: Arc<ScriptedHandler>,
    rows: Vec<Row>,
    prefix: String,
    next: u32,
}

enum Body {
    Bytes(Vec<u8>),
    Chunked(Vec<u8>),
}

impl Player {
    /// Gives an event this run's next id: `<prefix>-NN`, the same numbers on every run.
    fn ev(&mut self, event: TestEvent) -> TestEvent {
        self.next += 1;
        event.id(format!("{}-{:02}", self.prefix, self.next))
    }

    async fn send(
        &self,
        method: reqwest::Method,
        tokens: &[&str],
        body: Body,
        id: Option<&str>,
    ) -> Got {
        let before = id.map_or(0, |id| self.handler.runs(id));
        let mut request = self.client.request(method, &self.url);
        for token in tokens {
            request = request.header("X-Webhook-Security-Token", *token);
        }
        request = request.header("Content-Type", "application/json");
        request = match body {
            Body::Bytes(bytes) => request.body(bytes),
            Body::Chunked(bytes) => {
                let chunks: Vec<Result<Vec<u8>, io::Error>> =
                    bytes.chunks(8 * 1024).map(|c| Ok(c.to_vec())).collect();
                request.body(reqwest::Body::wrap_stream(futures_util::stream::iter(
                    chunks,
                )))
            }
        };
        let response = request.send().await;
        let (status, duplicate, body) = match response {
            Ok(r) => {
                let status = Some(r.status().as_u16());
                let duplicate = r
                    .headers()
                    .get(DUPLICATE_HEADER)
                    .is_some_and(|v| v == "true");
                let text = r.text().await.unwrap_or_default();
                (status, duplicate, text.chars().take(32).collect())
            }
            Err(_) => (None, false, "(connection closed)".to_owned()),
        };
        let after = id.map_or(0, |id| self.handler.runs(id));
        Got {
            status,
            duplicate,
            handler_runs: after - before,
            body,
        }
    }

    /// Delivers a new event (with this run's next id).
    async fn deliver_new(&mut self, sent: &str, event: TestEvent, expected: Expected) {
        let event = self.ev(event);
        self.deliver(sent, &event, expected).await;
    }

    async fn deliver(&mut self, sent: &str, event: &TestEvent, expected: Expected) {
        let got = self
            .send(
                reqwest::Method::PUT,
                &[SCENARIO_TOKEN],
                Body::Bytes(event.to_body().to_vec()),
                Some(event.message_id()),
            )
            .await;
        self.record(sent, expected, got);
    }

    fn record(&mut self, sent: &str, expected: Expected, got: Got) {
        self.rows.push(Row {
            sent: sent.to_owned(),
            expected,
            got,
        });
    }
}

/// Plays the scenario list against a receiver started with `spawn`, and stops it.
pub async fn play(spawn: &SpawnFn, set: ScenarioSet) -> io::Result<Report> {
    let handler = Arc::new(ScriptedHandler::default());
    let running = spawn(scenario_receiver(), handler.handler()).await?;
    let framework = running.framework();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(io::Error::other)?;
    let mut p = Player {
        client,
        url: running.url(),
        handler: Arc::clone(&handler),
        rows: Vec::new(),
        prefix: knolyx_webhook_core::testing::random_id(),
        next: 0,
    };
    let ok = |ran| Expected::Status(200, ran);

    // The five documented types.
    p.deliver_new("PING", TestEvent::ping(), ok(false)).await;
    p.deliver_new("COURSE_COMPLETED", TestEvent::course_completed(), ok(true))
        .await;
    p.deliver_new("COURSE_STARTED", TestEvent::course_started(), ok(true))
        .await;
    let payment = p.ev(TestEvent::course_payment_received());
    p.deliver("COURSE_PAYMENT_RECEIVED", &payment, ok(true))
        .await;
    p.deliver_new(
        "BUNDLE_PAYMENT_RECEIVED",
        TestEvent::bundle_payment_received(),
        ok(true),
    )
    .await;

    // Knolyx retransmits the payment: dropped.
    p.deliver(
        "COURSE_PAYMENT_RECEIVED again (same id)",
        &payment,
        Expected::Duplicate,
    )
    .await;

    // Two deliveries of one id at once: the second arrives while the first's handler runs.
    let concurrent = p.ev(TestEvent::course_completed());
    let id = concurrent.message_id().to_owned();
    let (started, release) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    handler.plan(
        &id,
        Plan::Block {
            started: Arc::clone(&started),
            release: Arc::clone(&release),
        },
    );
    let body = concurrent.to_body().to_vec();
    let first = p.send(
        reqwest::Method::PUT,
        &[SCENARIO_TOKEN],
        Body::Bytes(body.clone()),
        None,
    );
    let second = async {
        started.notified().await;
        let got = p
            .send(
                reqwest::Method::PUT,
                &[SCENARIO_TOKEN],
                Body::Bytes(body.clone()),
                None,
            )
            .await;
        release.notify_one();
        got
    };
    let (mut first, mut second) = tokio::join!(first, second);
    // Attribute the one run to the delivery that caused it.
    first.handler_runs = handler.runs(&id);
    second.handler_runs = 0;
    handler.lock().plans.remove(&id);
    p.record("COURSE_COMPLETED, 1st of 2 concurrent", ok(true), first);
    p.record(
        "COURSE_COMPLETED, 2nd of 2 concurrent",
        Expected::Status(503, false),
        second,
    );

    // Rejections.
    let event = p.ev(TestEvent::course_started());
    let wrong = p
        .send(
            reqwest::Method::PUT,
            &["not-the-token"],
            Body::Bytes(event.to_body().to_vec()),
            Some(event.message_id()),
        )
        .await;
    p.record(
        "COURSE_STARTED with a wrong token",
        Expected::Status(401, false),
        wrong,
    );
    let malformed = p
        .send(
            reqwest::Method::PUT,
            &[SCENARIO_TOKEN],
            Body::Bytes(br#"{"id": "m-1", "type": "COURSE_STARTED", "data": {"#.to_vec()),
            Some("m-1"),
        )
        .await;
    p.record("malformed JSON", Expected::Status(400, false), malformed);
    let oversized = oversized_body();
    let big = p
        .send(
            reqwest::Method::PUT,
            &[SCENARIO_TOKEN],
            Body::Bytes(oversized.clone()),
            None,
        )
        .await;
    p.record(
        "80 KiB body (limit 64 KiB)",
        Expected::Status(413, false),
        big,
    );

    // A type Knolyx added after this crate was written: delivered, not dropped.
    let unknown = match TestEvent::unknown("QUIZ_PASSED", r#"{"user":{"id":48213},"score":92}"#) {
        Ok(e) => p.ev(e),
        Err(e) => return Err(io::Error::other(e)),
    };
    p.deliver("QUIZ_PASSED (unknown type)", &unknown, ok(true))
        .await;

    // The handler fails: the event is not marked handled, and the retry runs it.
    let flaky = p.ev(TestEvent::bundle_payment_received());
    handler.plan(flaky.message_id(), Plan::FailOnce);
    p.deliver(
        "BUNDLE_PAYMENT_RECEIVED, handler fails",
        &flaky,
        Expected::Status(500, true),
    )
    .await;
    p.deliver("BUNDLE_PAYMENT_RECEIVED retried", &flaky, ok(true))
        .await;

    if set == ScenarioSet::Full {
        play_more(&mut p, &oversized).await;
    }

    running.stop().await;
    Ok(Report {
        framework,
        rows: p.rows,
        lines: handler.lines(),
        id_prefix: p.prefix,
    })
}

fn oversized_body() -> Vec<u8> {
    let mut body = TestEvent::course_started().to_body().to_vec();
    body.pop(); // the closing brace
    body.extend(format!(r#","padding":"{}"}}"#, "x".repeat(80 * 1024)).bytes());
    body
}

async fn play_more(p: &mut Player, oversized: &[u8]) {
    let event = p.ev(TestEvent::course_started());
    let body = || Body::Bytes(event.to_body().to_vec());
    let id = Some(event.message_id());
    for method in [reqwest::Method::GET, reqwest::Method::DELETE] {
        let sent = format!("{method} instead of PUT");
        let got = p.send(method, &[SCENARIO_TOKEN], body(), id).await;
        p.record(&sent, Expected::Status(405, false), got);
    }
    let got = p.send(reqwest::Method::PUT, &[], body(), id).await;
    p.record("no token header", Expected::Status(401, false), got);
    let got = p
        .send(
            reqwest::Method::PUT,
            &[SCENARIO_TOKEN, SCENARIO_TOKEN],
            body(),
            id,
        )
        .await;
    p.record("two token headers", Expected::Status(401, false), got);
    let prefix = &SCENARIO_TOKEN[..SCENARIO_TOKEN.len() - 1];
    let got = p.send(reqwest::Method::PUT, &[prefix], body(), id).await;
    p.record("a prefix of the token", Expected::Status(401, false), got);
    let got = p
        .send(
            reqwest::Method::PUT,
            &[SCENARIO_TOKEN],
            Body::Chunked(oversized.to_vec()),
            None,
        )
        .await;
    p.record("80 KiB chunked body", Expected::Status(413, false), got);
    let got = p
        .send(
            reqwest::Method::PUT,
            &[SCENARIO_TOKEN],
            Body::Bytes(br#"{"id":"w-1","type":"COURSE_COMPLETED","data":{"user":"x"}}"#.to_vec()),
            Some("w-1"),
        )
        .await;
    p.record(
        "COURSE_COMPLETED, data of the wrong shape",
        Expected::Status(422, false),
        got,
    );
    let got = p
        .send(
            reqwest::Method::PUT,
            &[SCENARIO_TOKEN],
            Body::Bytes(b"\xff\xfe not utf-8".to_vec()),
            None,
        )
        .await;
    p.record("invalid UTF-8", Expected::Status(400, false), got);
    let posted = p.ev(TestEvent::course_started());
    let got = p
        .send(
            reqwest::Method::POST,
            &[SCENARIO_TOKEN],
            Body::Bytes(posted.to_body().to_vec()),
            Some(posted.message_id()),
        )
        .await;
    p.record("COURSE_STARTED by POST", Expected::Status(200, true), got);

    // The handler panics: nothing is marked handled, and a retry runs the handler.
    let doomed = p.ev(TestEvent::course_payment_received());
    p.handler.plan(doomed.message_id(), Plan::PanicOnce);
    p.deliver(
        "COURSE_PAYMENT_RECEIVED, handler panics",
        &doomed,
        Expected::Aborted,
    )
    .await;
    // The claim is released by a task once the panic unwound: like Knolyx, retry while the
    // receiver answers 503 (bounded).
    let mut got = None;
    for _ in 0..200 {
        let g = p
            .send(
                reqwest::Method::PUT,
                &[SCENARIO_TOKEN],
                Body::Bytes(doomed.to_body().to_vec()),
                Some(doomed.message_id()),
            )
            .await;
        if g.status != Some(503) {
            got = Some(g);
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let got = got.unwrap_or(Got {
        status: Some(503),
        duplicate: false,
        handler_runs: 0,
        body: "still in progress after 200 retries".to_owned(),
    });
    p.record(
        "COURSE_PAYMENT_RECEIVED retried",
        Expected::Status(200, true),
        got,
    );
}
