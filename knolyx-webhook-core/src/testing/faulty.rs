//! [`FaultyStore`]: an idempotency store wrapper that fails, times out or slows down on
//! command, and reports every call it sees, so that tests can drive the pipeline through
//! store faults and wait for "the release happened" without sleeping.
//!
//! ```
//! use std::time::Duration;
//!
//! use bytes::Bytes;
//! use http::{HeaderMap, Method, StatusCode};
//! use knolyx_webhook_core::store::{ClaimOutcome, MemoryStore, StoreErrorKind};
//! use knolyx_webhook_core::testing::{CallOutcome, FaultyStore, Fault, StoreOp, TestEvent, Times};
//! use knolyx_webhook_core::{Accepted, WebhookReceiver};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // Cheap to clone: the receiver gets one handle, the test keeps another.
//! let store = FaultyStore::new(MemoryStore::new());
//! let receiver = WebhookReceiver::builder().token("t0ken").store(store.clone()).build()?;
//! let mut headers = HeaderMap::new();
//! headers.insert("x-webhook-security-token", "t0ken".parse()?);
//! let body = Bytes::from(TestEvent::course_completed().id("m-1").to_body());
//!
//! // The next claim fails: the pipeline answers 503 (fail closed), the handler does not run.
//! store.inject(StoreOp::Claim, Fault::Unavailable, Times::Next(1));
//! let rejection = receiver.receive(&Method::PUT, &headers, body.clone()).await.unwrap_err();
//! assert_eq!(rejection.status(), StatusCode::SERVICE_UNAVAILABLE);
//!
//! // The store has recovered: the retransmission is delivered.
//! let Ok(Accepted::Deliver(delivery)) = receiver.receive(&Method::PUT, &headers, body).await
//! else { panic!("expected a delivery") };
//! let (_event, settlement) = delivery.into_parts();
//! settlement.settle(200).await;
//!
//! // Every call is reported, with its fault and its outcome.
//! let calls = store.calls();
//! assert_eq!(calls[0].op, StoreOp::Claim);
//! assert_eq!(calls[0].fault, Some(Fault::Unavailable));
//! assert_eq!(calls[0].outcome, CallOutcome::Error(StoreErrorKind::Unavailable));
//! assert_eq!(calls[1].outcome, CallOutcome::Claim(ClaimOutcome::Claimed));
//! // Wait for a call (here already made) instead of sleeping:
//! let complete = store.wait_for(|c| c.op == StoreOp::Complete && c.id == "m-1").await;
//! assert_eq!(complete.owner, calls[1].owner);
//!
//! // Calls can also be held until the test lets them go.
//! store.inject(StoreOp::Claim, Fault::Hold, Times::UntilReset);
//! let held = tokio::spawn({
//!     let store = store.clone();
//!     async move {
//!         use knolyx_webhook_core::store::{IdempotencyStore, OwnerToken};
//!         store.claim("m-2", OwnerToken::generate(), Duration::from_secs(60)).await
//!     }
//! });
//! store.wait_for(|c| c.id == "m-2" && c.outcome == CallOutcome::Pending).await;
//! store.reset_all(); // no more faults, and the held claim goes on to the inner store
//! assert_eq!(held.await?.unwrap(), ClaimOutcome::Claimed);
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::watch;

use crate::store::{
    ClaimOutcome, IdempotencyStore, OwnerToken, SettleOutcome, StoreError, StoreErrorKind,
    StoreResult, async_trait,
};

/// A kind of store operation, to aim a [`Fault`] at and to tell [`StoreCall`]s apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StoreOp {
    /// [`IdempotencyStore::claim`].
    Claim,
    /// [`IdempotencyStore::complete`].
    Complete,
    /// [`IdempotencyStore::release`].
    Release,
}

/// What a [`FaultyStore`] does to a call instead of (or before) passing it on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// Fail at once with a [`StoreErrorKind::Unavailable`] error; the inner store is not
    /// called.
    Unavailable,
    /// Wait this long, then fail with a [`StoreErrorKind::Timeout`] error; the inner store is
    /// not called.
    Timeout(Duration),
    /// Wait until [`FaultyStore::resume`] (or [`reset_all`](FaultyStore::reset_all)), then
    /// fail with a [`StoreErrorKind::Timeout`] error; the inner store is not called.
    Hang,
    /// Wait this long, then pass the call on to the inner store: a slow store.
    Delay(Duration),
    /// Wait until [`FaultyStore::resume`] (or [`reset_all`](FaultyStore::reset_all)), then
    /// pass the call on to the inner store: a store as slow as the test wants.
    Hold,
}

/// How many calls a fault applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Times {
    /// The next `n` calls of the operation; later calls pass on untouched.
    Next(usize),
    /// Every call, until [`FaultyStore::reset`] or [`FaultyStore::reset_all`].
    UntilReset,
}

/// How a reported call ended (so far).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CallOutcome {
    /// Not finished yet: waiting on its fault or on the inner store.
    Pending,
    /// A claim answered.
    Claim(ClaimOutcome),
    /// A complete or release answered.
    Settle(SettleOutcome),
    /// The call failed with an error of this kind (injected, or from the inner store).
    Error(StoreErrorKind),
    /// The caller dropped the call before it finished (its request was dropped, say). The
    /// inner store may or may not have applied it: with [`Fault::Hold`], [`Fault::Hang`],
    /// [`Fault::Delay`] and [`Fault::Timeout`] dropped while waiting, it did not.
    Cancelled,
}

/// One call a [`FaultyStore`] received, as reported by [`FaultyStore::calls`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreCall {
    /// The call's position: 0 for the first call the store received, then 1, 2…
    pub seq: usize,
    /// Which operation.
    pub op: StoreOp,
    /// The message id.
    pub id: String,
    /// The owner token the caller passed.
    pub owner: OwnerToken,
    /// The fault applied to it, if any.
    pub fault: Option<Fault>,
    /// How it ended, or [`CallOutcome::Pending`].
    pub outcome: CallOutcome,
}

/// An [`IdempotencyStore`] wrapper that fails, times out or slows down on command, per
/// operation ([`StoreOp`]), for the next N calls or until reset ([`Times`]); and reports
/// every call and its outcome ([`calls`](Self::calls), [`wait_for`](Self::wait_for),
/// [`wait_until`](Self::wait_until)). See the [module docs](self) for an example.
///
/// Cloning is cheap, and every clone shares the faults and the reports: hand one clone to
/// the receiver ([`WebhookReceiverBuilder::store`](crate::WebhookReceiverBuilder::store))
/// and keep another in the test.
///
/// Faults that wait ([`Fault::Timeout`], [`Fault::Delay`]) use Tokio's timer; those that
/// wait to be told ([`Fault::Hold`], [`Fault::Hang`]) wait for [`resume`](Self::resume),
/// which lets go of every call waiting *at that moment* (wait for the call's
/// [`CallOutcome::Pending`] report first, to be sure it is there).
pub struct FaultyStore<S> {
    shared: Arc<Shared<S>>,
}

struct Shared<S> {
    inner: S,
    state: Mutex<State>,
    /// Bumped on every change to the reports.
    reports: watch::Sender<u64>,
    /// Bumped by `resume`.
    resumed: watch::Sender<u64>,
}

#[derive(Default)]
struct State {
    faults: [Option<(Fault, Times)>; 3],
    calls: Vec<StoreCall>,
}

impl<S> Clone for FaultyStore<S> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for FaultyStore<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.shared.lock();
        f.debug_struct("FaultyStore")
            .field("inner", &self.shared.inner)
            .field("faults", &state.faults)
            .field("calls", &state.calls.len())
            .finish()
    }
}

fn slot(op: StoreOp) -> usize {
    match op {
        StoreOp::Claim => 0,
        StoreOp::Complete => 1,
        StoreOp::Release => 2,
    }
}

impl<S> Shared<S> {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn bump(&self) {
        self.reports.send_modify(|v| *v = v.wrapping_add(1));
    }
}

impl<S> FaultyStore<S> {
    /// Wraps `inner`, without faults.
    pub fn new(inner: S) -> Self {
        Self {
            shared: Arc::new(Shared {
                inner,
                state: Mutex::new(State::default()),
                reports: watch::Sender::new(0),
                resumed: watch::Sender::new(0),
            }),
        }
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.shared.inner
    }

    /// From now on, applies `fault` to calls of `op`, `times` over. Replaces the fault set
    /// earlier for `op`, if any.
    pub fn inject(&self, op: StoreOp, fault: Fault, times: Times) {
        if times == Times::Next(0) {
            return self.reset(op);
        }
        self.shared.lock().faults[slot(op)] = Some((fault, times));
    }

    /// Calls of `op` pass on untouched again. Calls already waiting on a fault keep waiting
    /// ([`resume`](Self::resume) lets them go).
    pub fn reset(&self, op: StoreOp) {
        self.shared.lock().faults[slot(op)] = None;
    }

    /// No more faults on any operation, and every call waiting on [`Fault::Hold`] or
    /// [`Fault::Hang`] is let go.
    pub fn reset_all(&self) {
        self.shared.lock().faults = Default::default();
        self.resume();
    }

    /// Lets go of every call waiting on [`Fault::Hold`] (it goes on to the inner store) or
    /// [`Fault::Hang`] (it fails with a timeout). Calls arriving later wait for the next
    /// `resume`.
    pub fn resume(&self) {
        self.shared.resumed.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// Every call received so far, in arrival order, with its outcome so far.
    pub fn calls(&self) -> Vec<StoreCall> {
        self.shared.lock().calls.clone()
    }

    /// Waits until `done` holds for the calls received so far (all of them, in arrival
    /// order, with their outcomes so far), and returns them. Checked at once, then after
    /// every new call and every outcome: no sleeping, no missed report.
    pub async fn wait_until(&self, mut done: impl FnMut(&[StoreCall]) -> bool) -> Vec<StoreCall> {
        let mut changes = self.shared.reports.subscribe();
        loop {
            {
                let state = self.shared.lock();
                if done(&state.calls) {
                    return state.calls.clone();
                }
            }
            // The sender lives as long as `self`: `changed` cannot fail while we wait.
            let _ = changes.changed().await;
        }
    }

    /// Waits until a call matching `matches` has been reported, and returns the first such.
    /// (A call is reported when it arrives, as [`CallOutcome::Pending`], and again when it
    /// ends: match on the outcome to wait for the end.)
    pub async fn wait_for(&self, mut matches: impl FnMut(&StoreCall) -> bool) -> StoreCall {
        let calls = self
            .wait_until(|calls| calls.iter().any(&mut matches))
            .await;
        calls
            .into_iter()
            .find(matches)
            .expect("wait_until returned once a call matched")
    }

    /// Records the call's arrival and takes one use of the fault aimed at `op`.
    fn arrive(&self, op: StoreOp, id: &str, owner: OwnerToken) -> (Report<S>, Option<Fault>) {
        let mut state = self.shared.lock();
        let fault = match &mut state.faults[slot(op)] {
            Some((fault, Times::UntilReset)) => Some(*fault),
            entry @ Some((_, Times::Next(_))) => {
                let Some((fault, Times::Next(n))) = entry else {
                    unreachable!()
                };
                let fault = *fault;
                *n = n.saturating_sub(1);
                if *n == 0 {
                    *entry = None;
                }
                Some(fault)
            }
            None => None,
        };
        let seq = state.calls.len();
        state.calls.push(StoreCall {
            seq,
            op,
            id: id.to_owned(),
            owner,
            fault,
            outcome: CallOutcome::Pending,
        });
        drop(state);
        self.shared.bump();
        (
            Report {
                shared: Arc::clone(&self.shared),
                seq,
                finished: false,
            },
            fault,
        )
    }

    /// Runs one call: applies its fault, else (or then) `forward` to the inner store, and
    /// reports its outcome.
    async fn call<T, F>(
        &self,
        op: StoreOp,
        id: &str,
        owner: OwnerToken,
        forward: impl FnOnce() -> F,
        outcome: impl FnOnce(T) -> CallOutcome,
    ) -> StoreResult<T>
    where
        T: Copy,
        F: Future<Output = StoreResult<T>>,
    {
        // Subscribed before the call is reported, so a `resume` made after the test saw
        // the `Pending` report always lets this call go.
        let mut resumed = self.shared.resumed.subscribe();
        let (mut report, fault) = self.arrive(op, id, owner);
        let result = match fault {
            Some(Fault::Unavailable) => Err(StoreError::unavailable(
                "FaultyStore: injected Fault::Unavailable",
            )),
            Some(Fault::Timeout(after)) => {
                tokio::time::sleep(after).await;
                Err(StoreError::timeout(after))
            }
            Some(Fault::Hang) => {
                let _ = resumed.changed().await;
                Err(StoreError::new(
                    StoreErrorKind::Timeout,
                    "FaultyStore: injected Fault::Hang",
                    None,
                ))
            }
            Some(Fault::Delay(delay)) => {
                tokio::time::sleep(delay).await;
                forward().await
            }
            Some(Fault::Hold) => {
                let _ = resumed.changed().await;
                forward().await
            }
            None => forward().await,
        };
        report.finish(match &result {
            Ok(value) => outcome(*value),
            Err(error) => CallOutcome::Error(error.kind()),
        });
        result
    }
}

/// Reports a call's end; reports it [`CallOutcome::Cancelled`] if dropped before that.
struct Report<S> {
    shared: Arc<Shared<S>>,
    seq: usize,
    finished: bool,
}

impl<S> Report<S> {
    fn finish(&mut self, outcome: CallOutcome) {
        self.finished = true;
        self.set(outcome);
    }

    fn set(&self, outcome: CallOutcome) {
        self.shared.lock().calls[self.seq].outcome = outcome;
        self.shared.bump();
    }
}

impl<S> Drop for Report<S> {
    fn drop(&mut self) {
        if !self.finished {
            self.set(CallOutcome::Cancelled);
        }
    }
}

#[async_trait]
impl<S: IdempotencyStore> IdempotencyStore for FaultyStore<S> {
    async fn claim(
        &self,
        id: &str,
        owner: OwnerToken,
        lease: Duration,
    ) -> StoreResult<ClaimOutcome> {
        let inner = &self.shared.inner;
        self.call(
            StoreOp::Claim,
            id,
            owner,
            || inner.claim(id, owner, lease),
            CallOutcome::Claim,
        )
        .await
    }

    async fn complete(
        &self,
        id: &str,
        owner: OwnerToken,
        retention: Duration,
    ) -> StoreResult<SettleOutcome> {
        let inner = &self.shared.inner;
        self.call(
            StoreOp::Complete,
            id,
            owner,
            || inner.complete(id, owner, retention),
            CallOutcome::Settle,
        )
        .await
    }

    async fn release(&self, id: &str, owner: OwnerToken) -> StoreResult<SettleOutcome> {
        let inner = &self.shared.inner;
        self.call(
            StoreOp::Release,
            id,
            owner,
            || inner.release(id, owner),
            CallOutcome::Settle,
        )
        .await
    }
    /// The operator's operations pass through, without faults and not recorded.
    async fn inspect(&self, id: &str) -> StoreResult<crate::store::IdState> {
        self.shared.inner.inspect(id).await
    }

    async fn force_release(&self, id: &str) -> StoreResult<bool> {
        self.shared.inner.force_release(id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    const LEASE: Duration = Duration::from_secs(60);

    #[tokio::test]
    async fn faults_apply_per_operation_for_n_calls_or_until_reset() {
        let store = FaultyStore::new(MemoryStore::new());
        let owner = OwnerToken::generate();
        store.inject(StoreOp::Claim, Fault::Unavailable, Times::Next(2));
        store.inject(
            StoreOp::Complete,
            Fault::Timeout(Duration::ZERO),
            Times::UntilReset,
        );
        for _ in 0..2 {
            let err = store.claim("a", owner, LEASE).await.unwrap_err();
            assert_eq!(err.kind(), StoreErrorKind::Unavailable);
        }
        assert_eq!(
            store.claim("a", owner, LEASE).await.unwrap(),
            ClaimOutcome::Claimed
        );
        for _ in 0..3 {
            let err = store.complete("a", owner, LEASE).await.unwrap_err();
            assert_eq!(err.kind(), StoreErrorKind::Timeout);
        }
        // Release is untouched.
        assert_eq!(
            store.release("a", owner).await.unwrap(),
            SettleOutcome::Settled
        );
        store.reset(StoreOp::Complete);
        assert_eq!(
            store.claim("a", owner, LEASE).await.unwrap(),
            ClaimOutcome::Claimed
        );
        assert_eq!(
            store.complete("a", owner, LEASE).await.unwrap(),
            SettleOutcome::Settled
        );
        let outcomes: Vec<_> = store.calls().iter().map(|c| (c.op, c.outcome)).collect();
        use CallOutcome::*;
        use StoreErrorKind::*;
        assert_eq!(
            outcomes,
            [
                (StoreOp::Claim, Error(Unavailable)),
                (StoreOp::Claim, Error(Unavailable)),
                (StoreOp::Claim, Claim(ClaimOutcome::Claimed)),
                (StoreOp::Complete, Error(Timeout)),
                (StoreOp::Complete, Error(Timeout)),
                (StoreOp::Complete, Error(Timeout)),
                (StoreOp::Release, Settle(SettleOutcome::Settled)),
                (StoreOp::Claim, Claim(ClaimOutcome::Claimed)),
                (StoreOp::Complete, Settle(SettleOutcome::Settled)),
            ]
        );
        assert!(store.calls().iter().enumerate().all(|(i, c)| c.seq == i));
    }

    #[tokio::test]
    async fn held_and_hung_calls_wait_for_resume_and_dropped_calls_are_reported() {
        let store = FaultyStore::new(MemoryStore::new());
        store.inject(StoreOp::Claim, Fault::Hold, Times::Next(1));
        store.inject(StoreOp::Release, Fault::Hang, Times::Next(1));
        let owner = OwnerToken::generate();
        let claim = tokio::spawn({
            let store = store.clone();
            async move { store.claim("h", owner, LEASE).await }
        });
        let held = store
            .wait_for(|c| c.op == StoreOp::Claim && c.outcome == CallOutcome::Pending)
            .await;
        assert_eq!((held.fault, held.owner), (Some(Fault::Hold), owner));
        store.resume();
        assert_eq!(claim.await.unwrap().unwrap(), ClaimOutcome::Claimed);

        let release = tokio::spawn({
            let store = store.clone();
            async move { store.release("h", owner).await }
        });
        store
            .wait_for(|c| c.op == StoreOp::Release && c.outcome == CallOutcome::Pending)
            .await;
        store.resume();
        let err = release.await.unwrap().unwrap_err();
        assert_eq!(err.kind(), StoreErrorKind::Timeout);

        // A call dropped while it waits is reported cancelled, and never reached the store.
        store.inject(StoreOp::Complete, Fault::Hold, Times::UntilReset);
        let complete = tokio::spawn({
            let store = store.clone();
            async move { store.complete("h", owner, LEASE).await }
        });
        store
            .wait_for(|c| c.op == StoreOp::Complete && c.outcome == CallOutcome::Pending)
            .await;
        complete.abort();
        let cancelled = store
            .wait_for(|c| c.op == StoreOp::Complete && c.outcome == CallOutcome::Cancelled)
            .await;
        assert_eq!(cancelled.owner, owner);
        store.reset_all();
        // Still in progress under `owner`: the hung release and the dropped complete did
        // nothing.
        assert_eq!(
            store.inner().claim("h", owner, LEASE).await.unwrap(),
            ClaimOutcome::InProgress
        );
    }

    #[tokio::test]
    async fn a_delay_slows_the_call_down_and_passes_it_on() {
        let store = FaultyStore::new(MemoryStore::new());
        store.inject(
            StoreOp::Claim,
            Fault::Delay(Duration::from_millis(50)),
            Times::UntilReset,
        );
        let start = tokio::time::Instant::now();
        let owner = OwnerToken::generate();
        assert_eq!(
            store.claim("d", owner, LEASE).await.unwrap(),
            ClaimOutcome::Claimed
        );
        assert!(start.elapsed() >= Duration::from_millis(50));
        assert_eq!(
            store.calls()[0].outcome,
            CallOutcome::Claim(ClaimOutcome::Claimed)
        );
    }
}
