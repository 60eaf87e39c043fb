use std::convert::Infallible;
use std::fmt;
use std::ops::{Deref, DerefMut};

use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
use axum_core::response::{IntoResponse, Response};
use http::StatusCode;
use http::request::Parts;
use knolyx_webhook_core::WebhookEvent;

/// Extracts the event that [`KnolyxWebhookLayer`](crate::KnolyxWebhookLayer) verified,
/// parsed and claimed for this request.
///
/// Without the layer in front of the route it fails with [`MissingKnolyxWebhookLayer`]
/// (500). As `Option<KnolyxEvent>` it is `None` instead. See the [crate docs](crate) for a
/// complete app.
///
/// ```
/// use axum::response::IntoResponse;
/// use knolyx_webhook_core::Event;
/// use knolyx_webhook_tower::KnolyxEvent;
///
/// async fn on_event(KnolyxEvent(event): KnolyxEvent) -> impl IntoResponse {
///     if let Event::CourseCompleted(done) = event.event() {
///         println!("user {} completed course {}", done.user.id, done.course.id);
///     }
///     // A 2xx marks the id handled; anything else lets Knolyx's retry run this again.
///     "ok"
/// }
/// # let _: axum::routing::MethodRouter = axum::routing::put(on_event);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KnolyxEvent(pub WebhookEvent);

impl KnolyxEvent {
    fn from_parts(parts: &Parts) -> Option<Self> {
        parts.extensions.get::<WebhookEvent>().cloned().map(Self)
    }
}

impl Deref for KnolyxEvent {
    type Target = WebhookEvent;

    fn deref(&self) -> &WebhookEvent {
        &self.0
    }
}

impl DerefMut for KnolyxEvent {
    fn deref_mut(&mut self) -> &mut WebhookEvent {
        &mut self.0
    }
}

impl<S: Send + Sync> FromRequestParts<S> for KnolyxEvent {
    type Rejection = MissingKnolyxWebhookLayer;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Self::from_parts(parts).ok_or(MissingKnolyxWebhookLayer { _priv: () })
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for KnolyxEvent {
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(Self::from_parts(parts))
    }
}

/// Rejection of [`KnolyxEvent`]: the request carries no event, because no
/// [`KnolyxWebhookLayer`](crate::KnolyxWebhookLayer) runs in front of the route. A
/// programming error, answered 500.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct MissingKnolyxWebhookLayer {
    _priv: (),
}

impl MissingKnolyxWebhookLayer {
    /// 500 Internal Server Error.
    pub fn status(&self) -> StatusCode {
        StatusCode::INTERNAL_SERVER_ERROR
    }

    /// The response's body, which names the missing layer.
    pub fn body_text(&self) -> &'static str {
        "missing knolyx webhook event: is `KnolyxWebhookLayer` added to this route?"
    }
}

impl fmt::Debug for MissingKnolyxWebhookLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MissingKnolyxWebhookLayer")
    }
}

impl fmt::Display for MissingKnolyxWebhookLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.body_text())
    }
}

impl std::error::Error for MissingKnolyxWebhookLayer {}

impl IntoResponse for MissingKnolyxWebhookLayer {
    fn into_response(self) -> Response {
        tracing::error!("{}", self.body_text());
        (self.status(), self.body_text()).into_response()
    }
}
