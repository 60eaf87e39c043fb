//! Claims at shutdown: what a runtime that ends cannot settle is said, never claimed done;
//! `drain` waits for what is settling in the background; `release_in_flight` frees the ids
//! of handlers still running.

use std::sync::Arc;
use std::time::Duration;

use knolyx_webhook_core::store::MemoryStore;
use knolyx_webhook_core::testing::{Fault, FaultyStore, StoreOp, Times};
use knolyx_webhook_core::{Settled, WebhookReceiver};

use crate::support::*;

fn capturing() -> (Capture, tracing::subscriber::DefaultGuard) {
    let capture = Capture::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(capture.clone())
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .finish();
    (capture, tracing::subscriber::set_default(subscriber))
}

/// A delivery whose handler is still running when its runtime shuts down: the release its
/// settlement asks for on drop cannot run any more. The log must say so, not that it is
/// releasing, and the store shows why: the id is still in progress.
#[test]
fn a_release_the_ending_runtime_cannot_run_is_not_logged_as_done() {
    let (capture, _guard) = capturing();
    let store = Arc::new(MemoryStore::new());
    let r = builder().shared_store(store.clone()).build().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (started, running) = tokio::sync::oneshot::channel();
    runtime.spawn({
        let r = r.clone();
        async move {
            let delivery = expect_deliver(put(&r, course_started("m-deploy")).await);
            let _ = started.send(());
            std::future::pending::<()>().await; // a handler still running at the deploy
            drop(delivery);
        }
    });
    runtime.block_on(running).unwrap();
    drop(runtime); // the task, and the settlement in it, are dropped by the shutdown

    let logged = capture.text();
    let check = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let state_now = check.block_on(state(&*store, "m-deploy"));
    assert_eq!(
        state_now,
        State::InProgress,
        "nothing could release it: {logged}"
    );
    assert!(
        !logged.contains("releasing the claim"),
        "logged a release that never happened: {logged}"
    );
    assert!(
        logged.contains("runtime shut down before the claim could be released"),
        "{logged}"
    );
    assert_eq!(
        r.in_flight(),
        0,
        "the registry holds nothing that could still settle"
    );
}

#[tokio::test]
async fn drain_waits_for_a_release_running_in_the_background() {
    let store = FaultyStore::new(MemoryStore::new());
    let r = builder().store(store.clone()).build().unwrap();
    // The release on drop is held in the store until the test lets it go.
    store.inject(StoreOp::Release, Fault::Hold, Times::UntilReset);
    let delivery = expect_deliver(put(&r, course_started("m-drain")).await);
    drop(delivery); // a panicking handler, or a dropped request
    assert_eq!(r.in_flight(), 1);

    let drained = tokio::spawn(r.drain());
    store
        .wait_for(|c| c.op == StoreOp::Release && c.id == "m-drain")
        .await;
    assert!(
        !drained.is_finished(),
        "drain returned with a release still running"
    );
    store.reset_all();
    tokio::time::timeout(Duration::from_secs(10), drained)
        .await
        .expect("drain returns once the release is done")
        .unwrap();
    assert_eq!(state(store.inner(), "m-drain").await, State::Absent);
    assert_eq!(r.in_flight(), 0);
}

#[tokio::test]
async fn drain_returns_at_once_when_nothing_is_in_flight() {
    let r = receiver();
    let delivery = expect_deliver(put(&r, course_started("m-quick")).await);
    let (_, settlement) = delivery.into_parts();
    assert_eq!(r.in_flight(), 1);
    settlement.settle(200).await;
    assert_eq!(r.in_flight(), 0);
    tokio::time::timeout(Duration::from_secs(10), r.drain())
        .await
        .expect("nothing to wait for");
}

#[tokio::test]
async fn release_in_flight_frees_the_ids_of_handlers_still_running() {
    let store = Arc::new(MemoryStore::new());
    let r = builder().shared_store(store.clone()).build().unwrap();
    let first = expect_deliver(put(&r, course_started("m-run-1")).await);
    let second = expect_deliver(put(&r, course_started("m-run-2")).await);
    assert_eq!(r.in_flight(), 2, "two handlers are running");

    assert_eq!(r.release_in_flight().await, 2);
    // Another replica on the same store runs the retransmissions at once.
    let other: WebhookReceiver = builder().shared_store(store.clone()).build().unwrap();
    let retry = expect_deliver(put(&other, course_started("m-run-1")).await);
    // The first handler finishes late: its claim is no longer its own.
    let (_, late) = first.into_parts();
    assert_eq!(late.settle(200).await, Settled::LeaseLost);
    let (_, retry) = retry.into_parts();
    assert_eq!(retry.settle(200).await, Settled::Completed);
    drop(second);
    tokio::time::timeout(Duration::from_secs(10), r.drain())
        .await
        .expect("every claim settled");
}
