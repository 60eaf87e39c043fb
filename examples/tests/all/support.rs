//! Helpers shared by the test modules.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use knolyx_webhook_examples::EventHandler;

/// A handler that succeeds and counts its runs.
pub(crate) fn counting() -> (EventHandler, Arc<AtomicUsize>) {
    let runs = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&runs);
    let handler: EventHandler = Arc::new(move |_event| {
        counted.fetch_add(1, Ordering::SeqCst);
        Box::pin(async { Ok(()) })
    });
    (handler, runs)
}
