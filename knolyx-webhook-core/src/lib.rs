//! Framework-free core of [knolyx-webhook]: receive [Knolyx] webhooks safely.
//!
//! Before your handler runs, the pipeline has authenticated the request (constant-time
//! token check), parsed the event into types, and dropped retransmissions through an
//! idempotency store; a failing handler never marks its event handled. The adapters
//! (`knolyx-webhook-tower` for axum/tower/hyper, `knolyx-webhook-actix` for actix-web) only
//! move bytes in and responses out; every decision lives here, once.
//!
//! - [`event`]: [`WebhookEvent`] (id, typed [`Event`], raw bytes) and the payload types.
//! - [`token`]: [`SecretToken`] (redacted) and the constant-time [`TokenVerifier`].
//! - [`pipeline`]: [`WebhookReceiver`], the receive pipeline and its configuration.
//! - [`rejection`]: every rejection and answer, with its status.
//! - [`store`]: the [`IdempotencyStore`] trait and the default [`MemoryStore`].
//! - [`metrics`]: the names, labels and values of the metrics emitted with the feature
//!   `metrics`.
//! - `testing` (feature `testing`, so not in a default docs build: see docs.rs, or
//!   `cargo doc --features testing`): what a unit test of your handler needs (realistic
//!   events, the request Knolyx would send, a claim) and the store conformance suite. Enable
//!   it in your `[dev-dependencies]`:
//!   `knolyx-webhook-core = { version = "0.1", features = ["testing"] }`.
//!
//! ```
//! use bytes::Bytes;
//! use http::{HeaderMap, Method};
//! use knolyx_webhook_core::{Accepted, Event, WebhookReceiver};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let receiver = WebhookReceiver::builder().token("s3cret-token").build()?;
//! let mut headers = HeaderMap::new();
//! headers.insert("x-webhook-security-token", "s3cret-token".parse()?);
//! let body = Bytes::from_static(br#"{"id":"m-1","type":"BUNDLE_PAYMENT_RECEIVED","data":{
//!     "user":{"id":77,"name":"Li Wei","email":"li@example.net"},
//!     "bundle":{"id":31,"slug":"data","name":"Data Science"}}}"#);
//!
//! match receiver.receive(&Method::PUT, &headers, body).await {
//!     Ok(Accepted::Deliver(delivery)) => {
//!         let (event, settlement) = delivery.into_parts();
//!         let ok = match event.event() {
//!             Event::BundlePaymentReceived(p) => p.bundle.id == 31, // your handler here
//!             _ => true,
//!         };
//!         settlement.settle_with(ok).await;
//!     }
//!     Ok(Accepted::Answered(answer)) => println!("{}", answer.body_text()),
//!     Err(rejection) => println!("{} {}", rejection.status(), rejection.body_text()),
//! }
//! # Ok(())
//! # }
//! ```
//!
//! [knolyx-webhook]: https://github.com/knolyx-webhook/knolyx-webhook
//! [Knolyx]: https://knolyx.com
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod event;
pub mod inbox;
pub mod metrics;
pub mod pipeline;
pub mod rejection;
pub mod store;
pub mod token;

#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;

pub use event::{
    Bundle, BundleData, Course, CourseData, Event, ParseError, ParseErrorKind, PingData,
    UnknownEvent, User, WebhookEvent,
};
pub use pipeline::{
    Accepted, ClaimRef, ConfigError, Delivery, InvalidDataHandling, PingHandling, Reception,
    Settled, Settlement, StoreFailureHandling, WebhookReceiver, WebhookReceiverBuilder,
};
pub use rejection::{Answer, DUPLICATE_HEADER, Rejection, Reply};
pub use store::{IdempotencyStore, MemoryStore};
pub use token::{SecretToken, TOKEN_HEADER, TokenVerifier};
