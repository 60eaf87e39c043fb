//! Store faults and client hang-ups, over real HTTP, on both receivers.
//!
//! Each receiver gets one [`FaultyStore`] (over a [`MemoryStore`]) and a short lease
//! ([`LEASE`]), and then goes through every scenario in turn, on the same server, so the
//! last check ("a fresh event is still handled") runs after all the faults:
//!
//! - (a) a failing store (unavailable, timing out) answers 503 with `Retry-After` and does
//!   not run the handler; once it recovers, delivery resumes. A failing *complete* leaves
//!   the claim to its lease: the retransmission is refused as in flight until the lease
//!   runs out, then runs the handler again (the design's at-least-once window).
//! - (b) a claim slower than the client's patience: the client gives up; on axum the
//!   delivery is dropped mid-claim (never claimed) and the next one is handled; on actix-web
//!   it carries on, is handled and completed, and the next one is a duplicate.
//! - (c) a handler that outlives its lease: the retry runs the handler, the first handler's
//!   completion is fenced (`NotOwner`), the retry's stands.
//! - (d) a client hanging up mid-handler, the handler then let go or left hanging: the claim
//!   ends released or completed (or, left hanging, its lease runs out), and the next
//!   delivery is handled or a duplicate; never a permanent 503.
//! - (e) afterwards, a fresh event is handled and its retransmission dropped.
//! - (d') a client hanging up while the store records the handler's success: the success
//!   must stand (the next delivery is a duplicate). On axum the request's future is dropped
//!   mid-complete; core's settle guard then finishes the complete in the background.
//!
//! What a client hang-up does differs by framework, and both are pinned down here
//! ([`HangUp`]): hyper (axum) notices the closed connection and **drops the handler's
//! future**, so the settlement is dropped unsettled and core releases the claim; actix-web
//! does not watch the connection while the handler runs and **runs it to completion**,
//! then settles it with the handler's status (the response goes nowhere). Either way
//! nothing stays claimed beyond the lease.
//!
//! Waits are on signals: the store's call reports ([`FaultyStore::wait_until`]) and the
//! handler's own (started, finished, dropped). The only sleeps are the scenario itself:
//! letting a lease run out.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use knolyx_webhook_core::store::{
    ClaimOutcome, MemoryStore, OwnerToken, SettleOutcome, StoreErrorKind,
};
use knolyx_webhook_core::testing::{
    CallOutcome, Fault, FaultyStore, StoreCall, StoreOp, TestEvent, Times,
};
use knolyx_webhook_core::{DUPLICATE_HEADER, WebhookEvent, WebhookReceiver};
use knolyx_webhook_examples::scenarios::SpawnFn;
use knolyx_webhook_examples::{EventHandler, RunningReceiver};
use tokio::io::AsyncWriteExt;
use tokio::sync::{Notify, watch};

use crate::scenarios::{actix_spawn, axum_spawn};

const TOKEN: &str = "examples-faults-token";
/// The receiver's lease: short, so that scenarios (c) and (d) can outlive it.
const LEASE: Duration = Duration::from_millis(300);
/// Longer than [`LEASE`]: how long a scenario waits for a lease to run out.
const PAST_LEASE: Duration = Duration::from_millis(450);
/// The longest any awaited signal may take before the test fails instead of hanging.
const SIGNAL: Duration = Duration::from_secs(10);

/// What a framework does with a handler whose client hung up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum HangUp {
    /// The handler's future is dropped (hyper, so axum): core releases the claim.
    DropsHandler,
    /// The handler runs to completion and its status settles the claim (actix-web).
    RunsToCompletion,
}

struct Framework {
    name: &'static str,
    spawn: SpawnFn,
    hang_up: HangUp,
}

// ---------------------------------------------------------------------------------------
// The handler: counts runs, ends and drops per id, and blocks its first run on demand.

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Runs {
    started: u32,
    finished: u32,
    dropped: u32,
}

#[derive(Default)]
struct HandlerState {
    runs: HashMap<String, Runs>,
    /// Ids whose first run waits: (told when it starts, waited on).
    block_first: HashMap<String, (Arc<Notify>, Arc<Notify>)>,
}

struct TestHandler {
    state: Mutex<HandlerState>,
    changes: watch::Sender<u64>,
}

impl TestHandler {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::default(),
            changes: watch::Sender::new(0),
        })
    }

    fn lock(&self) -> MutexGuard<'_, HandlerState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn update(&self, id: &str, f: impl FnOnce(&mut Runs)) {
        f(self.lock().runs.entry(id.to_owned()).or_default());
        self.changes.send_modify(|v| *v += 1);
    }

    fn runs(&self, id: &str) -> Runs {
        self.lock().runs.get(id).copied().unwrap_or_default()
    }

    /// The first run of `id` will tell `started`, then wait for `release`.
    fn block_first(&self, id: &str) -> (Arc<Notify>, Arc<Notify>) {
        let pair = (Arc::new(Notify::new()), Arc::new(Notify::new()));
        self.lock().block_first.insert(id.to_owned(), pair.clone());
        pair
    }

    async fn wait_until(&self, id: &str, mut done: impl FnMut(Runs) -> bool) -> Runs {
        let mut changes = self.changes.subscribe();
        within("the handler's report", async {
            loop {
                let runs = self.runs(id);
                if done(runs) {
                    return runs;
                }
                changes.changed().await.unwrap();
            }
        })
        .await
    }

    fn handler(self: &Arc<Self>) -> EventHandler {
        let this = Arc::clone(self);
        Arc::new(move |event: WebhookEvent| {
            let this = Arc::clone(&this);
            Box::pin(async move {
                let id = event.id().to_owned();
                let block = {
                    let mut state = this.lock();
                    let first = state.runs.get(&id).is_none_or(|r| r.started == 0);
                    if first {
                        state.block_first.remove(&id)
                    } else {
                        None
                    }
                };
                this.update(&id, |r| r.started += 1);
                let mut guard = RunGuard {
                    handler: Arc::clone(&this),
                    id,
                    finished: false,
                };
                if let Some((started, release)) = block {
                    started.notify_one();
                    release.notified().await;
                }
                guard.finished = true;
                guard.handler.update(&guard.id, |r| r.finished += 1);
                Ok(())
            })
        })
    }
}

/// Counts a handler run dropped before it finished.
struct RunGuard {
    handler: Arc<TestHandler>,
    id: String,
    finished: bool,
}

impl Drop for RunGuard {
    fn drop(&mut self) {
        if !self.finished {
            self.handler.update(&self.id, |r| r.dropped += 1);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Helpers.

async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(SIGNAL, future)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

#[derive(Debug)]
struct Answer {
    status: u16,
    duplicate: bool,
    retry_after: Option<String>,
}

async fn send(client: &reqwest::Client, url: &str, event: &TestEvent) -> Answer {
    let response = within(
        "a response",
        client
            .put(url)
            .header("x-webhook-security-token", TOKEN)
            .body(event.to_body())
            .send(),
    )
    .await
    .expect("the request got a response");
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    Answer {
        status: response.status().as_u16(),
        duplicate: header(DUPLICATE_HEADER).as_deref() == Some("true"),
        retry_after: header("retry-after"),
    }
}

fn handled(answer: &Answer) -> bool {
    answer.status == 200 && !answer.duplicate
}

fn duplicate(answer: &Answer) -> bool {
    answer.status == 200 && answer.duplicate
}

fn of<'a>(calls: &'a [StoreCall], id: &'a str) -> impl Iterator<Item = &'a StoreCall> + 'a {
    calls.iter().filter(move |c| c.id == id)
}

/// How `owner`'s `op` on `id` ended, once it has (bounded by [`within`]).
async fn finished_call(
    b: &Bench,
    what: &str,
    id: &str,
    op: StoreOp,
    owner: OwnerToken,
) -> CallOutcome {
    let call = within(
        what,
        b.store.wait_for(|c| {
            c.id == id && c.op == op && c.owner == owner && c.outcome != CallOutcome::Pending
        }),
    )
    .await;
    call.outcome
}

/// Waits until nothing is in flight for `id`: every call has ended, and every claim that
/// was granted has been completed or released (either applied or fenced). Returns the
/// calls for `id`.
async fn quiet(store: &FaultyStore<MemoryStore>, id: &str) -> Vec<StoreCall> {
    let calls = within(
        &format!("every claim of {id} to be settled"),
        store.wait_until(|calls| {
            let mine: Vec<_> = of(calls, id).collect();
            mine.iter().all(|c| c.outcome != CallOutcome::Pending)
                && mine
                    .iter()
                    // Claims won, and claims that failed (their fate unknown to the
                    // pipeline, which releases them behind): each is settled.
                    .filter(|c| {
                        c.op == StoreOp::Claim
                            && matches!(
                                c.outcome,
                                CallOutcome::Claim(ClaimOutcome::Claimed) | CallOutcome::Error(_)
                            )
                    })
                    .all(|claim| {
                        mine.iter().any(|c| {
                            c.op != StoreOp::Claim
                                && c.owner == claim.owner
                                && matches!(c.outcome, CallOutcome::Settle(_))
                        })
                    })
        }),
    )
    .await;
    of(&calls, id).cloned().collect()
}

fn fresh(prefix: &str) -> TestEvent {
    let event = TestEvent::course_payment_received();
    let id = format!("{prefix}-{}", event.message_id());
    event.id(id)
}

/// A raw HTTP/1.1 PUT of `event`, on its own connection, for the caller to hang up.
async fn raw_put(addr: SocketAddr, event: &TestEvent) -> tokio::net::TcpStream {
    let body = event.to_body();
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "PUT /webhooks/knolyx HTTP/1.1\r\nhost: {addr}\r\nx-webhook-security-token: {TOKEN}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&body).await.unwrap();
    stream.flush().await.unwrap();
    stream
}

struct Bench {
    name: &'static str,
    hang_up: HangUp,
    store: FaultyStore<MemoryStore>,
    handler: Arc<TestHandler>,
    client: reqwest::Client,
    url: String,
    addr: SocketAddr,
}

// ---------------------------------------------------------------------------------------
// The scenarios, each written once for both frameworks.

/// (a) A failing store: 503 + `Retry-After`, handler not run; then delivery resumes.
async fn failing_store(b: &Bench) {
    let event = fresh("a");
    let id = event.message_id().to_owned();
    b.store
        .inject(StoreOp::Claim, Fault::Unavailable, Times::Next(2));
    for _ in 0..2 {
        let answer = send(&b.client, &b.url, &event).await;
        assert_eq!(answer.status, 503, "{}: {answer:?}", b.name);
        assert_eq!(answer.retry_after.as_deref(), Some("5"), "{}", b.name);
    }
    b.store.inject(
        StoreOp::Claim,
        Fault::Timeout(Duration::from_millis(50)),
        Times::Next(1),
    );
    let answer = send(&b.client, &b.url, &event).await;
    assert_eq!(answer.status, 503, "{}: {answer:?}", b.name);
    assert!(answer.retry_after.is_some(), "{}", b.name);
    assert_eq!(
        b.handler.runs(&id),
        Runs::default(),
        "{}: the handler ran",
        b.name
    );

    // Recovered (the faults were for the next 3 claims): delivered, then a duplicate.
    let answer = send(&b.client, &b.url, &event).await;
    assert!(handled(&answer), "{}: {answer:?}", b.name);
    assert_eq!(b.handler.runs(&id).finished, 1, "{}", b.name);
    let answer = send(&b.client, &b.url, &event).await;
    assert!(duplicate(&answer), "{}: {answer:?}", b.name);
    assert_eq!(b.handler.runs(&id).started, 1, "{}", b.name);
    let calls = quiet(&b.store, &id).await;
    // Each failed claim is followed by a fenced release of its owner (the store may have
    // taken the claim before failing); here it had not, so the release changed nothing.
    for failed in calls
        .iter()
        .filter(|c| matches!(c.outcome, CallOutcome::Error(_)))
    {
        let release = calls
            .iter()
            .find(|c| c.op == StoreOp::Release && c.owner == failed.owner);
        assert_eq!(
            release.map(|c| c.outcome),
            Some(CallOutcome::Settle(SettleOutcome::NotOwner)),
            "{}: the release behind a failed claim",
            b.name
        );
    }
    let outcomes: Vec<_> = calls
        .iter()
        .filter(|c| c.op != StoreOp::Release)
        .map(|c| (c.op, c.outcome))
        .collect();
    assert_eq!(
        outcomes,
        [
            (
                StoreOp::Claim,
                CallOutcome::Error(StoreErrorKind::Unavailable)
            ),
            (
                StoreOp::Claim,
                CallOutcome::Error(StoreErrorKind::Unavailable)
            ),
            (StoreOp::Claim, CallOutcome::Error(StoreErrorKind::Timeout)),
            (StoreOp::Claim, CallOutcome::Claim(ClaimOutcome::Claimed)),
            (
                StoreOp::Complete,
                CallOutcome::Settle(SettleOutcome::Settled)
            ),
            (StoreOp::Claim, CallOutcome::Claim(ClaimOutcome::Completed)),
        ],
        "{}",
        b.name
    );

    // A failing complete: the handler succeeded, but the store could not record it. The
    // claim stays in progress until its lease runs out: the retransmission is refused as
    // in flight, then (past the lease) runs the handler again.
    let event = fresh("a-complete");
    let id = event.message_id().to_owned();
    b.store
        .inject(StoreOp::Complete, Fault::Unavailable, Times::Next(1));
    let answer = send(&b.client, &b.url, &event).await;
    assert!(
        handled(&answer),
        "{}: the handler's own 200: {answer:?}",
        b.name
    );
    let answer = send(&b.client, &b.url, &event).await;
    assert_eq!(answer.status, 503, "{}: in flight: {answer:?}", b.name);
    assert!(answer.retry_after.is_some(), "{}", b.name);
    tokio::time::sleep(PAST_LEASE).await; // the scenario: the lease runs out
    let answer = send(&b.client, &b.url, &event).await;
    assert!(handled(&answer), "{}: {answer:?}", b.name);
    let answer = send(&b.client, &b.url, &event).await;
    assert!(duplicate(&answer), "{}: {answer:?}", b.name);
    assert_eq!(b.handler.runs(&id).finished, 2, "{}", b.name);
}

/// (b) A claim slower than the client's patience.
async fn slow_store(b: &Bench) {
    // Slower than a patient client's patience: only late.
    let event = fresh("b-patient");
    b.store.inject(
        StoreOp::Claim,
        Fault::Delay(Duration::from_millis(100)),
        Times::Next(1),
    );
    assert!(
        handled(&send(&b.client, &b.url, &event).await),
        "{}",
        b.name
    );

    // Slower than an impatient one's: it gives up.
    let event = fresh("b-impatient");
    let id = event.message_id().to_owned();
    b.store.inject(
        StoreOp::Claim,
        Fault::Delay(Duration::from_millis(600)),
        Times::Next(1),
    );
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(150))
        .build()
        .unwrap();
    let result = impatient
        .put(&b.url)
        .header("x-webhook-security-token", TOKEN)
        .body(event.to_body())
        .send()
        .await;
    assert!(
        result.as_ref().is_err_and(|e| e.is_timeout()),
        "{}: {result:?}",
        b.name
    );
    // The abandoned delivery ends, one way or the other, and leaves nothing in flight.
    let calls = quiet(&b.store, &id).await;
    let answer = send(&b.client, &b.url, &event).await;
    let runs = b.handler.runs(&id);
    assert_eq!(runs.finished, 1, "{}: {runs:?}, {calls:?}", b.name);
    match b.hang_up {
        // Dropped with the request while the store was slow: never claimed, so the next
        // delivery runs the handler.
        HangUp::DropsHandler => {
            assert_eq!(calls[0].outcome, CallOutcome::Cancelled, "{}", b.name);
            assert!(handled(&answer), "{}: {answer:?}", b.name);
        }
        // Carried on without the client: claimed, handled and completed, so the next
        // delivery is a duplicate.
        HangUp::RunsToCompletion => {
            assert_eq!(
                calls[0].outcome,
                CallOutcome::Claim(ClaimOutcome::Claimed),
                "{}",
                b.name
            );
            assert!(duplicate(&answer), "{}: {answer:?}", b.name);
        }
    }
}

/// (c) A handler that outlives its lease cannot settle the claim its retry now owns.
async fn handler_outlives_lease(b: &Bench) {
    let event = fresh("c");
    let id = event.message_id().to_owned();
    let (started, release) = b.handler.block_first(&id);
    let first = tokio::spawn({
        let (client, url, event) = (b.client.clone(), b.url.clone(), event.clone());
        async move { send(&client, &url, &event).await }
    });
    within("the first run to start", started.notified()).await;
    let first_owner = b
        .store
        .wait_for(|c| c.id == id && c.outcome == CallOutcome::Claim(ClaimOutcome::Claimed))
        .await
        .owner;

    tokio::time::sleep(PAST_LEASE).await; // the scenario: the lease runs out
    // The retry takes the claim over and runs the handler; its completion stands.
    let retry = send(&b.client, &b.url, &event).await;
    assert!(handled(&retry), "{}: {retry:?}", b.name);
    let runs = b.handler.runs(&id);
    assert_eq!((runs.started, runs.finished), (2, 1), "{}", b.name);
    let retry_complete = b
        .store
        .wait_for(|c| c.id == id && c.op == StoreOp::Complete && c.owner != first_owner)
        .await;
    assert_eq!(
        retry_complete.outcome,
        CallOutcome::Settle(SettleOutcome::Settled),
        "{}",
        b.name
    );

    // The first handler finishes now: its completion is fenced.
    release.notify_one();
    let first = within("the first response", first).await.unwrap();
    // The handler's own answer still goes out (the pipeline logs the lost lease).
    assert_eq!(first.status, 200, "{}: {first:?}", b.name);
    let fenced = finished_call(
        b,
        "the first handler's completion",
        &id,
        StoreOp::Complete,
        first_owner,
    )
    .await;
    assert_eq!(
        fenced,
        CallOutcome::Settle(SettleOutcome::NotOwner),
        "{}",
        b.name
    );
    // The retry's completion stands: a later delivery is a duplicate.
    let later = send(&b.client, &b.url, &event).await;
    assert!(duplicate(&later), "{}: {later:?}", b.name);
    assert_eq!(b.handler.runs(&id).started, 2, "{}", b.name);
}

/// (d) A client hangs up mid-handler; the handler is then let go (`let_go`) or left
/// hanging.
async fn client_hangs_up(b: &Bench, let_go: bool) {
    let event = fresh(if let_go { "d-let-go" } else { "d-hanging" });
    let id = event.message_id().to_owned();
    let (started, release) = b.handler.block_first(&id);
    let connection = raw_put(b.addr, &event).await;
    within("the handler to start", started.notified()).await;
    let owner = b
        .store
        .wait_for(|c| c.id == id && c.outcome == CallOutcome::Claim(ClaimOutcome::Claimed))
        .await
        .owner;
    drop(connection); // the client hangs up

    match b.hang_up {
        HangUp::DropsHandler => {
            // The handler's future is dropped, and core releases the claim.
            let runs = b.handler.wait_until(&id, |r| r.dropped == 1).await;
            assert_eq!(runs.finished, 0, "{}", b.name);
            let release_call = finished_call(b, "the release", &id, StoreOp::Release, owner).await;
            assert_eq!(
                release_call,
                CallOutcome::Settle(SettleOutcome::Settled),
                "{}",
                b.name
            );
            if let_go {
                release.notify_one(); // nobody is waiting any more
            }
            // The next delivery runs the handler.
            let answer = send(&b.client, &b.url, &event).await;
            assert!(handled(&answer), "{}: {answer:?}", b.name);
            let runs = b.handler.runs(&id);
            assert_eq!((runs.started, runs.finished), (2, 1), "{}", b.name);
        }
        HangUp::RunsToCompletion if let_go => {
            // The handler is still running; let go, it finishes and its 200 completes the
            // claim (the response goes nowhere).
            release.notify_one();
            let runs = b.handler.wait_until(&id, |r| r.finished == 1).await;
            assert_eq!(runs.dropped, 0, "{}", b.name);
            let calls = quiet(&b.store, &id).await;
            assert!(
                calls.iter().any(|c| c.op == StoreOp::Complete
                    && c.owner == owner
                    && c.outcome == CallOutcome::Settle(SettleOutcome::Settled)),
                "{}: {calls:?}",
                b.name
            );
            // The next delivery is a duplicate.
            let answer = send(&b.client, &b.url, &event).await;
            assert!(duplicate(&answer), "{}: {answer:?}", b.name);
            assert_eq!(b.handler.runs(&id).started, 1, "{}", b.name);
        }
        HangUp::RunsToCompletion => {
            // The handler hangs on: its claim is in progress until the lease runs out.
            let answer = send(&b.client, &b.url, &event).await;
            assert_eq!(answer.status, 503, "{}: in flight: {answer:?}", b.name);
            assert!(answer.retry_after.is_some(), "{}", b.name);
            tokio::time::sleep(PAST_LEASE).await; // the scenario: the lease runs out
            let answer = send(&b.client, &b.url, &event).await;
            assert!(handled(&answer), "{}: {answer:?}", b.name);
            // The hanging handler, let go at last, cannot settle the retry's claim.
            release.notify_one();
            let runs = b.handler.wait_until(&id, |r| r.finished == 2).await;
            assert_eq!((runs.started, runs.dropped), (2, 0), "{}", b.name);
            let fenced = finished_call(
                b,
                "the hanging handler's completion",
                &id,
                StoreOp::Complete,
                owner,
            )
            .await;
            assert_eq!(
                fenced,
                CallOutcome::Settle(SettleOutcome::NotOwner),
                "{}",
                b.name
            );
            let answer = send(&b.client, &b.url, &event).await;
            assert!(duplicate(&answer), "{}: {answer:?}", b.name);
        }
    }
    quiet(&b.store, &id).await;
}

/// (d') A client hangs up while the store records the handler's success (a slow
/// complete): the success must not be lost, so the next delivery is a duplicate (not a
/// 503 until the lease runs out, then a second run of a handler that already succeeded).
async fn client_hangs_up_while_completing(b: &Bench) {
    let event = fresh("d-completing");
    let id = event.message_id().to_owned();
    b.store
        .inject(StoreOp::Complete, Fault::Hold, Times::Next(1));
    let connection = raw_put(b.addr, &event).await;
    let complete = within(
        "the complete to be held",
        b.store.wait_for(|c| {
            c.id == id && c.op == StoreOp::Complete && c.outcome == CallOutcome::Pending
        }),
    )
    .await;
    drop(connection); // the client hangs up
    if b.hang_up == HangUp::DropsHandler {
        // The request's future, and the complete in it, are dropped.
        within(
            "the complete to be dropped",
            b.store
                .wait_for(|c| c.seq == complete.seq && c.outcome == CallOutcome::Cancelled),
        )
        .await;
    }
    b.store.resume();
    let calls = quiet(&b.store, &id).await;
    assert!(
        calls.iter().any(|c| c.op == StoreOp::Complete
            && c.owner == complete.owner
            && c.outcome == CallOutcome::Settle(SettleOutcome::Settled)),
        "{}: the handler's success was never recorded: {calls:?}",
        b.name
    );
    let answer = send(&b.client, &b.url, &event).await;
    assert!(duplicate(&answer), "{}: {answer:?}", b.name);
    assert_eq!(b.handler.runs(&id).finished, 1, "{}", b.name);
}

/// (e) After everything: a fresh event is handled, its retransmission dropped.
async fn still_serving(b: &Bench) {
    let event = fresh("e");
    let id = event.message_id().to_owned();
    let answer = send(&b.client, &b.url, &event).await;
    assert!(handled(&answer), "{}: {answer:?}", b.name);
    let answer = send(&b.client, &b.url, &event).await;
    assert!(duplicate(&answer), "{}: {answer:?}", b.name);
    assert_eq!(b.handler.runs(&id).finished, 1, "{}", b.name);
    // Nothing is left in flight anywhere in the store.
    let calls = b.store.calls();
    assert!(
        calls.iter().all(|c| c.outcome != CallOutcome::Pending),
        "{}: {:?}",
        b.name,
        calls
            .iter()
            .filter(|c| c.outcome == CallOutcome::Pending)
            .collect::<Vec<_>>()
    );
}

async fn start(framework: Framework) -> (Bench, RunningReceiver) {
    let store = FaultyStore::new(MemoryStore::new());
    let receiver = WebhookReceiver::builder()
        .token(TOKEN)
        .store(store.clone())
        .lease(LEASE)
        .build()
        .unwrap();
    let handler = TestHandler::new();
    let running = (framework.spawn)(receiver, handler.handler())
        .await
        .unwrap();
    let bench = Bench {
        name: framework.name,
        hang_up: framework.hang_up,
        store,
        handler,
        client: reqwest::Client::new(),
        url: running.url(),
        addr: running.addr(),
    };
    (bench, running)
}

async fn run_all(framework: Framework) {
    let (bench, running) = start(framework).await;
    failing_store(&bench).await;
    slow_store(&bench).await;
    handler_outlives_lease(&bench).await;
    client_hangs_up(&bench, true).await;
    client_hangs_up(&bench, false).await;
    still_serving(&bench).await;
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn axum_keeps_serving_through_store_faults_and_hang_ups() {
    run_all(axum()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actix_keeps_serving_through_store_faults_and_hang_ups() {
    run_all(actix()).await;
}

fn axum() -> Framework {
    Framework {
        name: "axum",
        spawn: axum_spawn(),
        hang_up: HangUp::DropsHandler,
    }
}

fn actix() -> Framework {
    Framework {
        name: "actix-web",
        spawn: actix_spawn(),
        hang_up: HangUp::RunsToCompletion,
    }
}

/// Regression: the complete is awaited inside the request's future, and hyper drops that
/// future when the client hangs up; the complete used to be cancelled with it (the claim
/// then stayed in progress until its lease ran out, and the retransmission ran the handler
/// a second time). Core's settle guard now finishes it on the runtime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn axum_keeps_a_success_when_the_client_hangs_up_while_completing() {
    let (bench, running) = start(axum()).await;
    client_hangs_up_while_completing(&bench).await;
    still_serving(&bench).await;
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actix_keeps_a_success_when_the_client_hangs_up_while_completing() {
    let (bench, running) = start(actix()).await;
    client_hangs_up_while_completing(&bench).await;
    still_serving(&bench).await;
    running.stop().await;
}
