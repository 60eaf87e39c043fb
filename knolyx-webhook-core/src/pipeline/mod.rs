//! The receive pipeline, framework-free: [`WebhookReceiver`].
//!
//! One order, defined once, for every adapter:
//!
//! 1. **Method**: PUT or POST, else 405 with `Allow`.
//! 2. **Token**, from the headers alone, before the body is read: exactly one
//!    `X-Webhook-Security-Token` equal to a configured token, else 401.
//! 3. **Body limit** (64 KiB by default): 413 past it. A declared `Content-Length` over the
//!    limit is refused before reading.
//! 4. **Envelope**: `{id, type, data}`, else 400.
//! 5. **Type**: a known type whose data does not fit its shape → 422 (by default); an
//!    unknown type is delivered as [`Event::Unknown`](crate::Event::Unknown).
//! 6. **PING**: answered 200 by the pipeline (by default), never stored.
//! 7. **Claim** the id: a completed duplicate is answered 200 with
//!    [`DUPLICATE_HEADER`](crate::DUPLICATE_HEADER); a duplicate still in progress gets 503
//!    with `Retry-After` (configurable); a store failure gets 503 with `Retry-After`.
//!    Otherwise the handler runs, and its outcome settles the claim: 2xx completes it,
//!    anything else releases it so the retransmission runs the handler again.
//!
//! An adapter calls [`WebhookReceiver::begin`], then [`Reception::check_http_head`] (or
//! [`Reception::check_head`], for frameworks without the `http` crate's types) before reading
//! the body, reads at most [`Reception::body_limit`] bytes (refusing more with
//! [`Reception::too_large`]), then calls [`Reception::accept_body`]; the
//! [`Accepted::Deliver`] result carries the event for the handler and a [`Settlement`] to
//! finish with the handler's status.
//! [`WebhookReceiver::receive`] runs the steps in one call.
//!
//! The module's files, in the order a delivery meets them:
//!
//! - `config`: [`WebhookReceiverBuilder`], the defaults and [`ConfigError`];
//! - `reception`: [`WebhookReceiver`] and [`Reception`], the checks up to the claim;
//! - `settle`: how every claim ends ([`Settlement`], [`ClaimRef`], release on drop, after an
//!   ambiguous claim, and at shutdown);
//! - `inflight`: the registry of claims held, behind [`WebhookReceiver::drain`].
//!
//! ```
//! use bytes::Bytes;
//! use http::{HeaderMap, Method, StatusCode};
//! use knolyx_webhook_core::{Accepted, WebhookReceiver};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let receiver = WebhookReceiver::builder().token("s3cret-token").build()?;
//!
//! let mut headers = HeaderMap::new();
//! headers.insert("x-webhook-security-token", "s3cret-token".parse()?);
//! let body = Bytes::from_static(br#"{"id":"m-1","type":"COURSE_STARTED","data":{
//!     "user":{"id":1,"name":"Ana","email":"ana@example.com"},"course":{"id":2,"name":"Rust"}}}"#);
//!
//! // First delivery: the handler runs, then reports its status.
//! let Accepted::Deliver(delivery) = receiver.receive(&Method::PUT, &headers, body.clone()).await?
//! else { panic!("expected a delivery") };
//! let (event, settlement) = delivery.into_parts();
//! assert_eq!(event.event_type(), "COURSE_STARTED");
//! settlement.settle(StatusCode::OK.as_u16()).await;
//!
//! // The retransmission is answered by the pipeline: the handler does not run again.
//! let Accepted::Answered(answer) = receiver.receive(&Method::PUT, &headers, body).await?
//! else { panic!("expected a duplicate") };
//! assert_eq!(answer.outcome(), "duplicate");
//!
//! // A wrong token is refused with 401, before the body is looked at.
//! headers.insert("x-webhook-security-token", "guess".parse()?);
//! let rejection = receiver.receive(&Method::PUT, &headers, Bytes::new()).await.unwrap_err();
//! assert_eq!(rejection.status(), StatusCode::UNAUTHORIZED);
//! # Ok(())
//! # }
//! ```

mod config;
mod inflight;
mod reception;
mod settle;

use std::sync::Arc;

pub use config::{
    ConfigError, DEFAULT_BODY_LIMIT, DEFAULT_LEASE, DEFAULT_RETENTION, DEFAULT_RETRY_AFTER,
    InvalidDataHandling, PingHandling, StoreFailureHandling, WebhookReceiverBuilder,
};
pub use reception::{Accepted, Delivery, Reception, WebhookReceiver};
pub use settle::{ClaimRef, Settled, Settlement};

use crate::store::IdempotencyStore;
use crate::token::TokenVerifier;

/// What every handle of one receiver shares.
pub(crate) struct Inner {
    verifier: TokenVerifier,
    store: Arc<dyn IdempotencyStore>,
    /// Inbox mode: accepted events are stored here, not handed to the handler.
    inbox: Option<Arc<dyn crate::inbox::Inbox>>,
    config: config::Config,
    inflight: Arc<inflight::Inflight>,
}
