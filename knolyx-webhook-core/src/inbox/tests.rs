//! The memory inbox against the conformance suite, broken inboxes against it, and the
//! worker over the memory inbox with handlers the tests control.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;

use super::*;
use crate::store::{OwnerToken, SettleOutcome, StoreErrorKind};
use crate::testing::{TestEvent, inbox_conformance};

/// A bound for what must happen soon (far above what it takes; never a synchronisation).
const SOON: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_inbox_passes_the_conformance_suite() {
    inbox_conformance::run(Arc::new(MemoryInbox::new())).await;
}

/// How a [`Broken`] inbox breaks the rules.
#[derive(Clone, Copy, Debug)]
enum Flaw {
    /// Settles for whoever asks, as long as the entry runs under a live lease: no fencing.
    Unfenced,
    /// Never hands out an expired lease's entry (it takes it, but keeps it to itself).
    NoTakeover,
    /// Hands every entry running under a live lease out again.
    Shares,
}

/// A memory inbox with one [`Flaw`].
#[derive(Debug)]
struct Broken(MemoryInbox, Flaw);

#[async_trait]
impl Inbox for Broken {
    async fn accept(&self, event: &WebhookEvent) -> StoreResult<Accepted> {
        self.0.accept(event).await
    }
    async fn take(&self, w: OwnerToken, lease: Duration, n: usize) -> StoreResult<Vec<Entry>> {
        let running = ListFilter::all()
            .state(EntryState::Running)
            .limit(usize::MAX);
        let running = self.0.list(running).await?;
        let mut taken = self.0.take(w, lease, n).await?;
        match self.1 {
            Flaw::Unfenced => {}
            Flaw::NoTakeover => taken.retain(|e| !running.iter().any(|r| r.id() == e.id())),
            Flaw::Shares => taken.extend(running),
        }
        Ok(taken)
    }
    async fn complete(&self, id: &str, owner: OwnerToken) -> StoreResult<SettleOutcome> {
        let owner = match self.1 {
            Flaw::Unfenced => self
                .0
                .show(id)
                .await?
                .and_then(|e| e.owner())
                .unwrap_or(owner),
            Flaw::NoTakeover | Flaw::Shares => owner,
        };
        self.0.complete(id, owner).await
    }
    async fn fail(
        &self,
        id: &str,
        owner: OwnerToken,
        error: &str,
        retry_in: Option<Duration>,
    ) -> StoreResult<SettleOutcome> {
        self.0.fail(id, owner, error, retry_in).await
    }
    async fn release(&self, id: &str, owner: OwnerToken) -> StoreResult<SettleOutcome> {
        self.0.release(id, owner).await
    }
    async fn list(&self, filter: ListFilter) -> StoreResult<Vec<Entry>> {
        self.0.list(filter).await
    }
    async fn show(&self, id: &str) -> StoreResult<Option<Entry>> {
        self.0.show(id).await
    }
    async fn retry(&self, id: &str) -> StoreResult<bool> {
        self.0.retry(id).await
    }
    async fn retry_all_dead(&self) -> StoreResult<u64> {
        self.0.retry_all_dead().await
    }
    async fn purge_done(&self, older_than: Duration) -> StoreResult<u64> {
        self.0.purge_done(older_than).await
    }
}

/// The suite's panic message, when it fails.
async fn suite_failure(inbox: Arc<dyn Inbox>) -> Option<String> {
    let run = tokio::spawn(inbox_conformance::run(inbox)).await;
    let panic = run.err()?.into_panic();
    Some(match panic.downcast::<String>() {
        Ok(message) => *message,
        Err(panic) => panic
            .downcast::<&str>()
            .map_or_else(|_| "?".to_owned(), |m| (*m).to_owned()),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn broken_inboxes_fail_the_conformance_suite() {
    for (flaw, rule) in [
        (Flaw::Unfenced, "complete by a non-owner must be NotOwner"),
        (
            Flaw::NoTakeover,
            "take must hand out exactly the one due entry",
        ),
        (
            Flaw::Shares,
            "a running entry with a live lease must not be taken again",
        ),
    ] {
        let name = format!("{flaw:?}");
        let failure = suite_failure(Arc::new(Broken(MemoryInbox::new(), flaw))).await;
        assert!(
            failure.as_deref().is_some_and(|m| m.contains(rule)),
            "{name}: expected the suite to fail with {rule:?}, got {failure:?}"
        );
    }
}

#[tokio::test]
async fn memory_inbox_is_bounded_and_drops_done_entries_first() {
    let inbox = MemoryInbox::builder().capacity(2).build();
    let (a, b, c) = (
        TestEvent::course_started().build(),
        TestEvent::course_started().build(),
        TestEvent::course_started().build(),
    );
    assert_eq!(inbox.accept(&a).await.unwrap(), Accepted::Stored);
    assert_eq!(inbox.accept(&b).await.unwrap(), Accepted::Stored);
    let full = inbox.accept(&c).await.unwrap_err();
    assert_eq!(
        full.kind(),
        StoreErrorKind::Full,
        "pending entries are never dropped"
    );
    let worker = OwnerToken::generate();
    let taken = inbox.take(worker, SOON, 1).await.unwrap();
    inbox.complete(taken[0].id(), worker).await.unwrap();
    assert_eq!(inbox.accept(&c).await.unwrap(), Accepted::Stored);
    assert!(
        inbox.show(taken[0].id()).await.unwrap().is_none(),
        "the done one made room"
    );
}

#[tokio::test]
async fn memory_inbox_forgets_done_entries_past_the_retention() {
    let inbox = MemoryInbox::builder().retention(Duration::ZERO).build();
    let a = TestEvent::course_started().build();
    inbox.accept(&a).await.unwrap();
    let worker = OwnerToken::generate();
    inbox.take(worker, SOON, 1).await.unwrap();
    inbox.complete(a.id(), worker).await.unwrap();
    // Accepting anything drops what is past the retention: `a` is stored anew.
    inbox
        .accept(&TestEvent::course_started().build())
        .await
        .unwrap();
    assert_eq!(inbox.accept(&a).await.unwrap(), Accepted::Stored);
}

#[test]
fn entry_debug_never_shows_the_body() {
    let event = TestEvent::course_payment_received()
        .user(crate::User::new(1, "Secret Name", "secret@example.com"))
        .build();
    let entry = Entry::new(
        event.id(),
        event.event_type(),
        event.raw().clone(),
        EntryState::Pending,
        std::time::SystemTime::now(),
    );
    let shown = format!("{entry:?}");
    assert!(!shown.contains("secret@example.com"), "{shown}");
    assert!(shown.contains("body_len"), "{shown}");
}

#[test]
fn backoff_doubles_with_jitter_and_is_capped() {
    let (first, max) = (Duration::from_millis(100), Duration::from_secs(1));
    assert_eq!(backoff(1, first, max, 1.0), first);
    assert_eq!(backoff(2, first, max, 1.0), first * 2);
    assert_eq!(backoff(2, first, max, 0.5), first * 3 / 2);
    assert_eq!(backoff(5, first, max, 1.0), max);
    assert_eq!(backoff(u32::MAX, first, max, 1.0), max);
    assert_eq!(backoff(0, first, max, 1.0), first);
    assert_eq!(backoff(3, Duration::MAX, Duration::MAX, 2.0), Duration::MAX);
}

/// What a controllable handler saw: each call's id and its attempt (in this process).
#[derive(Clone, Default)]
struct Calls(Arc<Mutex<HashMap<String, u32>>>);

impl Calls {
    /// Counts a call of `id`; returns which call it is (1 for the first).
    fn count(&self, id: &str) -> u32 {
        let mut calls = self.0.lock().unwrap();
        let n = calls.entry(id.to_owned()).or_default();
        *n += 1;
        *n
    }
}

fn worker_over(
    inbox: &Arc<MemoryInbox>,
    fail_first: u32,
) -> (
    WorkerBuilder,
    mpsc::UnboundedReceiver<(String, u32, tokio::time::Instant)>,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    let calls = Calls::default();
    let builder = Worker::builder(inbox.clone(), move |event: WebhookEvent| {
        let n = calls.count(event.id());
        let _ = tx.send((event.id().to_owned(), n, tokio::time::Instant::now()));
        async move {
            if n <= fail_first {
                Err(format!("failing call {n}"))
            } else {
                Ok(())
            }
        }
    })
    .wake_on(inbox.waker())
    .poll_interval(Duration::from_secs(60));
    (builder, rx)
}

async fn next<T>(rx: &mut mpsc::UnboundedReceiver<T>) -> T {
    tokio::time::timeout(SOON, rx.recv())
        .await
        .expect("the handler ran in time")
        .expect("the worker is alive")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_runs_the_handler_and_completes() {
    let inbox = Arc::new(MemoryInbox::new());
    let (builder, mut calls) = worker_over(&inbox, 0);
    let worker = builder.build().spawn();
    let event = TestEvent::course_completed().build();
    inbox.accept(&event).await.unwrap();
    let (id, n, _) = next(&mut calls).await;
    assert_eq!((id.as_str(), n), (event.id(), 1));
    // Whether the attempt ended before or during the shutdown, it is settled by then.
    assert_eq!(worker.shutdown(SOON).await.released, 0);
    let entry = inbox.show(event.id()).await.unwrap().unwrap();
    assert_eq!((entry.state(), entry.attempts()), (EntryState::Done, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_retried_with_a_growing_backoff() {
    let inbox = Arc::new(MemoryInbox::new());
    let first = Duration::from_millis(100);
    let (builder, mut calls) = worker_over(&inbox, 2);
    let worker = builder.first_retry(first).build().spawn();
    let event = TestEvent::course_completed().build();
    inbox.accept(&event).await.unwrap();
    let (_, _, t1) = next(&mut calls).await;
    let (_, n2, t2) = next(&mut calls).await;
    let (_, n3, t3) = next(&mut calls).await;
    assert_eq!((n2, n3), (2, 3));
    // Jitter keeps each delay within its upper half: at least 50 ms, then at least 100 ms.
    assert!(t2 - t1 >= first / 2, "first retry after {:?}", t2 - t1);
    assert!(t3 - t2 >= first, "second retry after {:?}", t3 - t2);
    worker.shutdown(SOON).await;
    let entry = inbox.show(event.id()).await.unwrap().unwrap();
    assert_eq!((entry.state(), entry.attempts()), (EntryState::Done, 3));
    assert_eq!(entry.last_error(), Some("failing call 2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_is_dead_after_the_maximum_attempts_with_its_last_error() {
    let inbox = Arc::new(MemoryInbox::new());
    let (builder, mut calls) = worker_over(&inbox, u32::MAX);
    let worker = builder
        .first_retry(Duration::from_millis(5))
        .max_attempts(3)
        .build()
        .spawn();
    let event = TestEvent::course_completed().build();
    inbox.accept(&event).await.unwrap();
    for expected in 1..=3 {
        assert_eq!(next(&mut calls).await.1, expected);
    }
    worker.shutdown(SOON).await;
    assert!(calls.try_recv().is_err(), "no attempt after the maximum");
    let entry = inbox.show(event.id()).await.unwrap().unwrap();
    assert_eq!(
        (entry.state(), entry.attempts(), entry.last_error()),
        (EntryState::Dead, 3, Some("failing call 3"))
    );
}

/// Runs one event through a worker with `lease` whose handler's first call is `first`
/// (which must fail somehow) and whose second succeeds; the entry once it is done.
async fn fails_once_then_succeeds(
    lease: Duration,
    first: fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
) -> Entry {
    let inbox = Arc::new(MemoryInbox::new());
    let calls = Calls::default();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let worker = Worker::builder(inbox.clone(), move |event: WebhookEvent| {
        let n = calls.count(event.id());
        let _ = tx.send(n);
        async move {
            if n == 1 {
                first().await;
            }
            Ok::<(), String>(())
        }
    })
    .wake_on(inbox.waker())
    .lease(lease)
    .first_retry(Duration::from_millis(5))
    .build()
    .spawn();
    let event = TestEvent::course_completed().build();
    inbox.accept(&event).await.unwrap();
    assert_eq!(next(&mut rx).await, 1);
    assert_eq!(next(&mut rx).await, 2);
    worker.shutdown(SOON).await;
    inbox.show(event.id()).await.unwrap().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_handler_is_a_failure() {
    let entry = fails_once_then_succeeds(SOON, || {
        Box::pin(async { panic!("the handler panics on its first call") })
    })
    .await;
    assert_eq!(
        (entry.state(), entry.attempts(), entry.last_error()),
        (EntryState::Done, 2, Some("the handler panicked"))
    );
}

/// Sends on drop: tells the test a handler's future was dropped (cancelled).
struct DropSignal(Option<tokio::sync::oneshot::Sender<()>>);

impl Drop for DropSignal {
    fn drop(&mut self) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_handlers_finish_within_grace_then_releases_the_rest() {
    let inbox = Arc::new(MemoryInbox::new());
    let (started_tx, mut started) = mpsc::unbounded_channel();
    let gates: Arc<Mutex<HashMap<String, tokio::sync::oneshot::Receiver<()>>>> = Arc::default();
    let (dropped_tx, dropped) = tokio::sync::oneshot::channel();
    let dropped_tx = Arc::new(Mutex::new(Some(dropped_tx)));
    let handler_gates = gates.clone();
    let worker = Worker::builder(inbox.clone(), move |event: WebhookEvent| {
        let gate = handler_gates.lock().unwrap().remove(event.id());
        // Only the handler that never finishes signals its drop.
        let signal = DropSignal(match gate {
            Some(_) => None,
            None => dropped_tx.lock().unwrap().take(),
        });
        let _ = started_tx.send(event.id().to_owned());
        async move {
            let _signal = signal;
            match gate {
                Some(gate) => {
                    let _ = gate.await;
                }
                None => std::future::pending::<()>().await, // never finishes
            }
            Ok::<(), String>(())
        }
    })
    .wake_on(inbox.waker())
    .build()
    .spawn();
    let (quick, stuck) = (
        TestEvent::course_completed().build(),
        TestEvent::course_completed().build(),
    );
    let (open, gate) = tokio::sync::oneshot::channel();
    gates.lock().unwrap().insert(quick.id().to_owned(), gate);
    inbox.accept(&quick).await.unwrap();
    inbox.accept(&stuck).await.unwrap();
    let mut seen = vec![next(&mut started).await, next(&mut started).await];
    seen.sort();
    let mut expected = vec![quick.id().to_owned(), stuck.id().to_owned()];
    expected.sort();
    assert_eq!(seen, expected);

    // The quick one finishes once shutdown has begun; the stuck one outlives the grace.
    let shutdown = tokio::spawn(worker.shutdown(Duration::from_millis(300)));
    open.send(()).unwrap();
    let report = tokio::time::timeout(SOON, shutdown).await.unwrap().unwrap();
    assert_eq!(
        report,
        ShutdownReport {
            finished: 1,
            released: 1
        }
    );
    tokio::time::timeout(SOON, dropped)
        .await
        .expect("the stuck handler was cancelled")
        .unwrap();
    assert_eq!(
        inbox.show(quick.id()).await.unwrap().unwrap().state(),
        EntryState::Done
    );
    let released = inbox.show(stuck.id()).await.unwrap().unwrap();
    assert_eq!(
        (released.state(), released.owner(), released.attempts()),
        (EntryState::Pending, None, 1),
        "released: pending again, due at once, for the next worker"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_that_outlives_its_lease_is_cancelled_and_retried() {
    let entry = fails_once_then_succeeds(Duration::from_millis(200), || {
        Box::pin(std::future::pending())
    })
    .await;
    assert_eq!((entry.state(), entry.attempts()), (EntryState::Done, 2));
    assert!(
        entry
            .last_error()
            .is_some_and(|e| e.contains("did not finish within")),
        "{entry:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_handle_leaves_the_worker_running() {
    let inbox = Arc::new(MemoryInbox::new());
    let (builder, mut calls) = worker_over(&inbox, 0);
    drop(builder.build().spawn());
    inbox
        .accept(&TestEvent::course_started().build())
        .await
        .unwrap();
    next(&mut calls).await;
}

/// Polls `show(id)` until the entry is gone (the worker's purge deleted it).
async fn until_purged(inbox: &MemoryInbox, id: &str) {
    tokio::time::timeout(SOON, async {
        while inbox.show(id).await.unwrap().is_some() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the worker purged the done entry");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_purges_done_entries_past_retention_when_it_starts() {
    let inbox = Arc::new(MemoryInbox::new());
    let event = TestEvent::course_completed().build();
    inbox.accept(&event).await.unwrap();
    let owner = OwnerToken::generate();
    inbox.take(owner, SOON, 1).await.unwrap();
    assert_eq!(
        inbox.complete(event.id(), owner).await.unwrap(),
        SettleOutcome::Settled
    );
    // A pending entry is never purged, whatever its age.
    let pending = TestEvent::course_started().build();
    let (builder, _calls) = worker_over(&inbox, u32::MAX);
    let worker = builder
        .retention(Duration::ZERO)
        .purge_interval(Duration::from_secs(3600))
        .first_retry(Duration::from_secs(3600))
        .build()
        .spawn();
    until_purged(&inbox, event.id()).await;
    inbox.accept(&pending).await.unwrap();
    worker.shutdown(SOON).await;
    assert!(inbox.show(pending.id()).await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_purges_what_it_handled_once_past_retention() {
    let inbox = Arc::new(MemoryInbox::new());
    let (builder, mut calls) = worker_over(&inbox, 0);
    let worker = builder
        .retention(Duration::ZERO)
        .purge_interval(Duration::from_millis(20))
        .build()
        .spawn();
    let event = TestEvent::course_completed().build();
    inbox.accept(&event).await.unwrap();
    next(&mut calls).await;
    until_purged(&inbox, event.id()).await;
    worker.shutdown(SOON).await;
}

/// A handler completing the entry itself (in its own transaction) marks the attempt; the
/// worker then leaves the entry to that transaction. Here the first attempt's "transaction"
/// rolls back (marked, not applied): the entry stays running, and once its lease expired it
/// is taken again, and the second attempt's completion applies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_that_completes_the_attempt_itself_is_not_completed_again() {
    let inbox = Arc::new(MemoryInbox::new());
    let (tx, mut seen) = mpsc::unbounded_channel();
    let by_hand = Arc::clone(&inbox);
    let worker = Worker::builder_with_attempt(inbox.clone(), move |event, attempt| {
        let (inbox, tx) = (Arc::clone(&by_hand), tx.clone());
        async move {
            assert_eq!(attempt.id(), event.id());
            if attempt.number() > 1 {
                let done = inbox.complete(attempt.id(), attempt.owner()).await.unwrap();
                assert_eq!(done, SettleOutcome::Settled);
            }
            attempt.mark_completed();
            let _ = tx.send(attempt.number());
            Ok::<(), String>(())
        }
    })
    .wake_on(inbox.waker())
    .lease(Duration::from_millis(300))
    .poll_interval(Duration::from_millis(50))
    .build()
    .spawn();
    let event = TestEvent::course_completed().build();
    inbox.accept(&event).await.unwrap();
    assert_eq!(next(&mut seen).await, 1);
    let entry = inbox.show(event.id()).await.unwrap().unwrap();
    assert_eq!(entry.state(), EntryState::Running, "left to the handler");
    assert_eq!(
        next(&mut seen).await,
        2,
        "taken over once the lease expired"
    );
    worker.shutdown(SOON).await;
    let entry = inbox.show(event.id()).await.unwrap().unwrap();
    assert_eq!((entry.state(), entry.attempts()), (EntryState::Done, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_failing_past_the_maximum_age_is_dead_at_once() {
    let inbox = Arc::new(MemoryInbox::new());
    let (builder, mut calls) = worker_over(&inbox, u32::MAX);
    let worker = builder
        .max_age(Duration::ZERO)
        .first_retry(Duration::from_millis(10))
        .build()
        .spawn();
    let event = TestEvent::course_completed().build();
    inbox.accept(&event).await.unwrap();
    assert_eq!(next(&mut calls).await.1, 1);
    worker.shutdown(SOON).await;
    let entry = inbox.show(event.id()).await.unwrap().unwrap();
    // Without the age limit it would be pending, retried up to 20 times.
    assert_eq!((entry.state(), entry.attempts()), (EntryState::Dead, 1));
    assert_eq!(entry.last_error(), Some("failing call 1"));
}

/// Slow handlers holding most of the slots never delay a new entry: it is taken as soon as
/// the worker is woken, into a free slot, even one. (A version refilling only by half
/// batches left it pending until enough handlers finished.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_entry_is_taken_at_once_while_slow_handlers_hold_most_slots() {
    let inbox = Arc::new(MemoryInbox::new());
    let (tx, mut started) = mpsc::unbounded_channel();
    let hold = Arc::new(tokio::sync::Notify::new());
    let held = Arc::clone(&hold);
    let worker = Worker::builder(inbox.clone(), move |event: WebhookEvent| {
        let (tx, held) = (tx.clone(), Arc::clone(&held));
        async move {
            let _ = tx.send(event.id().to_owned());
            if event.event_type() == "COURSE_STARTED" {
                held.notified().await;
            }
            Ok::<(), String>(())
        }
    })
    .concurrency(16)
    .batch(16)
    .wake_on(inbox.waker())
    .poll_interval(Duration::from_secs(3600))
    .build()
    .spawn();
    // 15 slow handlers, one at a time: 1 slot left.
    for _ in 0..15 {
        let slow = TestEvent::course_started().build();
        inbox.accept(&slow).await.unwrap();
        assert_eq!(next(&mut started).await, slow.id());
    }
    let quick = TestEvent::course_completed().build();
    inbox.accept(&quick).await.unwrap();
    assert_eq!(next(&mut started).await, quick.id());
    hold.notify_waiters();
    worker.shutdown(SOON).await;
}

/// What the README promises of the defaults: 19 retries (20 attempts), from 1 s doubling to
/// at most 1 h, wait 4 to 8 hours in all, from the least jitter to the most.
#[test]
fn the_default_backoff_spans_four_to_eight_hours() {
    let (first, max) = (Duration::from_secs(1), Duration::from_secs(3600));
    let total = |unit| {
        (1..20)
            .map(|n| backoff(n, first, max, unit))
            .sum::<Duration>()
    };
    let hours = |d: Duration| d.as_secs_f64() / 3600.0;
    assert!((4.0..4.1).contains(&hours(total(0.0))), "{:?}", total(0.0));
    assert!((8.1..8.2).contains(&hours(total(1.0))), "{:?}", total(1.0));
}
