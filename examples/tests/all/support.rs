//! Helpers shared by the test modules.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use std::net::SocketAddr;

use knolyx_webhook_core::WebhookReceiver;
use knolyx_webhook_examples::{EventHandler, RunningReceiver, actix_receiver, axum_receiver};

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

/// `receiver` served by `framework` (`"axum"` or `"actix-web"`, one worker) on a free
/// loopback port, with a [`counting`] handler.
pub(crate) async fn serve_counting(
    framework: &str,
    receiver: WebhookReceiver,
) -> (RunningReceiver, Arc<AtomicUsize>) {
    let (handler, runs) = counting();
    let addr = SocketAddr::from(([127, 0, 0, 1], 0));
    let running = match framework {
        "axum" => axum_receiver::spawn(receiver, handler, addr).await.unwrap(),
        _ => actix_receiver::spawn(receiver, handler, addr, 1)
            .await
            .unwrap(),
    };
    (running, runs)
}
