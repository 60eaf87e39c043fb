//! The example handler: print one JSON line per event on stdout.

use std::fmt;
use std::future::Future;
use std::io::Write;
use std::pin::Pin;
use std::sync::Arc;

use knolyx_webhook_core::WebhookEvent;

/// A handler's failure: the receiver answers 500 and the claim is released, so Knolyx's
/// retry runs the handler again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandlerError(pub String);

impl fmt::Display for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for HandlerError {}

/// The future an [`EventHandler`] returns.
pub type HandlerFuture = Pin<Box<dyn Future<Output = Result<(), HandlerError>> + Send>>;

/// What the example receivers run for each event. The binaries use [`print_event_line`];
/// the demo and the tests plug in handlers that count, fail or panic on demand.
pub type EventHandler = Arc<dyn Fn(WebhookEvent) -> HandlerFuture + Send + Sync>;

/// The examples contract's output: the event re-serialised as `{"id":…,"type":…,"data":…}`,
/// one line on stdout.
pub fn print_event_line(event: &WebhookEvent) -> Result<(), HandlerError> {
    let mut line = event.to_json();
    line.push(b'\n');
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(&line)
        .and_then(|()| stdout.flush())
        .map_err(|e| HandlerError(format!("cannot write to stdout: {e}")))
}

/// The handler of the example binaries: [`print_event_line`], after `delay` (zero: at once),
/// failing the first `fail_first` attempts of each event id it sees (in this process). A
/// delayed handler logs when it starts, so that a script can tell it is running.
pub fn printing_handler(delay: std::time::Duration, fail_first: u32) -> EventHandler {
    let attempts = Arc::new(std::sync::Mutex::new(std::collections::HashMap::<
        String,
        u32,
    >::new()));
    Arc::new(move |event| {
        let attempt = {
            let mut attempts = attempts.lock().unwrap_or_else(|p| p.into_inner());
            let n = attempts.entry(event.id().to_owned()).or_insert(0);
            *n += 1;
            *n
        };
        Box::pin(async move {
            if !delay.is_zero() {
                tracing::info!(
                    id = event.id(),
                    ?delay,
                    "handler started; waiting before printing"
                );
                tokio::time::sleep(delay).await;
            }
            if attempt <= fail_first {
                return Err(HandlerError(format!(
                    "failing attempt {attempt} of {fail_first} on purpose \
                     (KNOLYX_EXAMPLE_HANDLER_FAIL_FIRST)"
                )));
            }
            print_event_line(&event)
        })
    })
}
