//! The sender: delivers an event to a webhook the way Knolyx does (HTTP PUT of the JSON
//! envelope with `X-Webhook-Security-Token`), retransmits it on a schedule while it is not
//! answered 2xx, and now and then retransmits a delivered one too (at least once).

use std::time::{Duration, Instant};

use bytes::Bytes;
use knolyx_webhook_client::redact_url;
use knolyx_webhook_core::TOKEN_HEADER;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, HeaderValue};
use serde::{Deserialize, Serialize};

use super::state::{State, StoredWebhook};

/// One delivery attempt, as the sandbox prints it and streams it back to `trigger`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Attempt {
    /// The message id (the event's `id`).
    pub message_id: String,
    /// The event type (`PING`, `COURSE_COMPLETED`, …).
    #[serde(rename = "type")]
    pub event_type: String,
    /// The webhook delivered to.
    pub webhook_id: u64,
    /// The webhook's URL, without credentials.
    pub url: String,
    /// 1 for the first delivery, then 2, 3, … for retransmissions.
    pub attempt: u32,
    /// The HTTP status, when there was a response.
    pub status: Option<u16>,
    /// Why there was no response (refused, timed out, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Milliseconds from sending the request to reading the whole response.
    pub latency_ms: f64,
    /// Whether this was a retransmission of a message already answered 2xx (see
    /// `--duplicate-rate`).
    #[serde(default)]
    pub duplicate: bool,
    /// Whether the sandbox will retransmit the message after this attempt, and in how many
    /// milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_in_ms: Option<u64>,
    /// Whether the sandbox will retransmit the message after this attempt.
    pub will_retry: bool,
}

impl Attempt {
    /// Whether the webhook answered 2xx.
    pub fn delivered(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }

    /// One line of text: what was sent where, and what came back.
    pub fn line(&self) -> String {
        let outcome = match (self.status, &self.error) {
            (Some(status), _) => StatusCode::from_u16(status).map_or_else(
                |_| status.to_string(),
                |s| format!("{} {}", s.as_u16(), s.canonical_reason().unwrap_or("")),
            ),
            (None, Some(error)) => format!("no response: {error}"),
            (None, None) => "no response".to_owned(),
        };
        let next = match self.retry_in_ms {
            Some(ms) => format!(", retry in {}", show_ms(ms)),
            None if self.delivered() => String::new(),
            None => ", giving up".to_owned(),
        };
        format!(
            "{} {} -> webhook {} {}  attempt {}{}: {} ({:.1} ms){next}",
            self.event_type,
            self.message_id,
            self.webhook_id,
            self.url,
            self.attempt,
            if self.duplicate { " (duplicate)" } else { "" },
            outcome.trim_end(),
            self.latency_ms,
        )
    }
}

/// `1500` as `1.5s`, `200` as `200ms`.
pub(crate) fn show_ms(ms: u64) -> String {
    if ms >= 1000 && ms.is_multiple_of(100) {
        format!("{}s", ms as f64 / 1000.0)
    } else {
        format!("{ms}ms")
    }
}

/// How a message is retransmitted.
#[derive(Clone, Debug)]
pub(crate) struct Policy {
    /// The waits before each retransmission of an unanswered message; empty: no retry.
    pub(crate) schedule: Vec<Duration>,
    /// Probability, 0.0 to 1.0, of one retransmission of a message answered 2xx.
    pub(crate) duplicate_rate: f64,
    /// How long an attempt may take.
    pub(crate) attempt_timeout: Duration,
}

/// An event to deliver: its id, type and body.
#[derive(Clone, Debug)]
pub(crate) struct Message {
    pub(crate) id: String,
    pub(crate) event_type: String,
    pub(crate) body: Bytes,
}

/// Sends one request and times it until the whole response has been read.
async fn attempt(
    http: &reqwest::Client,
    webhook: &StoredWebhook,
    message: &Message,
    timeout: Duration,
) -> (Option<u16>, Option<String>, f64) {
    let started = Instant::now();
    let result = async {
        let mut token = HeaderValue::from_str(&webhook.security_token)
            .map_err(|_| "the security token cannot be sent as a header value".to_owned())?;
        token.set_sensitive(true);
        let response = http
            .put(&webhook.url)
            .timeout(timeout)
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .header(TOKEN_HEADER, token)
            .body(message.body.clone())
            .send()
            .await
            .map_err(|e| transport_error(&e))?;
        let status = response.status().as_u16();
        response.bytes().await.map_err(|e| transport_error(&e))?;
        Ok::<_, String>(status)
    }
    .await;
    let ms = (started.elapsed().as_secs_f64() * 10_000.0).round() / 10.0;
    match result {
        Ok(status) => (Some(status), None, ms),
        Err(error) => (None, Some(error), ms),
    }
}

/// A transport error in a few words (reqwest's own message names the URL, shown already).
fn transport_error(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        "timed out".to_owned()
    } else if error.is_connect() {
        "could not connect".to_owned()
    } else {
        "request failed".to_owned()
    }
}

/// Delivers `message` to `webhook` under `policy`, calling `report` with every attempt;
/// returns whether the webhook answered 2xx. Before each retransmission the webhook is
/// looked up again: a webhook deleted meanwhile gets nothing more.
pub(crate) async fn deliver(
    http: &reqwest::Client,
    state: &State,
    project: &str,
    webhook: StoredWebhook,
    message: &Message,
    policy: &Policy,
    report: &(dyn Fn(Attempt) + Send + Sync),
) -> bool {
    let url = redact_url(&webhook.url).into_owned();
    let mut waits = policy.schedule.iter();
    let mut number = 0;
    loop {
        number += 1;
        let (status, error, latency_ms) =
            attempt(http, &webhook, message, policy.attempt_timeout).await;
        let delivered = status.is_some_and(|s| (200..300).contains(&s));
        let next = if delivered {
            None
        } else {
            waits.next().copied()
        };
        report(Attempt {
            message_id: message.id.clone(),
            event_type: message.event_type.clone(),
            webhook_id: webhook.id,
            url: url.clone(),
            attempt: number,
            status,
            error,
            latency_ms,
            duplicate: false,
            retry_in_ms: next.map(|d| d.as_millis().try_into().unwrap_or(u64::MAX)),
            will_retry: next.is_some(),
        });
        if delivered {
            if chance(policy.duplicate_rate) {
                if let Some(wait) = policy.schedule.first() {
                    tokio::time::sleep(*wait).await;
                }
                let (status, error, latency_ms) =
                    self::attempt(http, &webhook, message, policy.attempt_timeout).await;
                report(Attempt {
                    message_id: message.id.clone(),
                    event_type: message.event_type.clone(),
                    webhook_id: webhook.id,
                    url: url.clone(),
                    attempt: number + 1,
                    status,
                    error,
                    latency_ms,
                    duplicate: true,
                    retry_in_ms: None,
                    will_retry: false,
                });
            }
            return true;
        }
        let Some(wait) = next else {
            return false;
        };
        tokio::time::sleep(wait).await;
        if state.get(project, webhook.id).is_none() {
            return false;
        }
    }
}

/// `true` with probability `rate` (0.0 to 1.0), from the operating system's generator.
fn chance(rate: f64) -> bool {
    if rate <= 0.0 {
        return false;
    }
    if rate >= 1.0 {
        return true;
    }
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_err() {
        return false;
    }
    // 53 random bits, uniform in [0, 1).
    let unit = (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64;
    unit < rate
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_are_shown_short() {
        assert_eq!(show_ms(200), "200ms");
        assert_eq!(show_ms(1000), "1s");
        assert_eq!(show_ms(1500), "1.5s");
        assert_eq!(show_ms(1234), "1234ms");
    }

    #[test]
    fn chance_is_certain_at_the_ends() {
        assert!((0..100).all(|_| !chance(0.0)));
        assert!((0..100).all(|_| chance(1.0)));
    }
}
