//! Shared pieces of the example receivers: configuration from the environment (the
//! examples contract in the design), the store it selects, and the handler that prints one
//! JSON line per event.
//!
//! The receivers themselves (`axum-receiver`, `actix-receiver`) are thin binaries over the
//! modules here, so that the demo and the tests can start them in-process.

pub mod actix_receiver;
pub mod axum_receiver;
pub mod config;
pub mod handler;
pub mod metrics;

pub use config::{InboxConfig, ROUTE, ReceiverConfig, StoreChoice, init_logging};
pub use handler::{EventHandler, HandlerError, HandlerFuture, print_event_line, printing_handler};
pub mod running;
pub mod scenarios;

pub use running::{RunningReceiver, ShutdownReport, Termination, terminated};

// The repository's README: its Rust snippets are compiled as doctests here, where every
// crate they use is a dependency.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;
