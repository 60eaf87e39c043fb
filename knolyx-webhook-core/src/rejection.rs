//! Every response the pipeline gives without running the handler: rejections (4xx/5xx)
//! and answers (PING, completed duplicates).
//!
//! Each rejection is a small type with [`status`](Unauthorized::status),
//! [`body_text`](Unauthorized::body_text), `Display` and [`Error::source`]; [`Rejection`]
//! groups them. The statuses are defined here once, so every adapter answers the same:
//!
//! | outcome | type | status | extra header |
//! |---|---|---|---|
//! | method other than PUT or POST | [`MethodNotAllowed`] | 405 | `Allow: PUT, POST` |
//! | token missing, empty, repeated or wrong | [`Unauthorized`] | 401 | |
//! | body over the limit | [`PayloadTooLarge`] | 413 | |
//! | body could not be read | [`BodyReadFailed`] | 400 | |
//! | not a valid envelope | [`MalformedPayload`] | 400 | |
//! | known type, data of the wrong shape | [`InvalidEventData`] | 422 | |
//! | duplicate of a delivery still running | [`InFlight`] | 503 (configurable) | `Retry-After` |
//! | store unavailable | [`StoreUnavailable`] | 503 | `Retry-After` |
//! | PING (by default) | [`Answer`] | 200 | |
//! | duplicate of a completed delivery | [`Answer`] | 200 | [`DUPLICATE_HEADER`]`: true` |
//!
//! Bodies are short, fixed texts: they never echo the request.
//!
//! [`Error::source`]: std::error::Error::source

use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use http::header::{ALLOW, CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderName, HeaderValue, StatusCode};

use crate::event::ParseError;
use crate::store::{BoxError, StoreError};

/// The header set on the answer to a duplicate of a completed delivery (value `true`).
pub const DUPLICATE_HEADER: &str = "x-knolyx-webhook-duplicate";

const TEXT_PLAIN: HeaderValue = HeaderValue::from_static("text/plain; charset=utf-8");

/// A response described independently of any framework: status, headers and a short text
/// body. Adapters turn it into their own response type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    status: StatusCode,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: &'static str,
}

impl Reply {
    fn new(status: StatusCode, body: &'static str) -> Self {
        Self {
            status,
            headers: vec![(CONTENT_TYPE, TEXT_PLAIN)],
            body,
        }
    }

    fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    fn retry_after(self, after: Option<Duration>) -> Self {
        match after {
            Some(after) => {
                // Rounded up to whole seconds, saturating: `Duration::MAX` must not overflow.
                let secs = after
                    .as_secs()
                    .saturating_add(u64::from(after.subsec_nanos() > 0));
                self.header(RETRY_AFTER, HeaderValue::from(secs))
            }
            None => self,
        }
    }

    /// The status code.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The headers to set (always a `Content-Type`).
    pub fn headers(&self) -> &[(HeaderName, HeaderValue)] {
        &self.headers
    }

    /// The body, a short fixed text.
    pub fn body_text(&self) -> &'static str {
        self.body
    }

    /// An `http` response with any body type that can be made from [`Bytes`].
    pub fn into_response<B: From<Bytes>>(self) -> http::Response<B> {
        let mut response = http::Response::new(B::from(Bytes::from_static(self.body.as_bytes())));
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        for (name, value) in self.headers {
            headers.append(name, value);
        }
        response
    }
}

macro_rules! rejection_basics {
    ($name:ident, $body:literal) => {
        impl $name {
            /// The response's body: a short, fixed text.
            pub fn body_text(&self) -> &'static str {
                $body
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str($body)
            }
        }
    };
}

/// 405: the method is neither PUT (what Knolyx sends) nor POST.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct MethodNotAllowed;
rejection_basics!(MethodNotAllowed, "method not allowed");
impl StdError for MethodNotAllowed {}
impl MethodNotAllowed {
    /// 405 Method Not Allowed.
    pub fn status(&self) -> StatusCode {
        StatusCode::METHOD_NOT_ALLOWED
    }
}

/// 401: the `X-Webhook-Security-Token` header is missing, empty, repeated or wrong. The
/// body is the same in every case.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Unauthorized;
rejection_basics!(Unauthorized, "invalid webhook token");
impl StdError for Unauthorized {}
impl Unauthorized {
    /// 401 Unauthorized.
    pub fn status(&self) -> StatusCode {
        StatusCode::UNAUTHORIZED
    }
}

/// 413: the body is larger than the configured limit.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PayloadTooLarge {
    /// The limit, in bytes.
    pub limit: usize,
}
rejection_basics!(PayloadTooLarge, "payload too large");
impl StdError for PayloadTooLarge {}
impl PayloadTooLarge {
    /// A body over `limit` bytes: for adapters that find it out while reading.
    pub fn new(limit: usize) -> Self {
        Self { limit }
    }

    /// 413 Payload Too Large.
    pub fn status(&self) -> StatusCode {
        StatusCode::PAYLOAD_TOO_LARGE
    }
}

/// 400: the body could not be read (the connection failed mid-body, say).
#[derive(Debug)]
pub struct BodyReadFailed {
    source: BoxError,
}
rejection_basics!(BodyReadFailed, "failed to read the request body");
impl StdError for BodyReadFailed {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&*self.source)
    }
}
impl BodyReadFailed {
    /// A read failure with its cause.
    pub fn new(source: impl Into<BoxError>) -> Self {
        Self {
            source: source.into(),
        }
    }

    /// 400 Bad Request.
    pub fn status(&self) -> StatusCode {
        StatusCode::BAD_REQUEST
    }
}

/// 400: the body is not a valid envelope (malformed JSON, invalid UTF-8, missing or empty
/// `id` or `type`, an id over 255 bytes).
#[derive(Debug)]
pub struct MalformedPayload {
    source: ParseError,
}
rejection_basics!(MalformedPayload, "malformed webhook payload");
impl StdError for MalformedPayload {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&self.source)
    }
}
impl MalformedPayload {
    pub(crate) fn new(source: ParseError) -> Self {
        Self { source }
    }

    /// 400 Bad Request.
    pub fn status(&self) -> StatusCode {
        StatusCode::BAD_REQUEST
    }

    /// The parse error.
    pub fn parse_error(&self) -> &ParseError {
        &self.source
    }
}

/// 422: a known event type whose `data` does not fit its documented shape. The event is
/// not marked handled.
#[derive(Debug)]
pub struct InvalidEventData {
    source: ParseError,
}
rejection_basics!(InvalidEventData, "event data does not match its type");
impl StdError for InvalidEventData {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&self.source)
    }
}
impl InvalidEventData {
    pub(crate) fn new(source: ParseError) -> Self {
        Self { source }
    }

    /// 422 Unprocessable Entity.
    pub fn status(&self) -> StatusCode {
        StatusCode::UNPROCESSABLE_ENTITY
    }

    /// The message id and the event type of the rejected delivery.
    pub fn id_and_type(&self) -> Option<(&str, &str)> {
        self.source.id_and_type()
    }

    /// The parse error; its [`path`](ParseError::path) says which field did not fit.
    pub fn parse_error(&self) -> &ParseError {
        &self.source
    }
}

/// A retryable non-2xx (503 by default): another delivery of the same id is being handled
/// right now. Knolyx retries it later, and it is then either a completed duplicate or, if
/// that handler failed, handled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InFlight {
    status: StatusCode,
    retry_after: Option<Duration>,
}
rejection_basics!(InFlight, "delivery already in progress");
impl StdError for InFlight {}
impl InFlight {
    pub(crate) fn new(status: StatusCode, retry_after: Option<Duration>) -> Self {
        Self {
            status,
            retry_after,
        }
    }

    /// The configured status (503 Service Unavailable by default).
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The `Retry-After` to send, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }
}

/// 503 with `Retry-After`: the idempotency store failed, so the handler was not run (the
/// pipeline fails closed).
#[derive(Debug)]
pub struct StoreUnavailable {
    source: StoreError,
    retry_after: Duration,
}
rejection_basics!(StoreUnavailable, "temporarily unavailable");
impl StdError for StoreUnavailable {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&self.source)
    }
}
impl StoreUnavailable {
    pub(crate) fn new(source: StoreError, retry_after: Duration) -> Self {
        Self {
            source,
            retry_after,
        }
    }

    /// 503 Service Unavailable.
    pub fn status(&self) -> StatusCode {
        StatusCode::SERVICE_UNAVAILABLE
    }

    /// The `Retry-After` sent.
    pub fn retry_after(&self) -> Duration {
        self.retry_after
    }

    /// The store's error.
    pub fn store_error(&self) -> &StoreError {
        &self.source
    }
}

/// Any rejection of the pipeline.
#[derive(Debug)]
#[non_exhaustive]
pub enum Rejection {
    /// See [`MethodNotAllowed`].
    MethodNotAllowed(MethodNotAllowed),
    /// See [`Unauthorized`].
    Unauthorized(Unauthorized),
    /// See [`PayloadTooLarge`].
    PayloadTooLarge(PayloadTooLarge),
    /// See [`BodyReadFailed`].
    BodyReadFailed(BodyReadFailed),
    /// See [`MalformedPayload`].
    MalformedPayload(MalformedPayload),
    /// See [`InvalidEventData`].
    InvalidEventData(InvalidEventData),
    /// See [`InFlight`].
    InFlight(InFlight),
    /// See [`StoreUnavailable`].
    StoreUnavailable(StoreUnavailable),
}

macro_rules! each_rejection {
    ($self:expr, $r:ident => $e:expr) => {
        match $self {
            Rejection::MethodNotAllowed($r) => $e,
            Rejection::Unauthorized($r) => $e,
            Rejection::PayloadTooLarge($r) => $e,
            Rejection::BodyReadFailed($r) => $e,
            Rejection::MalformedPayload($r) => $e,
            Rejection::InvalidEventData($r) => $e,
            Rejection::InFlight($r) => $e,
            Rejection::StoreUnavailable($r) => $e,
        }
    };
}

impl Rejection {
    /// The status code.
    pub fn status(&self) -> StatusCode {
        each_rejection!(self, r => r.status())
    }

    /// The response's body: a short, fixed text.
    pub fn body_text(&self) -> &'static str {
        each_rejection!(self, r => r.body_text())
    }

    /// A short, stable name of the outcome, as recorded in the delivery's tracing span
    /// (`method_not_allowed`, `unauthorized`, …).
    pub fn outcome(&self) -> &'static str {
        match self {
            Rejection::MethodNotAllowed(_) => "method_not_allowed",
            Rejection::Unauthorized(_) => "unauthorized",
            Rejection::PayloadTooLarge(_) => "payload_too_large",
            Rejection::BodyReadFailed(_) => "body_read_failed",
            Rejection::MalformedPayload(_) => "malformed_payload",
            Rejection::InvalidEventData(_) => "invalid_event_data",
            Rejection::InFlight(_) => "in_flight",
            Rejection::StoreUnavailable(_) => "store_unavailable",
        }
    }

    /// The full response: status, headers (`Allow`, `Retry-After` where they apply) and body.
    pub fn reply(&self) -> Reply {
        let reply = Reply::new(self.status(), self.body_text());
        match self {
            Rejection::MethodNotAllowed(_) => {
                reply.header(ALLOW, HeaderValue::from_static("PUT, POST"))
            }
            Rejection::InFlight(r) => reply.retry_after(r.retry_after),
            Rejection::StoreUnavailable(r) => reply.retry_after(Some(r.retry_after)),
            _ => reply,
        }
    }

    /// Shorthand for `self.reply().into_response()`.
    pub fn into_response<B: From<Bytes>>(self) -> http::Response<B> {
        self.reply().into_response()
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        each_rejection!(self, r => fmt::Display::fmt(r, f))
    }
}

impl StdError for Rejection {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        // The composite is transparent: its source is the specific rejection's source.
        each_rejection!(self, r => r.source())
    }
}

macro_rules! rejection_from {
    ($($name:ident),*) => {$(
        impl From<$name> for Rejection {
            fn from(r: $name) -> Self {
                Rejection::$name(r)
            }
        }
    )*};
}
rejection_from!(
    MethodNotAllowed,
    Unauthorized,
    PayloadTooLarge,
    BodyReadFailed,
    MalformedPayload,
    InvalidEventData,
    InFlight,
    StoreUnavailable
);

/// A 2xx response the pipeline gives by itself, without running the handler.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Answer {
    /// A `PING`, answered by the pipeline (the default; see
    /// [`PingHandling`](crate::PingHandling)).
    Ping,
    /// A duplicate of a delivery that was handled within the retention window (or, in
    /// inbox mode, that the inbox already holds).
    Duplicate,
    /// Inbox mode: the event is stored in the inbox; a worker runs the handler later.
    Queued,
}

impl Answer {
    /// 200 OK.
    pub fn status(&self) -> StatusCode {
        StatusCode::OK
    }

    /// The response's body: a short, fixed text.
    pub fn body_text(&self) -> &'static str {
        match self {
            Answer::Ping => "pong",
            Answer::Duplicate => "duplicate",
            Answer::Queued => "queued",
        }
    }

    /// The outcome's name, as recorded in the delivery's tracing span.
    pub fn outcome(&self) -> &'static str {
        match self {
            Answer::Ping => "ping",
            Answer::Duplicate => "duplicate",
            Answer::Queued => "queued",
        }
    }

    /// The full response. A duplicate carries [`DUPLICATE_HEADER`]`: true`.
    pub fn reply(&self) -> Reply {
        let reply = Reply::new(self.status(), self.body_text());
        match self {
            Answer::Duplicate => reply.header(
                HeaderName::from_static(DUPLICATE_HEADER),
                HeaderValue::from_static("true"),
            ),
            Answer::Ping | Answer::Queued => reply,
        }
    }

    /// Shorthand for `self.reply().into_response()`.
    pub fn into_response<B: From<Bytes>>(self) -> http::Response<B> {
        self.reply().into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        let r = Rejection::from(InFlight::new(
            StatusCode::SERVICE_UNAVAILABLE,
            Some(Duration::from_millis(1500)),
        ));
        let reply = r.reply();
        let retry = reply.headers().iter().find(|(n, _)| n == RETRY_AFTER);
        assert_eq!(retry.map(|(_, v)| v.to_str().unwrap()), Some("2"));
    }

    #[test]
    fn retry_after_saturates_for_huge_durations() {
        // Duration::MAX has u64::MAX whole seconds and a fraction: rounding up must not
        // overflow (a panic in debug builds, `Retry-After: 0` in release ones).
        for after in [Duration::MAX, Duration::new(u64::MAX, 0)] {
            let r = Rejection::from(StoreUnavailable::new(
                StoreError::timeout(Duration::from_secs(1)),
                after,
            ));
            let reply = r.reply();
            let retry = reply.headers().iter().find(|(n, _)| n == RETRY_AFTER);
            assert_eq!(
                retry.map(|(_, v)| v.to_str().unwrap()),
                Some(u64::MAX.to_string().as_str())
            );
        }
    }

    #[test]
    fn into_response_carries_status_headers_and_body() {
        let response: http::Response<Bytes> = Rejection::from(MethodNotAllowed).into_response();
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(response.headers()[ALLOW], "PUT, POST");
        assert_eq!(response.body().as_ref(), b"method not allowed");
        let dup: http::Response<Bytes> = Answer::Duplicate.into_response();
        assert_eq!(dup.headers()[DUPLICATE_HEADER], "true");
    }
}
