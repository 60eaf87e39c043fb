//! The [`Worker`]: runs the user's handler over the due entries of an [`Inbox`].

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, oneshot, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::Instrument;

use super::{Attempt, DEFAULT_RETENTION, Entry, Inbox};
use crate::event::WebhookEvent;
use crate::store::{OwnerToken, SettleOutcome};

type HandlerFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'static>>;
type Handler = Arc<dyn Fn(WebhookEvent, Attempt) -> HandlerFuture + Send + Sync + 'static>;

/// The longest last error kept, in bytes (longer messages are cut at a character boundary).
const MAX_ERROR_LEN: usize = 2048;

/// Runs a handler over the due entries of an [`Inbox`]: takes them in batches, runs the
/// handler on up to [`concurrency`](WorkerBuilder::concurrency) at once, marks an entry done
/// when its handler returned `Ok`, and otherwise retries it after an exponential
/// [`backoff`] with jitter, until [`max_attempts`](WorkerBuilder::max_attempts) (or
/// [`max_age`](WorkerBuilder::max_age)), after
/// which it is dead with its last error. A handler that panics, or runs for 90 % of the
/// [lease](WorkerBuilder::lease) (it is then cancelled), has failed.
///
/// The worker takes when it starts, when its
/// [waker](WorkerBuilder::wake_on) is woken (the PostgreSQL inbox feeds one from `LISTEN`),
/// when a retry it scheduled is due, and otherwise every
/// [`poll_interval`](WorkerBuilder::poll_interval), taking what fits at once; and, while a
/// backlog lasts (its last take was full), when half a batch of slots is free again (not
/// per finished handler: each take is a round trip and a commit). Each take uses a new [`OwnerToken`], so
/// a lease taken over, even by this worker, fences its earlier holder.
///
/// The worker also purges the done entries past their
/// [retention](WorkerBuilder::retention) (72 h by default, the window in which a
/// retransmission is still a duplicate) every
/// [`purge_interval`](WorkerBuilder::purge_interval), when it starts and then every 10
/// minutes by default: every replica's worker may do so, the purge is one idempotent
/// `DELETE`.
///
/// Each attempt runs in a tracing span `knolyx_webhook.inbox.attempt` with the id, the
/// type, the attempt number and the outcome (`done`, `retry`, `dead`, `lease_lost`,
/// `released`, `error`); never the body.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use knolyx_webhook_core::inbox::{Inbox, MemoryInbox, Worker};
/// use knolyx_webhook_core::testing::TestEvent;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let inbox = Arc::new(MemoryInbox::new());
/// let waker = inbox.waker();
/// let worker = Worker::builder(inbox.clone(), |event| async move {
///     println!("handling {} {}", event.event_type(), event.id());
///     Ok::<(), std::io::Error>(())
/// })
/// .wake_on(waker)
/// .first_retry(Duration::from_millis(500))
/// .build()
/// .spawn();
///
/// inbox.accept(&TestEvent::course_completed().id("m-1").build()).await?;
/// // … on shutdown: stop taking, let running handlers finish for 10 s, release the rest.
/// let report = worker.shutdown(Duration::from_secs(10)).await;
/// # let _ = report;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Worker {
    inbox: Arc<dyn Inbox>,
    handler: Handler,
    settings: Settings,
    waker: Option<Arc<Notify>>,
}

#[derive(Clone, Copy, Debug)]
struct Settings {
    lease: Duration,
    batch: usize,
    concurrency: usize,
    poll_interval: Duration,
    first_retry: Duration,
    max_retry: Duration,
    max_attempts: u32,
    max_age: Option<Duration>,
    retention: Duration,
    purge_interval: Option<Duration>,
    #[cfg(feature = "metrics")]
    stats_interval: Duration,
}

impl fmt::Debug for Worker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Worker")
            .field("inbox", &self.inbox)
            .field("settings", &self.settings)
            .field("wakes_on_notify", &self.waker.is_some())
            .finish_non_exhaustive()
    }
}

/// Builds a [`Worker`]; every setting has a documented default.
#[derive(Debug)]
pub struct WorkerBuilder {
    worker: Worker,
}

impl Worker {
    /// A builder of a worker running `handler` over `inbox`. The handler gets each event
    /// (parsed back from its stored body) and returns `Ok` when it is handled; the error's
    /// `Display` is kept as the entry's last error.
    pub fn builder<F, Fut, E>(inbox: Arc<dyn Inbox>, handler: F) -> WorkerBuilder
    where
        F: Fn(WebhookEvent) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: fmt::Display + 'static,
    {
        Self::builder_with_attempt(inbox, move |event, _attempt| handler(event))
    }

    /// A builder of a worker running `handler` over `inbox`, the handler also given the
    /// [`Attempt`]: its id, fencing owner and number. With it the handler can complete the
    /// entry in its own database transaction (`PostgresInbox::complete_in_transaction`),
    /// together with its side effects: exactly-once effects.
    ///
    /// ```no_run
    /// use std::sync::Arc;
    /// use knolyx_webhook_core::inbox::{Inbox, MemoryInbox, Worker};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let inbox: Arc<dyn Inbox> = Arc::new(MemoryInbox::new());
    /// let worker = Worker::builder_with_attempt(inbox, |event, attempt| async move {
    ///     if attempt.number() > 1 {
    ///         println!("retrying {} (attempt {})", event.id(), attempt.number());
    ///     }
    ///     Ok::<(), std::io::Error>(())
    /// })
    /// .build()
    /// .spawn();
    /// # drop(worker);
    /// # }
    /// ```
    pub fn builder_with_attempt<F, Fut, E>(inbox: Arc<dyn Inbox>, handler: F) -> WorkerBuilder
    where
        F: Fn(WebhookEvent, Attempt) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: fmt::Display + 'static,
    {
        let handler: Handler = Arc::new(move |event, attempt| {
            let run = handler(event, attempt);
            Box::pin(async move { run.await.map_err(|e| e.to_string()) })
        });
        WorkerBuilder {
            worker: Worker {
                inbox,
                handler,
                settings: Settings {
                    lease: Duration::from_secs(60),
                    batch: 16,
                    concurrency: 16,
                    poll_interval: Duration::from_secs(1),
                    first_retry: Duration::from_secs(1),
                    max_retry: Duration::from_secs(3600),
                    max_attempts: 20,
                    max_age: None,
                    retention: DEFAULT_RETENTION,
                    purge_interval: Some(Duration::from_secs(600)),
                    #[cfg(feature = "metrics")]
                    stats_interval: Duration::from_secs(15),
                },
                waker: None,
            },
        }
    }

    /// Starts the worker on the current Tokio runtime. Panics outside a runtime, as
    /// `tokio::spawn` does.
    pub fn spawn(self) -> WorkerHandle {
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(self.run(stopped));
        WorkerHandle { stop, task }
    }

    async fn run(self, mut stop: oneshot::Receiver<Duration>) -> ShutdownReport {
        let s = self.settings;
        let (abandon, abandoned) = watch::channel(false);
        let mut running: JoinSet<Ended> = JoinSet::new();
        let mut report = ShutdownReport::default();
        // When the soonest retry this worker scheduled is due.
        let mut retry_due: Option<Instant> = None;
        // The handle was dropped: run on until the runtime ends.
        let mut detached = false;
        // When the next purge of done entries is due.
        let mut purge_due = s.purge_interval.map(|_| Instant::now());
        // The last take was full: more entries may be due.
        let mut backlog = false;
        // Started, notified, polled or a retry is due (not only a handler that finished).
        let mut woken = true;
        // Half a batch: the least a take refills a backlog by.
        let refill = (s.batch.min(s.concurrency) / 2).max(1);
        // When the inbox gauges were last refreshed.
        #[cfg(feature = "metrics")]
        let mut stats_at: Option<Instant> = None;
        let grace = loop {
            #[cfg(feature = "metrics")]
            if stats_at.is_none_or(|at| at.elapsed() >= s.stats_interval) {
                stats_at = Some(Instant::now());
                self.refresh_stats().await;
            }
            if let (Some(due), Some(every)) = (purge_due, s.purge_interval)
                && due <= Instant::now()
            {
                self.purge().await;
                purge_due = Some(Instant::now() + every);
            }
            let room = s.concurrency.saturating_sub(running.len());
            // Woken: take what fits, at once. Only a handler finished: take to work off a
            // backlog, by half batches at least (each take is a round trip and a commit),
            // not one take per finished handler.
            let refilling = backlog && (room >= refill || running.is_empty());
            if room > 0 && (woken || refilling) {
                let want = room.min(s.batch);
                match self.inbox.take(OwnerToken::generate(), s.lease, want).await {
                    Ok(entries) => {
                        backlog = entries.len() == want;
                        if retry_due.is_some_and(|at| at <= Instant::now()) {
                            retry_due = None;
                        }
                        for entry in entries {
                            let attempt = self.clone().attempt(entry, abandoned.clone());
                            running.spawn(attempt);
                        }
                    }
                    Err(e) => {
                        // Wait for the poll, not for a retry already due: no busy loop
                        // against an inbox that is down.
                        retry_due = None;
                        backlog = false;
                        tracing::warn!(
                            error = %e,
                            kind = %e.kind(),
                            "knolyx-webhook: the inbox worker could not take entries"
                        );
                    }
                }
            }
            woken = false;
            let room = s.concurrency.saturating_sub(running.len());
            let wake_at = [retry_due, purge_due]
                .into_iter()
                .flatten()
                .fold(Instant::now() + s.poll_interval, Instant::min);
            // Wake for the next refresh of the gauges too.
            #[cfg(feature = "metrics")]
            let wake_at = stats_at.map_or(wake_at, |at| wake_at.min(at + s.stats_interval));
            let notified = async {
                match &self.waker {
                    Some(waker) => waker.notified().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                grace = &mut stop, if !detached => match grace {
                    Ok(grace) => break grace,
                    Err(_) => detached = true,
                },
                Some(ended) = running.join_next(), if !running.is_empty() => {
                    if let Ok(Ended::Retry(at)) = ended {
                        retry_due = Some(retry_due.map_or(at, |due| due.min(at)));
                    }
                }
                () = std::future::ready(()), if backlog && room >= refill => {}
                () = notified => woken = true,
                () = tokio::time::sleep_until(wake_at) => woken = true,
            }
        };
        // Shutdown: no more takes; the running handlers have `grace` to finish.
        let deadline = tokio::time::sleep(grace);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                ended = running.join_next() => match ended {
                    Some(ended) => report.count(ended),
                    None => return report,
                },
                () = &mut deadline => break,
            }
        }
        let _ = abandon.send(true);
        while let Some(ended) = running.join_next().await {
            report.count(ended);
        }
        report
    }

    /// Deletes the done entries past the retention window.
    async fn purge(&self) {
        match self.inbox.purge_done(self.settings.retention).await {
            Ok(0) => {}
            Ok(purged) => tracing::info!(
                purged,
                retention = ?self.settings.retention,
                "knolyx-webhook: purged the inbox's done entries past retention"
            ),
            Err(e) => tracing::warn!(
                error = %e,
                kind = %e.kind(),
                "knolyx-webhook: could not purge the inbox's done entries (next try at the next purge interval)"
            ),
        }
    }

    /// Sets the inbox gauges from [`Inbox::stats`].
    #[cfg(feature = "metrics")]
    async fn refresh_stats(&self) {
        match self.inbox.stats().await {
            Ok(stats) => crate::metrics::inbox_stats(&stats),
            Err(e) => tracing::debug!(
                error = %e,
                kind = %e.kind(),
                "knolyx-webhook: the inbox worker could not read the inbox's stats"
            ),
        }
    }

    /// One attempt of `entry`, settled; in its tracing span.
    async fn attempt(self, entry: Entry, abandoned: watch::Receiver<bool>) -> Ended {
        let span = tracing::info_span!(
            "knolyx_webhook.inbox.attempt",
            id = %entry.id(),
            event_type = %entry.event_type(),
            attempt = entry.attempts(),
            outcome = tracing::field::Empty,
        );
        self.run_attempt(entry, abandoned).instrument(span).await
    }

    async fn run_attempt(self, entry: Entry, mut abandoned: watch::Receiver<bool>) -> Ended {
        let s = self.settings;
        let (id, owner) = (
            entry.id(),
            entry.owner().unwrap_or(OwnerToken::from_u128(0)),
        );
        if entry.attempts() > s.max_attempts {
            // Taken over again and again (each holder crashed or lost its lease).
            let error = format!(
                "gave up after {} attempts (the last ones never settled)",
                s.max_attempts
            );
            return self.failed(&entry, owner, error, None).await;
        }
        let event = match entry.event() {
            Ok(event) => event,
            Err(e) => {
                let error = format!("the stored body does not parse: {e}");
                return self.failed(&entry, owner, error, None).await;
            }
        };
        // Time left to record the failure before the lease expires.
        let limit = s.lease - s.lease / 10;
        #[cfg(feature = "metrics")]
        let started = (
            crate::metrics::event_type_label(event.event_type()),
            Instant::now(),
        );
        let attempt = Attempt::new(id, owner, entry.attempts());
        let mut handler = tokio::spawn((self.handler)(event, attempt.clone()));
        let result = tokio::select! {
            joined = &mut handler => match joined {
                Ok(result) => result,
                Err(e) if e.is_panic() => Err("the handler panicked".to_owned()),
                Err(_) => Err("the handler was cancelled".to_owned()),
            },
            () = tokio::time::sleep(limit) => {
                handler.abort();
                Err(format!("the handler did not finish within {limit:?} (90 % of the lease)"))
            }
            () = async { drop(abandoned.wait_for(|abandon| *abandon).await) } => {
                handler.abort();
                let released = self.inbox.release(id, owner).await;
                record(match released {
                    Ok(SettleOutcome::Settled) => "released",
                    Ok(SettleOutcome::NotOwner) => "lease_lost",
                    Err(ref e) => {
                        tracing::warn!(error = %e, kind = %e.kind(), "knolyx-webhook: could not release an inbox entry at shutdown; its lease will expire");
                        "error"
                    }
                });
                return Ended::Released;
            }
        };
        #[cfg(feature = "metrics")]
        crate::metrics::handler(started.0, result.is_ok(), started.1.elapsed());
        match result {
            Ok(()) if attempt.is_marked_completed() => {
                // Completed by the handler, in its own transaction.
                record("done");
                tracing::info!("knolyx-webhook: inbox entry handled");
                Ended::Finished
            }
            Ok(()) => {
                match self.inbox.complete(id, owner).await {
                    Ok(SettleOutcome::Settled) => {
                        record("done");
                        tracing::info!("knolyx-webhook: inbox entry handled");
                    }
                    Ok(SettleOutcome::NotOwner) => {
                        record("lease_lost");
                        tracing::warn!(
                            "knolyx-webhook: handled an inbox entry after losing its lease: it runs again"
                        );
                    }
                    Err(e) => {
                        record("error");
                        tracing::warn!(error = %e, kind = %e.kind(), "knolyx-webhook: could not mark an inbox entry done: it runs again once its lease expires");
                    }
                }
                Ended::Finished
            }
            Err(error) => {
                // The entry's age by this machine's clock against the inbox's: a skew
                // moves the limit by as much.
                let too_old = s.max_age.is_some_and(|limit| {
                    entry.created_at().elapsed().is_ok_and(|age| age >= limit)
                });
                let retry_in = (entry.attempts() < s.max_attempts && !too_old)
                    .then(|| backoff(entry.attempts(), s.first_retry, s.max_retry, jitter()));
                self.failed(&entry, owner, error, retry_in).await
            }
        }
    }

    /// Records a failure: a retry after `retry_in`, or dead.
    async fn failed(
        &self,
        entry: &Entry,
        owner: OwnerToken,
        mut error: String,
        retry_in: Option<Duration>,
    ) -> Ended {
        if error.len() > MAX_ERROR_LEN {
            let mut end = MAX_ERROR_LEN;
            while !error.is_char_boundary(end) {
                end -= 1;
            }
            error.truncate(end);
        }
        let due = retry_in.map(|d| Instant::now() + d);
        match self.inbox.fail(entry.id(), owner, &error, retry_in).await {
            Ok(SettleOutcome::Settled) => match retry_in {
                Some(delay) => {
                    record("retry");
                    tracing::warn!(%error, retry_in = ?delay, "knolyx-webhook: inbox handler failed; retrying later");
                }
                None => {
                    record("dead");
                    tracing::error!(%error, "knolyx-webhook: inbox entry is dead (retry it with the inbox's retry)");
                }
            },
            Ok(SettleOutcome::NotOwner) => record("lease_lost"),
            Err(e) => {
                record("error");
                tracing::warn!(error = %e, kind = %e.kind(), "knolyx-webhook: could not record an inbox failure: it runs again once its lease expires");
            }
        }
        due.map_or(Ended::Finished, Ended::Retry)
    }
}

fn record(outcome: &'static str) {
    tracing::Span::current().record("outcome", outcome);
    #[cfg(feature = "metrics")]
    crate::metrics::inbox_attempt(outcome);
}

/// How an attempt ended, for the worker's loop.
#[derive(Debug)]
enum Ended {
    Finished,
    Retry(Instant),
    Released,
}

/// The delay before the retry that follows failed attempt number `attempt` (1 for the
/// first): `first`, doubled at each further attempt, at most `max`, then scaled by the
/// jitter `unit` (from 0.0 to 1.0) into its upper half, from half the delay to all of it, so
/// that workers retrying together spread out.
///
/// ```
/// use std::time::Duration;
/// use knolyx_webhook_core::inbox::backoff;
///
/// let (first, max) = (Duration::from_secs(1), Duration::from_secs(3600));
/// assert_eq!(backoff(1, first, max, 1.0), Duration::from_secs(1));
/// assert_eq!(backoff(3, first, max, 1.0), Duration::from_secs(4));
/// assert_eq!(backoff(3, first, max, 0.0), Duration::from_secs(2));
/// assert_eq!(backoff(40, first, max, 1.0), max);
/// ```
pub fn backoff(attempt: u32, first: Duration, max: Duration, unit: f64) -> Duration {
    let factor = 1u32
        .checked_shl(attempt.saturating_sub(1))
        .unwrap_or(u32::MAX);
    let full = first.checked_mul(factor).unwrap_or(max).min(max);
    let scale = 0.5 + 0.5 * unit.clamp(0.0, 1.0); // NaN clamps to NaN: then the full delay
    Duration::try_from_secs_f64(full.as_secs_f64() * scale).map_or(full, |d| d.min(full))
}

/// A random number from 0.0 to 1.0.
fn jitter() -> f64 {
    let mut b = [0u8; 4];
    if getrandom::fill(&mut b).is_err() {
        return 1.0;
    }
    f64::from(u32::from_le_bytes(b)) / f64::from(u32::MAX)
}

impl WorkerBuilder {
    /// The lease of each taken entry (default 60 s): a handler may run for 90 % of it (it is
    /// cancelled then, and has failed: the rest of the lease is left to record that), and how long a crashed worker's entries wait
    /// before another worker takes them over.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.worker.settings.lease = lease;
        self
    }

    /// The most entries taken at once (default 16; at least 1).
    pub fn batch(mut self, batch: usize) -> Self {
        self.worker.settings.batch = batch.max(1);
        self
    }

    /// The most handlers running at once (default 16; at least 1).
    pub fn concurrency(mut self, concurrency: usize) -> Self {
        self.worker.settings.concurrency = concurrency.max(1);
        self
    }

    /// How often the worker looks for due entries when nothing wakes it (default 1 s): the
    /// fallback when no waker is set or a notification is lost.
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.worker.settings.poll_interval = interval;
        self
    }

    /// The delay before the first retry (default 1 s), doubled at each further one.
    pub fn first_retry(mut self, delay: Duration) -> Self {
        self.worker.settings.first_retry = delay;
        self
    }

    /// The longest delay between retries (default 1 h).
    pub fn max_retry(mut self, delay: Duration) -> Self {
        self.worker.settings.max_retry = delay;
        self
    }

    /// How many attempts an entry gets before it is dead (default 20; at least 1).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.worker.settings.max_attempts = attempts.max(1);
        self
    }

    /// How long done entries are kept before the worker purges them (default
    /// [`DEFAULT_RETENTION`], 72 h): the window in which a retransmission of a handled
    /// event is still answered as a duplicate.
    pub fn retention(mut self, retention: Duration) -> Self {
        self.worker.settings.retention = retention;
        self
    }

    /// How often the worker purges the done entries past [retention](Self::retention)
    /// (default 10 minutes, and once when it starts).
    pub fn purge_interval(mut self, interval: Duration) -> Self {
        self.worker.settings.purge_interval = Some(interval);
        self
    }

    /// The worker never purges (another process does, e.g. `knolyx-webhook inbox purge`
    /// from cron).
    pub fn without_purge(mut self) -> Self {
        self.worker.settings.purge_interval = None;
        self
    }

    /// An entry whose attempt fails once it is this old (since it was accepted) is dead,
    /// whatever its attempts (default: no limit, only [`max_attempts`](Self::max_attempts)).
    /// For events that are worthless late. Measured by this machine's clock against the
    /// entry's creation time, which the inbox's clock wrote.
    pub fn max_age(mut self, age: Duration) -> Self {
        self.worker.settings.max_age = Some(age);
        self
    }

    /// Wakes the worker, to take at once, whenever `waker` is notified (default: none, the
    /// worker polls): `MemoryInbox::waker`, or `PostgresInbox::wake_on_notify` fed from
    /// `LISTEN`.
    pub fn wake_on(mut self, waker: Arc<Notify>) -> Self {
        self.worker.waker = Some(waker);
        self
    }

    /// How often the worker refreshes the inbox gauges of the [`metrics`](crate::metrics)
    /// module from [`Inbox::stats`] (default 15 s; at least 100 ms): one query of a shared
    /// inbox per interval and replica.
    #[cfg(feature = "metrics")]
    #[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
    pub fn stats_interval(mut self, interval: Duration) -> Self {
        self.worker.settings.stats_interval = interval.max(Duration::from_millis(100));
        self
    }

    /// The worker.
    pub fn build(self) -> Worker {
        self.worker
    }
}

/// A running [`Worker`]: stop it with [`shutdown`](Self::shutdown). Dropping the handle
/// lets the worker run on, detached.
#[derive(Debug)]
pub struct WorkerHandle {
    stop: oneshot::Sender<Duration>,
    task: tokio::task::JoinHandle<ShutdownReport>,
}

impl WorkerHandle {
    /// Stops taking entries, gives the running handlers `grace` to finish (and settle), then
    /// cancels the others and releases their entries (fenced: pending again, due at once).
    /// Resolves when every attempt has ended.
    ///
    /// The worker stops taking as soon as this is called, before the future is awaited.
    pub fn shutdown(self, grace: Duration) -> impl Future<Output = ShutdownReport> + Send {
        let _ = self.stop.send(grace);
        async move { self.task.await.unwrap_or_default() }
    }
}

/// What a [`WorkerHandle::shutdown`] found running.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShutdownReport {
    /// Attempts that ended within the grace period (done, failed or lost).
    pub finished: usize,
    /// Attempts cut short at the end of the grace period, their entries released.
    pub released: usize,
}

impl ShutdownReport {
    fn count(&mut self, ended: Result<Ended, tokio::task::JoinError>) {
        match ended {
            Ok(Ended::Released) => self.released += 1,
            Ok(Ended::Finished | Ended::Retry(_)) | Err(_) => self.finished += 1,
        }
    }
}
