//! The conformance suite for [`Inbox`] implementations.
//!
//! [`run`] exercises an inbox against the rules in the [inbox module docs](crate::inbox):
//! accept and duplicates in every state (pending, running, dead, done); the entry's fields
//! and the event parsed back; fencing of complete, fail and release by a non-owner and by a
//! stale owner after its lease expired and another took the entry over; release; fail ->
//! the retry's schedule -> dead, and the retry of dead entries (one and all); exclusive
//! takes under concurrency ([`CONCURRENT_TAKERS`] takers, each entry to exactly one);
//! `list` and `show`; purge of done entries; [`MANY_IDS`] distinct ids; and `stats`
//! (counts by state, the age of the oldest pending entry). It panics,
//! naming the rule, at the first violation.
//!
//! The inbox must be **empty and used by nothing else** while the suite runs (`take` hands
//! out whatever is due): a new [`MemoryInbox`](crate::inbox::MemoryInbox), or a shared
//! inbox on a table of its own. Its only waits are a little longer than the short leases
//! and retry delays it sets itself ([`SHORT`]); everything else is ordered by awaiting the
//! inbox's answers.
//!
//! ```
//! use std::sync::Arc;
//! use knolyx_webhook_core::{inbox::MemoryInbox, testing::inbox_conformance};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! inbox_conformance::run(Arc::new(MemoryInbox::new())).await;
//! # }
//! ```

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Barrier;
use tokio::task::JoinSet;

use crate::event::WebhookEvent;
use crate::inbox::{Accepted, Entry, EntryState, Inbox, InboxStats, ListFilter};
use crate::store::{OwnerToken, SettleOutcome};
use crate::testing::TestEvent;

/// The short lease and retry delay the suite sets to test expiry and schedules.
pub const SHORT: Duration = Duration::from_millis(400);
/// How long the suite waits for a [`SHORT`] lease or delay to pass.
const WAIT: Duration = Duration::from_millis(600);
const LONG: Duration = Duration::from_secs(3600);
/// How many distinct ids the "many ids" check accepts and takes.
pub const MANY_IDS: usize = 2_000;
/// How many concurrent takers the exclusivity check runs.
pub const CONCURRENT_TAKERS: usize = 16;
/// How many entries the exclusivity check shares among them.
const SHARED_ENTRIES: usize = 300;

/// Runs every check against `inbox` (empty, and used by nothing else meanwhile), panicking
/// at the first broken rule.
pub async fn run(inbox: Arc<dyn Inbox>) {
    let prefix = format!("inbox-conformance-{}-", OwnerToken::generate());
    let id = |name: &str| format!("{prefix}{name}");
    let i = &*inbox;

    assert!(
        take(i, owner(), LONG, 1000).await.is_empty(),
        "inbox conformance: the inbox must start with nothing due (use an empty one)"
    );
    accept_and_duplicates(i, &id("accept")).await;
    fencing_and_takeover(i, &id("fencing")).await;
    release(i, &id("release")).await;
    retries_then_dead(i, &id("retries")).await;
    exclusive_takes(&inbox, &id("exclusive")).await;
    purge(i, &id("purge")).await;
    many_ids(&inbox, &id("many")).await;
    stats(i, &id("stats")).await;
}

fn owner() -> OwnerToken {
    OwnerToken::generate()
}

fn event(id: &str) -> WebhookEvent {
    TestEvent::course_payment_received().id(id).build()
}

async fn accept(inbox: &dyn Inbox, event: &WebhookEvent) -> Accepted {
    match inbox.accept(event).await {
        Ok(accepted) => accepted,
        Err(e) => panic!(
            "inbox conformance: accept({:?}) failed: {e} ({:?})",
            event.id(),
            e.kind()
        ),
    }
}

async fn take(inbox: &dyn Inbox, worker: OwnerToken, lease: Duration, limit: usize) -> Vec<Entry> {
    match inbox.take(worker, lease, limit).await {
        Ok(entries) => entries,
        Err(e) => panic!("inbox conformance: take failed: {e} ({:?})", e.kind()),
    }
}

/// Takes and expects exactly the entry `id`.
async fn take_one(inbox: &dyn Inbox, worker: OwnerToken, lease: Duration, id: &str) -> Entry {
    let mut taken = take(inbox, worker, lease, 10).await;
    let ids: Vec<&str> = taken.iter().map(Entry::id).collect();
    assert_eq!(
        ids,
        [id],
        "inbox conformance: take must hand out exactly the one due entry"
    );
    taken.remove(0)
}

/// Takes exactly the entries `expected` (id, attempt; sorted by id), and completes them.
async fn take_and_complete(inbox: &dyn Inbox, expected: &[(&str, u32)], rule: &str) {
    let worker = owner();
    let mut taken = take(inbox, worker, LONG, 10).await;
    taken.sort_by(|x, y| x.id().cmp(y.id()));
    let ids: Vec<(&str, u32)> = taken.iter().map(|e| (e.id(), e.attempts())).collect();
    assert_eq!(ids, expected, "inbox conformance: {rule}");
    for entry in &taken {
        assert_eq!(
            complete(inbox, entry.id(), worker).await,
            SettleOutcome::Settled
        );
    }
}

async fn show(inbox: &dyn Inbox, id: &str) -> Option<Entry> {
    match inbox.show(id).await {
        Ok(entry) => entry,
        Err(e) => panic!("inbox conformance: show({id:?}) failed: {e}"),
    }
}

async fn state(inbox: &dyn Inbox, id: &str) -> (EntryState, u32) {
    let entry = show(inbox, id)
        .await
        .unwrap_or_else(|| panic!("inbox conformance: {id:?} must be in the inbox"));
    (entry.state(), entry.attempts())
}

async fn complete(inbox: &dyn Inbox, id: &str, owner: OwnerToken) -> SettleOutcome {
    match inbox.complete(id, owner).await {
        Ok(outcome) => outcome,
        Err(e) => panic!("inbox conformance: complete({id:?}) failed: {e}"),
    }
}

async fn fail(
    inbox: &dyn Inbox,
    id: &str,
    owner: OwnerToken,
    error: &str,
    retry_in: Option<Duration>,
) -> SettleOutcome {
    match inbox.fail(id, owner, error, retry_in).await {
        Ok(outcome) => outcome,
        Err(e) => panic!("inbox conformance: fail({id:?}) failed: {e}"),
    }
}

async fn release_as(inbox: &dyn Inbox, id: &str, owner: OwnerToken) -> SettleOutcome {
    match inbox.release(id, owner).await {
        Ok(outcome) => outcome,
        Err(e) => panic!("inbox conformance: release({id:?}) failed: {e}"),
    }
}

async fn retry(inbox: &dyn Inbox, id: &str) -> bool {
    match inbox.retry(id).await {
        Ok(retried) => retried,
        Err(e) => panic!("inbox conformance: retry({id:?}) failed: {e}"),
    }
}

async fn list(inbox: &dyn Inbox, filter: ListFilter) -> Vec<Entry> {
    match inbox.list(filter).await {
        Ok(entries) => entries,
        Err(e) => panic!("inbox conformance: list failed: {e}"),
    }
}

async fn duplicate_in(inbox: &dyn Inbox, event: &WebhookEvent, state: &str) {
    assert_eq!(
        accept(inbox, event).await,
        Accepted::Duplicate,
        "inbox conformance: accepting an id the inbox holds ({state}) must be Duplicate"
    );
}

async fn accept_and_duplicates(inbox: &dyn Inbox, prefix: &str) {
    let (a, b) = (format!("{prefix}-a"), format!("{prefix}-b"));
    let (ea, eb) = (event(&a), event(&b));
    assert_eq!(
        accept(inbox, &ea).await,
        Accepted::Stored,
        "inbox conformance: accepting a new id must be Stored"
    );
    duplicate_in(inbox, &ea, "pending").await;
    let shown = show(inbox, &a)
        .await
        .expect("inbox conformance: show of an accepted id");
    assert_eq!(
        (
            shown.state(),
            shown.attempts(),
            shown.owner(),
            shown.last_error()
        ),
        (EntryState::Pending, 0, None, None),
        "inbox conformance: an accepted entry is pending, never tried"
    );
    assert!(
        show(inbox, &format!("{prefix}-absent")).await.is_none(),
        "inbox conformance: show of an unknown id must be None"
    );

    let worker = owner();
    let entry = take_one(inbox, worker, LONG, &a).await;
    assert_eq!(
        (entry.state(), entry.attempts(), entry.owner()),
        (EntryState::Running, 1, Some(worker)),
        "inbox conformance: a taken entry is running under its taker, attempt 1"
    );
    assert_eq!(entry.event_type(), "COURSE_PAYMENT_RECEIVED");
    assert_eq!(
        entry.body(),
        ea.raw(),
        "inbox conformance: the body must come back byte for byte"
    );
    assert_eq!(
        entry.event().ok().as_ref(),
        Some(&ea),
        "inbox conformance: the event must parse back from the body"
    );
    assert!(
        entry.lease_until().is_some(),
        "inbox conformance: a running entry has a lease"
    );
    assert!(
        take(inbox, owner(), LONG, 10).await.is_empty(),
        "inbox conformance: a running entry with a live lease must not be taken again"
    );
    duplicate_in(inbox, &ea, "running").await;

    assert_eq!(
        fail(inbox, &a, worker, "boom", Some(LONG)).await,
        SettleOutcome::Settled
    );
    duplicate_in(inbox, &ea, "pending, to retry later").await;
    assert!(
        take(inbox, owner(), LONG, 10).await.is_empty(),
        "inbox conformance: a pending entry whose next run is later must not be taken"
    );

    assert_eq!(accept(inbox, &eb).await, Accepted::Stored);
    let worker = owner();
    take_one(inbox, worker, LONG, &b).await;
    assert_eq!(
        fail(inbox, &b, worker, "fatal", None).await,
        SettleOutcome::Settled
    );
    assert_eq!(state(inbox, &b).await, (EntryState::Dead, 1));
    duplicate_in(inbox, &eb, "dead").await;
    assert!(
        retry(inbox, &b).await,
        "inbox conformance: retry of a dead entry must say it retried"
    );
    assert_eq!(
        state(inbox, &b).await,
        (EntryState::Pending, 0),
        "inbox conformance: a retried entry is pending, attempts reset"
    );
    assert!(
        !retry(inbox, &b).await,
        "inbox conformance: retry of a pending entry must change nothing"
    );
    let worker = owner();
    take_one(inbox, worker, LONG, &b).await;
    assert_eq!(complete(inbox, &b, worker).await, SettleOutcome::Settled);
    let done = show(inbox, &b).await.expect("a done entry is kept");
    assert_eq!(
        (done.state(), done.owner()),
        (EntryState::Done, None),
        "inbox conformance: a completed entry is done"
    );
    assert!(
        done.done_at().is_some(),
        "inbox conformance: done_at is set"
    );
    duplicate_in(inbox, &eb, "done").await;
    assert_eq!(
        complete(inbox, &b, worker).await,
        SettleOutcome::NotOwner,
        "inbox conformance: completing a done entry again must be NotOwner"
    );
    assert_eq!(
        fail(inbox, &b, worker, "late", None).await,
        SettleOutcome::NotOwner
    );
    assert_eq!(release_as(inbox, &b, worker).await, SettleOutcome::NotOwner);
    assert!(
        !retry(inbox, &b).await,
        "inbox conformance: retry of a done entry"
    );
    assert_eq!(
        state(inbox, &b).await,
        (EntryState::Done, 1),
        "inbox conformance: a done entry stays done"
    );
    for (filter, id) in [(EntryState::Done, &b), (EntryState::Pending, &a)] {
        let listed = list(inbox, ListFilter::all().state(filter).limit(1000)).await;
        assert!(
            listed.iter().any(|e| e.id() == id) && listed.iter().all(|e| e.state() == filter),
            "inbox conformance: list of state {filter} must hold {id:?} and only {filter} entries"
        );
    }
    let all = list(inbox, ListFilter::all().limit(1000)).await;
    assert!(all.iter().any(|e| e.id() == a) && all.iter().any(|e| e.id() == b));
    assert_eq!(
        list(inbox, ListFilter::all().limit(1)).await.len(),
        1,
        "inbox conformance: list must honour its limit"
    );
}

async fn fencing_and_takeover(inbox: &dyn Inbox, id: &str) {
    assert_eq!(accept(inbox, &event(id)).await, Accepted::Stored);
    let (stale, intruder) = (owner(), owner());
    assert_eq!(
        complete(inbox, id, stale).await,
        SettleOutcome::NotOwner,
        "inbox conformance: completing a pending entry must be NotOwner"
    );
    take_one(inbox, stale, SHORT, id).await;
    assert_eq!(
        complete(inbox, id, intruder).await,
        SettleOutcome::NotOwner,
        "inbox conformance: complete by a non-owner must be NotOwner"
    );
    assert_eq!(
        fail(inbox, id, intruder, "x", None).await,
        SettleOutcome::NotOwner,
        "inbox conformance: fail by a non-owner must be NotOwner"
    );
    assert_eq!(
        release_as(inbox, id, intruder).await,
        SettleOutcome::NotOwner,
        "inbox conformance: release by a non-owner must be NotOwner"
    );
    assert_eq!(state(inbox, id).await, (EntryState::Running, 1));
    tokio::time::sleep(WAIT).await;
    assert_eq!(
        complete(inbox, id, stale).await,
        SettleOutcome::NotOwner,
        "inbox conformance: complete after the lease expired must be NotOwner"
    );
    let new = owner();
    let taken = take_one(inbox, new, LONG, id).await;
    assert_eq!(
        (taken.attempts(), taken.owner()),
        (2, Some(new)),
        "inbox conformance: take after the lease expired must take it over, attempt 2"
    );
    for (what, outcome) in [
        ("complete", complete(inbox, id, stale).await),
        ("fail", fail(inbox, id, stale, "stale", Some(LONG)).await),
        ("release", release_as(inbox, id, stale).await),
    ] {
        assert_eq!(
            outcome,
            SettleOutcome::NotOwner,
            "inbox conformance: {what} by the stale owner after a takeover must be NotOwner"
        );
    }
    assert_eq!(
        (
            state(inbox, id).await,
            show(inbox, id).await.and_then(|e| e.owner())
        ),
        ((EntryState::Running, 2), Some(new)),
        "inbox conformance: the stale owner must change nothing"
    );
    assert_eq!(complete(inbox, id, new).await, SettleOutcome::Settled);
}

async fn release(inbox: &dyn Inbox, id: &str) {
    assert_eq!(accept(inbox, &event(id)).await, Accepted::Stored);
    let first = owner();
    take_one(inbox, first, LONG, id).await;
    assert_eq!(
        release_as(inbox, id, first).await,
        SettleOutcome::Settled,
        "inbox conformance: the owner's release must be Settled"
    );
    assert_eq!(
        release_as(inbox, id, first).await,
        SettleOutcome::NotOwner,
        "inbox conformance: a second release must be NotOwner"
    );
    let shown = show(inbox, id).await.expect("a released entry is kept");
    assert_eq!(
        (shown.state(), shown.owner()),
        (EntryState::Pending, None),
        "inbox conformance: a released entry is pending"
    );
    let second = owner();
    let taken = take_one(inbox, second, LONG, id).await;
    assert_eq!(
        taken.attempts(),
        2,
        "inbox conformance: a released entry is due at once, and the attempt counts"
    );
    assert_eq!(complete(inbox, id, first).await, SettleOutcome::NotOwner);
    assert_eq!(complete(inbox, id, second).await, SettleOutcome::Settled);
}

async fn retries_then_dead(inbox: &dyn Inbox, id: &str) {
    assert_eq!(accept(inbox, &event(id)).await, Accepted::Stored);
    let worker = owner();
    take_one(inbox, worker, LONG, id).await;
    assert_eq!(
        fail(inbox, id, worker, "first failure", Some(SHORT)).await,
        SettleOutcome::Settled
    );
    let failed = show(inbox, id).await.expect("a failed entry is kept");
    assert_eq!(
        (
            failed.state(),
            failed.attempts(),
            failed.last_error(),
            failed.owner()
        ),
        (EntryState::Pending, 1, Some("first failure"), None),
        "inbox conformance: a failed attempt with a retry is pending, its error kept"
    );
    let scheduled = failed
        .next_run_at()
        .and_then(|at| at.duration_since(failed.updated_at()).ok());
    assert!(
        scheduled.is_some_and(|d| d + Duration::from_millis(5) >= SHORT),
        "inbox conformance: the retry must be scheduled after the delay asked for \
         (next run {:?} after the failure)",
        scheduled
    );
    assert!(
        take(inbox, owner(), LONG, 10).await.is_empty(),
        "inbox conformance: a retry must not be due before its delay"
    );
    tokio::time::sleep(WAIT).await;
    let worker = owner();
    let again = take_one(inbox, worker, LONG, id).await;
    assert_eq!(
        again.attempts(),
        2,
        "inbox conformance: the retry is attempt 2"
    );
    assert_eq!(
        fail(inbox, id, worker, "second failure", None).await,
        SettleOutcome::Settled
    );
    let dead = show(inbox, id).await.expect("a dead entry is kept");
    assert_eq!(
        (dead.state(), dead.attempts(), dead.last_error()),
        (EntryState::Dead, 2, Some("second failure")),
        "inbox conformance: a failure without retry is dead, its last error kept"
    );
    assert!(
        take(inbox, owner(), LONG, 10).await.is_empty(),
        "inbox conformance: a dead entry must never be taken"
    );
    let dead_listed = list(inbox, ListFilter::all().state(EntryState::Dead)).await;
    assert!(dead_listed.iter().any(|e| e.id() == id));
    let other = format!("{id}-other");
    assert_eq!(accept(inbox, &event(&other)).await, Accepted::Stored);
    let worker = owner();
    take_one(inbox, worker, LONG, &other).await;
    assert_eq!(
        fail(inbox, &other, worker, "also", None).await,
        SettleOutcome::Settled
    );
    let retried = match inbox.retry_all_dead().await {
        Ok(n) => n,
        Err(e) => panic!("inbox conformance: retry_all_dead failed: {e}"),
    };
    assert_eq!(
        retried, 2,
        "inbox conformance: retry_all_dead must retry every dead entry"
    );
    assert!(
        list(inbox, ListFilter::all().state(EntryState::Dead))
            .await
            .is_empty()
    );
    take_and_complete(
        inbox,
        &[(id, 1), (&other, 1)],
        "retried entries are due at once, attempts reset",
    )
    .await;
}

async fn exclusive_takes(inbox: &Arc<dyn Inbox>, prefix: &str) {
    for n in 0..SHARED_ENTRIES {
        assert_eq!(
            accept(&**inbox, &event(&format!("{prefix}-{n}"))).await,
            Accepted::Stored
        );
    }
    let barrier = Arc::new(Barrier::new(CONCURRENT_TAKERS));
    let mut takers = JoinSet::new();
    for _ in 0..CONCURRENT_TAKERS {
        let (inbox, barrier) = (Arc::clone(inbox), Arc::clone(&barrier));
        takers.spawn(async move {
            let worker = owner();
            let mut mine = Vec::new();
            barrier.wait().await;
            loop {
                let taken = take(&*inbox, worker, LONG, 7).await;
                if taken.is_empty() {
                    return (worker, mine);
                }
                mine.extend(taken.into_iter().map(|e| e.id().to_owned()));
            }
        });
    }
    let mut given: HashMap<String, usize> = HashMap::new();
    let mut owners = Vec::new();
    while let Some(joined) = takers.join_next().await {
        let (worker, mine) = joined.expect("a taker panicked");
        for id in &mine {
            *given.entry(id.clone()).or_default() += 1;
        }
        owners.push((worker, mine));
    }
    let twice: Vec<_> = given.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "inbox conformance: concurrent takes handed the same entries to several takers: {twice:?}"
    );
    assert_eq!(
        given.len(),
        SHARED_ENTRIES,
        "inbox conformance: concurrent takers together must take every due entry"
    );
    for (worker, mine) in owners {
        for id in mine {
            assert_eq!(
                complete(&**inbox, &id, worker).await,
                SettleOutcome::Settled,
                "inbox conformance: each taker must own what it took"
            );
        }
    }
}

async fn purge(inbox: &dyn Inbox, id: &str) {
    let e = event(id);
    assert_eq!(accept(inbox, &e).await, Accepted::Stored);
    let worker = owner();
    take_one(inbox, worker, LONG, id).await;
    assert_eq!(complete(inbox, id, worker).await, SettleOutcome::Settled);
    let purge = |older_than| async move {
        match inbox.purge_done(older_than).await {
            Ok(n) => n,
            Err(e) => panic!("inbox conformance: purge_done failed: {e}"),
        }
    };
    assert_eq!(
        purge(LONG).await,
        0,
        "inbox conformance: purge_done must keep entries done more recently"
    );
    assert!(show(inbox, id).await.is_some());
    let pending = format!("{id}-pending");
    assert_eq!(accept(inbox, &event(&pending)).await, Accepted::Stored);
    assert!(
        purge(Duration::ZERO).await >= 1,
        "inbox conformance: purge_done(0) must delete the done entries"
    );
    assert!(
        show(inbox, id).await.is_none(),
        "inbox conformance: a purged entry is gone"
    );
    assert!(
        list(
            inbox,
            ListFilter::all().state(EntryState::Done).limit(10_000)
        )
        .await
        .is_empty(),
        "inbox conformance: purge_done(0) must delete every done entry"
    );
    assert_eq!(
        state(inbox, &pending).await,
        (EntryState::Pending, 0),
        "inbox conformance: purge_done must leave entries not done alone"
    );
    assert_eq!(
        accept(inbox, &e).await,
        Accepted::Stored,
        "inbox conformance: a purged id is stored anew"
    );
    take_and_complete(
        inbox,
        &[(id, 1), (&pending, 1)],
        "a purged id stored anew is due, as the pending one",
    )
    .await;
}

async fn many_ids(inbox: &Arc<dyn Inbox>, prefix: &str) {
    let ids: Arc<Vec<String>> = Arc::new((0..MANY_IDS).map(|n| format!("{prefix}-{n}")).collect());
    for expect in [Accepted::Stored, Accepted::Duplicate] {
        let mut tasks = JoinSet::new();
        for part in 0..16 {
            let (inbox, ids) = (Arc::clone(inbox), Arc::clone(&ids));
            tasks.spawn(async move {
                for id in ids.iter().skip(part).step_by(16) {
                    assert_eq!(
                        accept(&*inbox, &event(id)).await,
                        expect,
                        "inbox conformance: with many ids, each is {expect:?}"
                    );
                }
            });
        }
        while let Some(done) = tasks.join_next().await {
            done.expect("an accepting task panicked");
        }
    }
    let worker = owner();
    let mut seen = std::collections::HashSet::new();
    loop {
        let taken = take(&**inbox, worker, LONG, 250).await;
        if taken.is_empty() {
            break;
        }
        for entry in taken {
            assert!(
                seen.insert(entry.id().to_owned()),
                "inbox conformance: {:?} taken twice",
                entry.id()
            );
        }
    }
    assert_eq!(
        seen.len(),
        MANY_IDS,
        "inbox conformance: every one of many ids must be taken"
    );
    for id in ids.iter() {
        assert_eq!(complete(&**inbox, id, worker).await, SettleOutcome::Settled);
    }
}

async fn counts(inbox: &dyn Inbox) -> InboxStats {
    match inbox.stats().await {
        Ok(stats) => stats,
        Err(e) => panic!("inbox conformance: stats failed: {e} ({:?})", e.kind()),
    }
}

/// `stats` counts every state and ages the oldest pending entry.
async fn stats(inbox: &dyn Inbox, prefix: &str) {
    let base = counts(inbox).await;
    let (a, b) = (format!("{prefix}a"), format!("{prefix}b"));
    let accepted = std::time::Instant::now();
    assert_eq!(accept(inbox, &event(&a)).await, Accepted::Stored);
    tokio::time::sleep(SHORT).await;
    let now = counts(inbox).await;
    assert_eq!(
        (now.pending, now.running, now.dead, now.done),
        (base.pending + 1, base.running, base.dead, base.done),
        "inbox conformance: stats must count an accepted entry as pending"
    );
    let age = now
        .oldest_pending
        .expect("inbox conformance: stats must age the oldest pending entry");
    assert!(
        age >= SHORT - Duration::from_millis(50),
        "inbox conformance: the oldest pending entry was accepted {SHORT:?} ago, not {age:?}"
    );
    if base.pending == 0 {
        assert!(
            age <= accepted.elapsed() + Duration::from_secs(1),
            "inbox conformance: the oldest pending entry is younger than {age:?}"
        );
    }
    let worker = owner();
    take_one(inbox, worker, LONG, &a).await;
    let now = counts(inbox).await;
    assert_eq!(
        (now.pending, now.running),
        (base.pending, base.running + 1),
        "inbox conformance: stats must count a taken entry as running"
    );
    assert_eq!(
        fail(inbox, &a, worker, "boom", None).await,
        SettleOutcome::Settled
    );
    assert_eq!(accept(inbox, &event(&b)).await, Accepted::Stored);
    take_and_complete(inbox, &[(&b, 1)], "stats: take the one entry due").await;
    let now = counts(inbox).await;
    assert_eq!(
        (now.pending, now.running, now.dead, now.done),
        (base.pending, base.running, base.dead + 1, base.done + 1),
        "inbox conformance: stats must count dead and done entries"
    );
    if base.pending == 0 {
        assert_eq!(
            now.oldest_pending, None,
            "inbox conformance: no entry is pending: no oldest pending age"
        );
    }
}
