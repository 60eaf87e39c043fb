//! The metrics the pipeline and the inbox emit (feature `metrics`), through the
//! [`metrics`](https://docs.rs/metrics) facade: install any recorder (Prometheus,
//! OpenTelemetry, StatsD…) in the application, and these appear in it. Without the feature
//! nothing is recorded and no code path changes; the names below are there either way, for
//! tools that check dashboards and alerts against them.
//!
//! Names follow OpenTelemetry's and Prometheus's conventions: a `knolyx_webhook_` prefix,
//! durations in seconds (`_seconds`), counters ending in `_total`. Labels stay bounded:
//! never a message id, a token or a URL.
//!
//! | name | kind | labels |
//! |---|---|---|
//! | [`DELIVERIES_TOTAL`] `knolyx_webhook_deliveries_total` | counter | `outcome` ([`OUTCOMES`]), `event_type` ([`EVENT_TYPES`]) |
//! | [`HANDLER_DURATION_SECONDS`] `knolyx_webhook_handler_duration_seconds` | histogram | `event_type`, `outcome` ([`HANDLER_OUTCOMES`]) |
//! | [`STORE_DURATION_SECONDS`] `knolyx_webhook_store_duration_seconds` | histogram | `operation` ([`STORE_OPERATIONS`]) |
//! | [`INBOX_ENTRIES`] `knolyx_webhook_inbox_entries` | gauge | `state` (`pending`, `running`, `dead`, `done`) |
//! | [`INBOX_OLDEST_PENDING_SECONDS`] `knolyx_webhook_inbox_oldest_pending_seconds` | gauge | none |
//! | [`INBOX_ATTEMPTS_TOTAL`] `knolyx_webhook_inbox_attempts_total` | counter | `result` ([`ATTEMPT_RESULTS`]) |
//!
//! - **Deliveries**: one count for every request the pipeline answered, on both adapters,
//!   with the same `outcome` word as the delivery span's `outcome` field, recorded where
//!   that word is decided. `event_type` is the envelope's type when it is one of the known
//!   types (`PING`, `COURSE_COMPLETED`, …), `unknown` for another type, and `none` when the
//!   request was refused before its type was read (method, token, size, envelope).
//! - **Handler duration**: in synchronous mode, from the moment the event is handed to the
//!   handler to its settle (its `outcome`: `handled` for a success, `handler_failed`
//!   otherwise); in inbox mode, each run of the handler by the [`Worker`](crate::inbox::Worker).
//! - **Store duration**: each `claim`, `complete` and `release` of the idempotency store made
//!   by the pipeline, errors and timeouts included.
//! - **Inbox**: the [`Worker`](crate::inbox::Worker) counts its attempts by result (the
//!   attempt span's outcome word) and refreshes the two gauges from
//!   [`Inbox::stats`](crate::inbox::Inbox::stats) every
//!   [`stats_interval`](crate::inbox::WorkerBuilder::stats_interval) (15 s by default). The
//!   gauges describe the whole (shared) inbox: with several replicas, each reports the
//!   same value; aggregate them with `max`, not `sum`.
//!
//! A Prometheus exporter such as `metrics-exporter-prometheus` renders the histograms as
//! Prometheus histograms (`_bucket`, `_sum`, `_count`) once it is given buckets for them,
//! such as [`DURATION_BUCKETS`].

/// Counter: every request the pipeline answered, by `outcome` and `event_type`.
pub const DELIVERIES_TOTAL: &str = "knolyx_webhook_deliveries_total";
/// Histogram, seconds: how long the user's handler ran, by `event_type` and `outcome`.
pub const HANDLER_DURATION_SECONDS: &str = "knolyx_webhook_handler_duration_seconds";
/// Histogram, seconds: how long each idempotency-store operation took, by `operation`.
pub const STORE_DURATION_SECONDS: &str = "knolyx_webhook_store_duration_seconds";
/// Gauge: entries in the inbox, by `state`.
pub const INBOX_ENTRIES: &str = "knolyx_webhook_inbox_entries";
/// Gauge, seconds: the age of the oldest pending entry of the inbox (since it was
/// accepted); 0 when none is pending.
pub const INBOX_OLDEST_PENDING_SECONDS: &str = "knolyx_webhook_inbox_oldest_pending_seconds";
/// Counter: the inbox worker's attempts, by `result`.
pub const INBOX_ATTEMPTS_TOTAL: &str = "knolyx_webhook_inbox_attempts_total";

/// Every counter emitted.
pub const COUNTERS: &[&str] = &[DELIVERIES_TOTAL, INBOX_ATTEMPTS_TOTAL];
/// Every histogram emitted (exported with `_bucket`, `_sum` and `_count` series).
pub const HISTOGRAMS: &[&str] = &[HANDLER_DURATION_SECONDS, STORE_DURATION_SECONDS];
/// Every gauge emitted.
pub const GAUGES: &[&str] = &[INBOX_ENTRIES, INBOX_OLDEST_PENDING_SECONDS];

/// The values of `outcome` on [`DELIVERIES_TOTAL`]: the delivery span's outcome words.
///
/// Besides the status map's (`handled`, `handler_failed`, `duplicate`, `ping`, `in_flight`,
/// the rejections, `queued` in inbox mode), a handled delivery whose settle went wrong says
/// so: `lease_lost` (the handler outlived its lease), `settle_failed` (the store failed
/// while settling), `released_at_shutdown` (the handler finished after its claim was
/// released at shutdown), `abandoned` (the handler panicked or its request was dropped).
pub const OUTCOMES: &[&str] = &[
    "handled",
    "handler_failed",
    "duplicate",
    "ping",
    "queued",
    "in_flight",
    "unauthorized",
    "malformed_payload",
    "payload_too_large",
    "invalid_event_data",
    "store_unavailable",
    "method_not_allowed",
    "body_read_failed",
    "lease_lost",
    "settle_failed",
    "released_at_shutdown",
    "abandoned",
];

/// The values of `event_type`: the known types, `unknown` and `none`.
pub const EVENT_TYPES: &[&str] = &[
    crate::event::types::PING,
    crate::event::types::COURSE_COMPLETED,
    crate::event::types::COURSE_STARTED,
    crate::event::types::COURSE_PAYMENT_RECEIVED,
    crate::event::types::BUNDLE_PAYMENT_RECEIVED,
    UNKNOWN_TYPE,
    NO_TYPE,
];

/// `event_type` of a type that is not one of the known ones.
pub const UNKNOWN_TYPE: &str = "unknown";
/// `event_type` of a request refused before its type was read.
pub const NO_TYPE: &str = "none";

/// The values of `outcome` on [`HANDLER_DURATION_SECONDS`].
pub const HANDLER_OUTCOMES: &[&str] = &["handled", "handler_failed"];

/// The values of `operation` on [`STORE_DURATION_SECONDS`].
pub const STORE_OPERATIONS: &[&str] = &["claim", "complete", "release"];

/// The values of `result` on [`INBOX_ATTEMPTS_TOTAL`] (the attempt span's outcome):
/// `done` (handled and marked done), `retry` (failed, pending again after a backoff),
/// `dead` (failed for the last time, or its body no longer parses), `lease_lost` (settled
/// too late: another worker took it over), `released` (cut short at shutdown, pending
/// again), `error` (the inbox failed while settling: it runs again once the lease expires).
pub const ATTEMPT_RESULTS: &[&str] = &["done", "retry", "dead", "lease_lost", "released", "error"];

/// Histogram buckets, in seconds, suited to both durations (from 1 ms to 60 s).
pub const DURATION_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// The `event_type` label of a type name: bounded whatever the sender sends.
pub fn event_type_label(event_type: &str) -> &'static str {
    use crate::event::types;
    match event_type {
        types::PING => types::PING,
        types::COURSE_COMPLETED => types::COURSE_COMPLETED,
        types::COURSE_STARTED => types::COURSE_STARTED,
        types::COURSE_PAYMENT_RECEIVED => types::COURSE_PAYMENT_RECEIVED,
        types::BUNDLE_PAYMENT_RECEIVED => types::BUNDLE_PAYMENT_RECEIVED,
        _ => UNKNOWN_TYPE,
    }
}

#[cfg(feature = "metrics")]
pub(crate) use record::*;

#[cfg(feature = "metrics")]
mod record {
    use std::future::Future;
    use std::time::{Duration, Instant};

    use super::*;

    /// One answered delivery.
    pub(crate) fn delivery(outcome: &'static str, event_type: &'static str) {
        ::metrics::counter!(DELIVERIES_TOTAL, "outcome" => outcome, "event_type" => event_type)
            .increment(1);
    }

    /// One run of the user's handler.
    pub(crate) fn handler(event_type: &'static str, succeeded: bool, took: Duration) {
        let outcome = if succeeded {
            "handled"
        } else {
            "handler_failed"
        };
        ::metrics::histogram!(
            HANDLER_DURATION_SECONDS,
            "event_type" => event_type,
            "outcome" => outcome
        )
        .record(took.as_secs_f64());
    }

    /// `operation` (one of [`STORE_OPERATIONS`]) timed into [`STORE_DURATION_SECONDS`].
    pub(crate) async fn store<T>(operation: &'static str, run: impl Future<Output = T>) -> T {
        let started = Instant::now();
        let result = run.await;
        ::metrics::histogram!(STORE_DURATION_SECONDS, "operation" => operation)
            .record(started.elapsed().as_secs_f64());
        result
    }

    /// One attempt of the inbox worker.
    #[cfg(feature = "tokio")]
    pub(crate) fn inbox_attempt(result: &'static str) {
        ::metrics::counter!(INBOX_ATTEMPTS_TOTAL, "result" => result).increment(1);
    }

    /// The inbox gauges.
    #[cfg(feature = "tokio")]
    pub(crate) fn inbox_stats(stats: &crate::inbox::InboxStats) {
        use crate::inbox::EntryState;
        for state in [
            EntryState::Pending,
            EntryState::Running,
            EntryState::Dead,
            EntryState::Done,
        ] {
            ::metrics::gauge!(INBOX_ENTRIES, "state" => state.as_str())
                .set(stats.count(state) as f64);
        }
        ::metrics::gauge!(INBOX_OLDEST_PENDING_SECONDS)
            .set(stats.oldest_pending.map_or(0.0, |age| age.as_secs_f64()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_bounded() {
        assert_eq!(event_type_label("COURSE_STARTED"), "COURSE_STARTED");
        assert_eq!(event_type_label("course_started"), UNKNOWN_TYPE);
        assert_eq!(event_type_label(&"X".repeat(300)), UNKNOWN_TYPE);
        for t in &EVENT_TYPES[..5] {
            assert_eq!(event_type_label(t), *t);
        }
    }
}
