//! Test support (feature `testing`): the conformance suite every idempotency store must
//! pass, and what a unit test of your handler needs: realistic events ([`TestEvent`]), the
//! request Knolyx would send for one ([`TestEvent::request`], with the token header, for the
//! tower layer; `knolyx_webhook_actix::testing::request` for actix-web), and a claim for a
//! handler that completes it in its own transaction ([`claim`], [`claim_ref`]). The
//! repository's README, "Testing your handler", puts them together.
//!
//! ```
//! use knolyx_webhook_core::testing::TestEvent;
//! use knolyx_webhook_core::{Event, User};
//!
//! let event = TestEvent::course_payment_received()
//!     .user(User::new(42, "Ana Popescu", "ana@example.com"))
//!     .build();
//! let Event::CoursePaymentReceived(payment) = event.event() else { unreachable!() };
//! assert_eq!(payment.user.id, 42);
//! // The body Knolyx would send, to post to your own endpoint:
//! let body = TestEvent::ping().id("ping-1").to_body();
//! assert!(body.starts_with(br#"{"id":"ping-1","type":"PING""#));
//! ```

pub mod conformance;
mod events;
pub mod faulty;
mod handler;
pub mod inbox_conformance;
#[cfg(feature = "model")]
#[cfg_attr(docsrs, doc(cfg(feature = "model")))]
pub mod model;
mod proxy;
mod services;

pub use events::{TestEvent, random_id};
pub use faulty::{CallOutcome, Fault, FaultyStore, StoreCall, StoreOp, Times};
pub use handler::{claim, claim_ref, claim_with_lease};
pub use proxy::TcpProxy;
pub use services::service_url;

/// An error and every source below it, as one line (`error <- source <- …`): for tests that
/// check that a failure keeps its cause, and for messages. A source whose text the line
/// already holds (many errors print their source in their own text) is not repeated.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut next = error.source();
    while let Some(source) = next {
        let cause = source.to_string();
        if !text.contains(&cause) {
            text.push_str(" <- ");
            text.push_str(&cause);
        }
        next = source.source();
    }
    text
}

/// The vendor's sample deliveries (valid JSON versions of the guide's samples), one per
/// documented type, as `(type name, body)`.
pub const FIXTURES: [(&str, &[u8]); 5] = [
    ("PING", include_bytes!("../../fixtures/ping.json")),
    (
        "COURSE_COMPLETED",
        include_bytes!("../../fixtures/course_completed.json"),
    ),
    (
        "COURSE_STARTED",
        include_bytes!("../../fixtures/course_started.json"),
    ),
    (
        "COURSE_PAYMENT_RECEIVED",
        include_bytes!("../../fixtures/course_payment_received.json"),
    ),
    (
        "BUNDLE_PAYMENT_RECEIVED",
        include_bytes!("../../fixtures/bundle_payment_received.json"),
    ),
];
