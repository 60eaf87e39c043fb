use knolyx_webhook_core::WebhookReceiver;
use tower_layer::Layer;

use crate::service::KnolyxWebhook;

/// Runs the Knolyx receive pipeline in front of a service: see the [crate docs](crate) for
/// what it does and an example.
///
/// Built from a configured [`WebhookReceiver`] (tokens, store, body limit, PING handling).
/// Cloning it is cheap, and every clone shares the receiver and its idempotency store: add
/// one layer to several routes and a delivery handled on one is a duplicate on the others.
#[derive(Clone, Debug)]
pub struct KnolyxWebhookLayer {
    receiver: WebhookReceiver,
}

impl KnolyxWebhookLayer {
    /// A layer running `receiver`'s pipeline.
    pub fn new(receiver: WebhookReceiver) -> Self {
        Self { receiver }
    }

    /// The receiver this layer runs.
    pub fn receiver(&self) -> &WebhookReceiver {
        &self.receiver
    }
}

impl From<WebhookReceiver> for KnolyxWebhookLayer {
    fn from(receiver: WebhookReceiver) -> Self {
        Self::new(receiver)
    }
}

impl<S> Layer<S> for KnolyxWebhookLayer {
    type Service = KnolyxWebhook<S>;

    fn layer(&self, inner: S) -> Self::Service {
        KnolyxWebhook::new(inner, self.receiver.clone())
    }
}
