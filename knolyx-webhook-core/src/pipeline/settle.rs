//! Settlement: how every claim the pipeline makes comes to an end.
//!
//! A claim is made before the handler runs ([`ClaimAttempt`]) and ends in exactly one of
//! these ways, in the order of this file:
//!
//! 1. **The claim call fails or is cancelled.** Its outcome is unknown: the store may have
//!    applied it (a timeout fired after the server took the claim, the client hung up while
//!    the store answered). The claim is released in the background, fenced by its owner
//!    token, so a retransmission is not refused as in flight for the whole lease. On a
//!    multiplexed connection (Redis) the release travels behind the claim, so it is applied
//!    after it even when the connection stalled and recovered. After a timeout or a lost
//!    connection the claim may still reach the store later (PostgreSQL, on the connection
//!    the client gave up on, when a partition heals): the release is then retried, every
//!    100 ms to 1 s, until one applies or the claim's lease is over (`drain` does not wait
//!    for these retries).
//! 2. **The handler ran**: [`Settlement::settle`] completes the claim on a 2xx and releases
//!    it otherwise (both fenced). If the settle's own future is dropped half-way (the
//!    client hung up while the store answered), [`FinishInBackground`] finishes the same
//!    operation in the background: a handler's success is not lost to a hang-up.
//! 3. **The handler never finished** (it panicked, or its request was dropped): the
//!    [`Settlement`] is dropped unsettled and releases the claim in the background.
//! 4. **Shutdown**: [`WebhookReceiver::drain`](super::WebhookReceiver::drain) waits for every
//!    claim to end one of the ways above;
//!    [`WebhookReceiver::release_in_flight`](super::WebhookReceiver::release_in_flight)
//!    releases those whose handlers still run.
//!
//! Background work runs on the current Tokio runtime (feature `tokio`) and stays in the
//! receiver's in-flight registry until it is done, so `drain` waits for it. It logs what it
//! did once it has done it, or that it could not (no runtime; the runtime shut down before
//! the task ran): never an action that did not happen. Without a runtime the lease expires.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use tracing::Span;

use super::Inner;
use crate::store::{
    ClaimOutcome, OwnerToken, SettleOutcome, StoreError, StoreErrorKind, StoreResult,
};

/// What settling a claim does to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Action {
    /// Mark it completed (the handler succeeded).
    Complete,
    /// Forget it (the handler failed, or the claim's fate is unknown).
    Release,
}

impl Action {
    fn past(self) -> &'static str {
        match self {
            Action::Complete => "completed",
            Action::Release => "released",
        }
    }
}

/// Why a claim is settled in the background: the `reason` field of its log lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reason {
    /// The claim call failed with an answer (refused, a backend error): one release, in
    /// case.
    ClaimFailed,
    /// The claim call timed out or lost its connection: the claim may still reach the store
    /// (a stalled connection delivering it when it heals), so the release is retried.
    ClaimTimedOut,
    /// The claim call was cancelled (the request was dropped) before the store answered.
    ClaimCancelled,
    /// The settle's future was dropped before the store answered.
    SettleInterrupted,
    /// The handler did not finish (panic, dropped request).
    Abandoned,
}

impl Reason {
    fn as_str(self) -> &'static str {
        match self {
            Reason::ClaimFailed => "claim_failed",
            Reason::ClaimTimedOut => "claim_timed_out",
            Reason::ClaimCancelled => "claim_cancelled",
            Reason::SettleInterrupted => "settle_interrupted",
            Reason::Abandoned => "abandoned",
        }
    }
}

/// A claim of this receiver's: the id, its owner token, and its entry in the receiver's
/// in-flight registry, removed when the handle is dropped (once the claim is settled, or
/// known not to be ours).
pub(crate) struct ClaimHandle {
    id: Arc<str>,
    owner: OwnerToken,
    receiver: Arc<Inner>,
    key: u64,
    /// Shared with the [`ClaimRef`]s handed out; allocated only when one is.
    completed_by_handler: OnceLock<Arc<AtomicBool>>,
}

impl ClaimHandle {
    fn register(receiver: &Arc<Inner>, id: Arc<str>) -> Self {
        let owner = OwnerToken::generate();
        let key = receiver.inflight.register(Arc::clone(&id), owner);
        Self {
            id,
            owner,
            receiver: Arc::clone(receiver),
            key,
            completed_by_handler: OnceLock::new(),
        }
    }

    /// Whether [`WebhookReceiver::release_in_flight`](super::WebhookReceiver::release_in_flight)
    /// already released it: nothing is left to settle.
    fn released_at_shutdown(&self) -> bool {
        self.receiver.inflight.is_released(self.key)
    }

    fn marked_completed(&self) -> bool {
        self.completed_by_handler
            .get()
            .is_some_and(|flag| flag.load(Ordering::SeqCst))
    }

    /// Completes or releases the claim in the store, fenced by its owner token.
    async fn apply(&self, action: Action) -> StoreResult<SettleOutcome> {
        let store = &self.receiver.store;
        match action {
            // Completed in the handler's own transaction, fenced by the same owner.
            Action::Complete if self.marked_completed() => Ok(SettleOutcome::Settled),
            Action::Complete => {
                let retention = self.receiver.config.retention;
                let complete = store.complete(&self.id, self.owner, retention);
                #[cfg(feature = "metrics")]
                let complete = crate::metrics::store("complete", complete);
                complete.await
            }
            Action::Release => {
                let release = store.release(&self.id, self.owner);
                #[cfg(feature = "metrics")]
                let release = crate::metrics::store("release", release);
                release.await
            }
        }
    }

    /// Applies `action` detached from the request, on the current Tokio runtime.
    fn apply_in_background(self, action: Action, reason: Reason, span: Span) {
        #[cfg(feature = "tokio")]
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let mut task = BackgroundSettle {
                claim: self,
                action,
                reason,
                span,
                done: false,
            };
            // Should the runtime be shutting down, the task is dropped without running and
            // its `Drop` says so.
            runtime.spawn(async move { task.run().await });
            return;
        }
        let _entered = span.enter();
        tracing::warn!(
            reason = reason.as_str(),
            "no Tokio runtime to settle the claim on; its lease will expire"
        );
        let _ = action;
    }
}

impl Drop for ClaimHandle {
    fn drop(&mut self) {
        self.receiver.inflight.remove(self.key);
    }
}

/// The first pause between two releases of a claim whose fate is unknown.
#[cfg(feature = "tokio")]
const RETRY_FIRST_PAUSE: Duration = Duration::from_millis(100);
/// The longest: once a partition heals, the claim it delivered late is released within this.
#[cfg(feature = "tokio")]
const RETRY_MAX_PAUSE: Duration = Duration::from_secs(1);

/// A claim settled in the background; says on drop if it never got to run.
#[cfg(feature = "tokio")]
struct BackgroundSettle {
    claim: ClaimHandle,
    action: Action,
    reason: Reason,
    span: Span,
    done: bool,
}

#[cfg(feature = "tokio")]
impl BackgroundSettle {
    async fn run(&mut self) {
        let result = match self.reason {
            Reason::ClaimTimedOut | Reason::ClaimCancelled => self.release_until_settled().await,
            _ => self.claim.apply(self.action).await,
        };
        self.done = true;
        let _entered = self.span.enter();
        let reason = self.reason.as_str();
        let action = self.action.past();
        match result {
            Ok(SettleOutcome::Settled) => {
                tracing::info!(reason, "claim {action} in the background")
            }
            // After a failed or cancelled claim, the usual case: the store never took it.
            Ok(SettleOutcome::NotOwner) => tracing::debug!(
                reason,
                "nothing to settle in the background: the claim was not (or no longer) ours"
            ),
            // The claim itself failed, most often without reaching the store: say so
            // quietly (during an outage, every refused delivery gets here).
            Err(error) if self.claim_was_ambiguous() => tracing::debug!(
                reason,
                error = &error as &dyn std::error::Error,
                "the release behind a failed claim failed too; if the store took the claim, \
                 its lease will expire"
            ),
            Err(error) => tracing::warn!(
                reason,
                kind = error.kind().as_str(),
                error = &error as &dyn std::error::Error,
                "the claim could not be {action} in the background; its lease will expire"
            ),
        }
    }

    /// Releases a claim whose fate is unknown, and keeps releasing while nothing was
    /// released, until the lease it would have had is over: the claim may reach the store
    /// after the first release, on a connection the client gave up on (PostgreSQL through a
    /// partition that heals), or the release itself may time out. Every attempt is fenced by
    /// the claim's own owner token, so none can touch another delivery's claim. After the
    /// first attempt `drain` stops waiting for it.
    async fn release_until_settled(&self) -> StoreResult<SettleOutcome> {
        let lease = self.claim.receiver.config.lease;
        let until = tokio::time::Instant::now() + lease;
        let mut pause = RETRY_FIRST_PAUSE;
        loop {
            let result = self.claim.apply(Action::Release).await;
            let settled = matches!(result, Ok(SettleOutcome::Settled));
            if settled
                || self.claim.released_at_shutdown()
                || tokio::time::Instant::now() + pause >= until
            {
                return result;
            }
            self.claim.receiver.inflight.set_lingering(self.claim.key);
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(RETRY_MAX_PAUSE);
        }
    }

    fn claim_was_ambiguous(&self) -> bool {
        matches!(
            self.reason,
            Reason::ClaimFailed | Reason::ClaimTimedOut | Reason::ClaimCancelled
        )
    }
}

#[cfg(feature = "tokio")]
impl Drop for BackgroundSettle {
    fn drop(&mut self) {
        if !self.done && !self.claim.released_at_shutdown() {
            let _entered = self.span.enter();
            tracing::warn!(
                reason = self.reason.as_str(),
                "the runtime shut down before the claim could be {}; its lease will expire \
                 (call `WebhookReceiver::drain` before the runtime ends)",
                self.action.past()
            );
        }
    }
}

/// What a claim attempt found.
pub(crate) enum Claim {
    /// Ours: run the handler, then settle.
    Won(ClaimHandle),
    /// Another delivery's: a duplicate, or one still in progress.
    Taken(ClaimOutcome),
    /// The store failed; the claim (if the store took it anyway) is being released.
    Failed(StoreError),
}

/// A claim the store has not answered yet. Dropped before it answers (the request was
/// cancelled), it releases the claim in the background, in case the store took it.
pub(crate) struct ClaimAttempt {
    claim: Option<ClaimHandle>,
    span: Span,
}

impl ClaimAttempt {
    pub(crate) fn new(receiver: &Arc<Inner>, id: Arc<str>, span: Span) -> Self {
        Self {
            claim: Some(ClaimHandle::register(receiver, id)),
            span,
        }
    }

    /// Claims the id for the configured lease.
    pub(crate) async fn run(mut self) -> Claim {
        let result = match &self.claim {
            Some(c) => {
                let lease = c.receiver.config.lease;
                let claim = c.receiver.store.claim(&c.id, c.owner, lease);
                #[cfg(feature = "metrics")]
                let claim = crate::metrics::store("claim", claim);
                claim.await
            }
            None => unreachable!("a claim attempt runs once"),
        };
        let Some(claim) = self.claim.take() else {
            unreachable!("a claim attempt runs once")
        };
        match result {
            Ok(ClaimOutcome::Claimed) => Claim::Won(claim),
            Ok(taken) => Claim::Taken(taken),
            Err(error) => {
                let reason = match error.kind() {
                    StoreErrorKind::Timeout | StoreErrorKind::Unavailable => Reason::ClaimTimedOut,
                    _ => Reason::ClaimFailed,
                };
                claim.apply_in_background(Action::Release, reason, self.span.clone());
                Claim::Failed(error)
            }
        }
    }
}

impl Drop for ClaimAttempt {
    fn drop(&mut self) {
        if let Some(claim) = self.claim.take() {
            claim.apply_in_background(Action::Release, Reason::ClaimCancelled, self.span.clone());
        }
    }
}

/// The claim of the delivery being handled, handed to the handler (adapters put it in the
/// request's extensions) so that it can complete the claim itself, inside its own
/// transaction, together with its side effect: see
/// `knolyx_webhook_postgres::PostgresStore::complete_in_transaction`. Then no crash can
/// separate the side effect from the completion.
///
/// A store that completes through a `ClaimRef` calls [`mark_completed`](Self::mark_completed)
/// once its fenced completion succeeded; the [`Settlement`] then does not complete again.
/// Should the transaction roll back, answer with an error status: the settlement releases
/// the claim (its fenced release still finds it in progress) and Knolyx's retry runs the
/// handler.
#[derive(Clone)]
pub struct ClaimRef {
    id: Arc<str>,
    owner: OwnerToken,
    retention: Duration,
    completed_by_handler: Arc<AtomicBool>,
}

impl fmt::Debug for ClaimRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClaimRef")
            .field("id", &self.id)
            .field("owner", &self.owner)
            .field("completed", &self.is_marked_completed())
            .finish()
    }
}

impl ClaimRef {
    /// A claim made outside the pipeline (`testing::claim_ref`, `testing::claim`).
    #[cfg(feature = "testing")]
    pub(crate) fn new(id: &str, owner: OwnerToken, retention: Duration) -> Self {
        Self {
            id: Arc::from(id),
            owner,
            retention,
            completed_by_handler: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The message id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The owner token that fences the claim.
    pub fn owner(&self) -> OwnerToken {
        self.owner
    }

    /// How long the completed id is to be remembered.
    pub fn retention(&self) -> Duration {
        self.retention
    }

    /// Records that the claim was completed by the handler (in its own transaction).
    pub fn mark_completed(&self) {
        self.completed_by_handler.store(true, Ordering::SeqCst);
    }

    /// Whether [`mark_completed`](Self::mark_completed) was called.
    pub fn is_marked_completed(&self) -> bool {
        self.completed_by_handler.load(Ordering::SeqCst)
    }
}

/// Finishes a delivery once its handler has run: a 2xx completes the claim (the id is then
/// a duplicate for the retention window), anything else releases it (the retransmission
/// runs the handler).
///
/// Dropped without being settled (the handler panicked, or the request was dropped), it
/// releases the claim in the background on the current Tokio runtime (feature `tokio`);
/// without a runtime the claim's lease expires and a retransmission then runs the handler.
/// A retransmission arriving in the instant after a panic may still be answered as in
/// flight (503, retryable). At shutdown,
/// [`WebhookReceiver::drain`](super::WebhookReceiver::drain) waits for these releases.
#[must_use = "settle the delivery with the handler's outcome"]
pub struct Settlement {
    claim: Option<ClaimHandle>,
    span: Span,
    /// The `event_type` label and when the handler got the event; taken when counted.
    #[cfg(feature = "metrics")]
    metered: Option<(&'static str, std::time::Instant)>,
    /// When the handler was handed the event: the handler's duration, for the log line.
    started: Instant,
}

impl fmt::Debug for Settlement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settlement")
            .field("id", &self.claim.as_ref().map(|c| &c.id))
            .field("owner", &self.claim.as_ref().map(|c| c.owner))
            .finish()
    }
}

/// What settling did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Settled {
    /// The handler succeeded and the id is now completed.
    Completed,
    /// The handler failed and the claim was released: a retransmission will run it.
    Released,
    /// There was no claim to settle (a forwarded PING, or fail-open after a store failure).
    NoClaim,
    /// The claim was no longer ours: the lease expired (and perhaps another delivery took it
    /// over) before the handler finished.
    LeaseLost,
    /// The store failed while settling; the lease will expire.
    StoreFailed,
}

impl Settlement {
    pub(crate) fn new(claim: Option<ClaimHandle>, span: Span) -> Self {
        Self {
            claim,
            span,
            started: Instant::now(),
            #[cfg(feature = "metrics")]
            metered: None,
        }
    }

    /// Counts this delivery, of this `event_type` label, when it ends; the handler's
    /// duration starts now.
    #[cfg(feature = "metrics")]
    pub(crate) fn metered(mut self, event_type: &'static str) -> Self {
        self.metered = Some((event_type, std::time::Instant::now()));
        self
    }

    /// Records the handler's duration (once it has run) and counts the delivery with its
    /// span's `outcome`.
    #[cfg(feature = "metrics")]
    fn count(&mut self, outcome: &'static str, handler_succeeded: Option<bool>) {
        if let Some((event_type, handed)) = self.metered.take() {
            if let Some(succeeded) = handler_succeeded {
                crate::metrics::handler(event_type, succeeded, handed.elapsed());
            }
            crate::metrics::delivery(outcome, event_type);
        }
    }

    /// The delivery's tracing span: run the handler inside it.
    pub fn span(&self) -> &Span {
        &self.span
    }

    /// Whether there is a claim to settle.
    pub fn has_claim(&self) -> bool {
        self.claim.is_some()
    }

    /// The claim, for a handler that completes it in its own transaction (adapters insert
    /// it in the request's extensions). `None` without a claim.
    pub fn claim_ref(&self) -> Option<ClaimRef> {
        self.claim.as_ref().map(|c| ClaimRef {
            id: Arc::clone(&c.id),
            owner: c.owner,
            retention: c.receiver.config.retention,
            completed_by_handler: Arc::clone(
                c.completed_by_handler
                    .get_or_init(|| Arc::new(AtomicBool::new(false))),
            ),
        })
    }

    /// Settles by the handler's HTTP status: 2xx completes, anything else releases.
    pub async fn settle(self, status: u16) -> Settled {
        self.finish((200..300).contains(&status), Some(status))
            .await
    }

    /// Settles as [`settle`](Self::settle) would for a failure: releases the claim.
    pub async fn release(self) -> Settled {
        self.finish(false, None).await
    }

    /// Settles by whether the handler succeeded.
    pub async fn settle_with(self, handler_succeeded: bool) -> Settled {
        self.finish(handler_succeeded, None).await
    }

    /// Settles, then logs the outcome with the handler's status (when known) and duration.
    async fn finish(mut self, handler_succeeded: bool, status: Option<u16>) -> Settled {
        let handler = HandlerReport {
            status,
            duration: self.started.elapsed(),
        };
        let Some(claim) = self.claim.take() else {
            let outcome = if handler_succeeded {
                "handled"
            } else {
                "handler_failed"
            };
            self.span.record("outcome", outcome);
            #[cfg(feature = "metrics")]
            self.count(outcome, Some(handler_succeeded));
            self.span.in_scope(|| {
                if handler_succeeded {
                    handler.log(tracing::Level::INFO, "handled (no claim to settle)");
                } else {
                    handler.log(tracing::Level::WARN, "handler failed (no claim to release)");
                }
            });
            return Settled::NoClaim;
        };
        let action = if handler_succeeded {
            Action::Complete
        } else {
            Action::Release
        };
        // The handler has run: its duration ends here, before the store is written.
        #[cfg(feature = "metrics")]
        let handler_took = self.metered.map(|(_, handed)| handed.elapsed());
        let mut guard = FinishInBackground {
            claim: Some(claim),
            action,
            span: self.span.clone(),
        };
        if guard
            .claim
            .as_ref()
            .is_some_and(|c| c.released_at_shutdown())
        {
            // Nothing to write: the id is free (another replica may be running it).
            drop(guard.claim.take());
            self.span.record("outcome", "released_at_shutdown");
            #[cfg(feature = "metrics")]
            self.count("released_at_shutdown", Some(handler_succeeded));
            self.span.in_scope(|| {
                handler.log(
                    tracing::Level::INFO,
                    "the handler finished after its claim was released at shutdown",
                )
            });
            return Settled::LeaseLost;
        }
        let result = guard.apply().await;
        let settled = match (action, &result) {
            (Action::Complete, Ok(SettleOutcome::Settled)) => Settled::Completed,
            (Action::Release, Ok(SettleOutcome::Settled)) => Settled::Released,
            (_, Ok(SettleOutcome::NotOwner)) => Settled::LeaseLost,
            (_, Err(_)) => Settled::StoreFailed,
        };
        let outcome = self.log(settled, result.err(), handler);
        #[cfg(feature = "metrics")]
        if let (Some((event_type, _)), Some(took)) = (self.metered.take(), handler_took) {
            crate::metrics::handler(event_type, handler_succeeded, took);
            crate::metrics::delivery(outcome, event_type);
        }
        #[cfg(not(feature = "metrics"))]
        let _ = outcome;
        settled
    }

    /// Logs how the settle went; returns the span's `outcome`.
    fn log(
        &self,
        settled: Settled,
        error: Option<StoreError>,
        handler: HandlerReport,
    ) -> &'static str {
        let outcome = match settled {
            Settled::Completed => "handled",
            Settled::Released => "handler_failed",
            Settled::LeaseLost => "lease_lost",
            Settled::StoreFailed | Settled::NoClaim => "settle_failed",
        };
        self.span.record("outcome", outcome);
        let _entered = self.span.enter();
        // The outcome is the span's field: not repeated on the line.
        match (settled, error) {
            (Settled::Completed, _) => handler.log(tracing::Level::INFO, "handled"),
            (Settled::Released, _) => handler.log(
                tracing::Level::WARN,
                "handler failed; claim released for a retry",
            ),
            (_, Some(error)) => tracing::error!(
                status = handler.status,
                duration_ms = handler.millis(),
                kind = error.kind().as_str(),
                error = &error as &dyn std::error::Error,
                "could not settle the claim; its lease will expire"
            ),
            _ => handler.log(
                tracing::Level::WARN,
                "the handler outlived its lease; the claim could not be settled",
            ),
        }
        outcome
    }
}

/// What the handler did, for the settle's log line: its HTTP status (when the adapter
/// settled by status) and how long it ran.
#[derive(Clone, Copy)]
struct HandlerReport {
    status: Option<u16>,
    duration: Duration,
}

impl HandlerReport {
    /// Milliseconds, to a tenth.
    fn millis(&self) -> f64 {
        (self.duration.as_secs_f64() * 10_000.0).round() / 10.0
    }

    /// One line at `level` (INFO or WARN) with `status` and `duration_ms`.
    fn log(&self, level: tracing::Level, message: &'static str) {
        let (status, duration_ms) = (self.status, self.millis());
        if level == tracing::Level::INFO {
            tracing::info!(status, duration_ms, "{message}");
        } else {
            tracing::warn!(status, duration_ms, "{message}");
        }
    }
}

impl Drop for Settlement {
    fn drop(&mut self) {
        let Some(claim) = self.claim.take() else {
            return;
        };
        self.span.record("outcome", "abandoned");
        #[cfg(feature = "metrics")]
        self.count("abandoned", None);
        let _entered = self.span.enter();
        let duration_ms = HandlerReport {
            status: None,
            duration: self.started.elapsed(),
        }
        .millis();
        if claim.released_at_shutdown() {
            tracing::info!(
                duration_ms,
                "handler did not finish; its claim was released at shutdown"
            );
            return;
        }
        tracing::warn!(
            duration_ms,
            "handler did not finish (panic or dropped request)"
        );
        claim.apply_in_background(Action::Release, Reason::Abandoned, self.span.clone());
    }
}

/// A settle under way. Should its future be dropped while the store answers (the client
/// hung up and the server dropped the request), the same operation finishes in the
/// background: repeating a settle is harmless, as settling is fenced by the owner token.
struct FinishInBackground {
    claim: Option<ClaimHandle>,
    action: Action,
    span: Span,
}

impl FinishInBackground {
    async fn apply(mut self) -> StoreResult<SettleOutcome> {
        let result = match &self.claim {
            Some(claim) => claim.apply(self.action).await,
            None => unreachable!("a settle is applied once"),
        };
        // Done: dropping the claim now only removes it from the in-flight registry.
        self.claim = None;
        result
    }
}

impl Drop for FinishInBackground {
    fn drop(&mut self) {
        if let Some(claim) = self.claim.take() {
            self.span.in_scope(|| {
                tracing::warn!(
                    "the request was dropped while its claim was being settled; finishing in \
                     the background"
                )
            });
            claim.apply_in_background(self.action, Reason::SettleInterrupted, self.span.clone());
        }
    }
}
