//! Reception: the [`WebhookReceiver`] and one delivery going through its checks
//! ([`Reception`]), up to the claim that hands the event to the handler ([`Accepted`]).

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Method};
use tracing::{Span, field};

use super::Inner;
use super::config::{
    InvalidDataHandling, PingHandling, StoreFailureHandling, WebhookReceiverBuilder,
};
use super::settle::{Claim, ClaimAttempt, Settlement};
use crate::event::{Event, ParseErrorKind, WebhookEvent};
use crate::rejection::{
    Answer, InFlight, InvalidEventData, MalformedPayload, MethodNotAllowed, PayloadTooLarge,
    Rejection, StoreUnavailable, Unauthorized,
};
use crate::store::{ClaimOutcome, IdempotencyStore, SettleOutcome};
use crate::token::TOKEN_HEADER;

/// The configured receive pipeline. Cheap to clone (an `Arc` inside); share one across
/// routes, workers and threads.
#[derive(Clone)]
pub struct WebhookReceiver {
    pub(crate) inner: Arc<Inner>,
}

impl fmt::Debug for WebhookReceiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        f.debug_struct("WebhookReceiver")
            .field("verifier", &i.verifier)
            .field("store", &i.store)
            .field("inbox", &i.inbox)
            .field("config", &i.config)
            .field("in_flight", &i.inflight.len())
            .finish()
    }
}

impl WebhookReceiver {
    /// A builder. At least one token is required; everything else has a default.
    pub fn builder() -> WebhookReceiverBuilder {
        WebhookReceiverBuilder::new()
    }

    /// The largest body accepted, in bytes.
    pub fn body_limit(&self) -> usize {
        self.inner.config.body_limit
    }

    /// The idempotency store.
    pub fn store(&self) -> &Arc<dyn IdempotencyStore> {
        &self.inner.store
    }

    /// Starts one delivery: opens its tracing span (`knolyx_webhook.delivery`, with the
    /// fields `id`, `event_type` and `outcome`; never the token or the body).
    pub fn begin(&self) -> Reception {
        Reception {
            receiver: self.clone(),
            span: tracing::info_span!(
                "knolyx_webhook.delivery",
                id = field::Empty,
                event_type = field::Empty,
                outcome = field::Empty,
            ),
            #[cfg(feature = "metrics")]
            event_type: std::sync::OnceLock::new(),
        }
    }

    /// All the steps in one call: [`check_http_head`](Reception::check_http_head), then
    /// [`accept_body`](Reception::accept_body).
    pub async fn receive(
        &self,
        method: &Method,
        headers: &HeaderMap,
        body: Bytes,
    ) -> Result<Accepted, Rejection> {
        let reception = self.begin();
        reception.check_http_head(method, headers)?;
        reception.accept_body(body).await
    }

    /// How many claims this receiver holds now: deliveries whose handler runs, and settles
    /// still finishing in the background.
    pub fn in_flight(&self) -> usize {
        self.inner.inflight.len()
    }

    /// Resolves once every claim this receiver made has been settled: running handlers
    /// finished and their outcome stored, and the releases and completions that finish in
    /// the background (after a dropped request, a panic, or a claim whose outcome was
    /// unknown) done.
    ///
    /// Call it at shutdown, once the server has stopped accepting requests and before the
    /// runtime ends: tasks still queued when a Tokio runtime shuts down never run, and
    /// their claims would stay in progress for the lease. Bound the wait, then release
    /// what is still running with [`release_in_flight`](Self::release_in_flight):
    ///
    /// ```
    /// # use std::time::Duration;
    /// # async fn shutdown(receiver: knolyx_webhook_core::WebhookReceiver) {
    /// // After the server's graceful shutdown has stopped accepting requests:
    /// if tokio::time::timeout(Duration::from_secs(25), receiver.drain()).await.is_err() {
    ///     // Handlers still running: free their ids for another replica at once.
    ///     receiver.release_in_flight().await;
    /// }
    /// # }
    /// ```
    pub fn drain(&self) -> impl Future<Output = ()> + Send + 'static {
        let inner = Arc::clone(&self.inner);
        async move { inner.inflight.drained().await }
    }

    /// Releases the claim of every delivery still in flight (fenced by each owner token),
    /// so that their retransmissions, on another replica say, run the handler at once
    /// instead of waiting for the lease to expire. Returns how many the store released.
    ///
    /// For shutdown, after [`drain`](Self::drain) timed out: the handlers may still be
    /// running, and their own settle then finds the claim gone ([`Settled::LeaseLost`](super::Settled::LeaseLost)).
    pub async fn release_in_flight(&self) -> usize {
        let inner = &self.inner;
        let mut released = 0;
        for (key, id, owner) in inner.inflight.snapshot() {
            let release = inner.store.release(&id, owner);
            #[cfg(feature = "metrics")]
            let release = crate::metrics::store("release", release);
            match release.await {
                Ok(SettleOutcome::Settled) => {
                    inner.inflight.mark_released(key);
                    released += 1;
                    tracing::info!(
                        %id,
                        "released the claim of a delivery still running at shutdown"
                    );
                }
                Ok(SettleOutcome::NotOwner) => inner.inflight.mark_released(key),
                Err(error) => tracing::warn!(
                    %id,
                    kind = error.kind().as_str(),
                    error = &error as &dyn std::error::Error,
                    "could not release the claim of a delivery still running at shutdown; \
                     its lease will expire"
                ),
            }
        }
        released
    }
}

/// One delivery going through the pipeline; see [`WebhookReceiver::begin`].
#[derive(Debug)]
pub struct Reception {
    receiver: WebhookReceiver,
    span: Span,
    /// The `event_type` label, once the type is known.
    #[cfg(feature = "metrics")]
    event_type: std::sync::OnceLock<&'static str>,
}

impl Reception {
    /// The delivery's tracing span. Adapters run the handler inside it.
    pub fn span(&self) -> &Span {
        &self.span
    }

    /// The largest body accepted, in bytes: read no more than this.
    pub fn body_limit(&self) -> usize {
        self.receiver.inner.config.body_limit
    }

    /// Steps 1 to 3 from the request head alone: the method, the token header's values
    /// (every occurrence of `X-Webhook-Security-Token`, in order) and the declared
    /// `Content-Length`, if any.
    pub fn check_head<'a>(
        &self,
        method: &str,
        token_values: impl IntoIterator<Item = &'a [u8]>,
        content_length: Option<u64>,
    ) -> Result<(), Rejection> {
        let result = self.check_head_inner(method, token_values, content_length);
        if let Err(rejection) = &result {
            self.rejected(rejection);
        }
        result
    }

    fn check_head_inner<'a>(
        &self,
        method: &str,
        token_values: impl IntoIterator<Item = &'a [u8]>,
        content_length: Option<u64>,
    ) -> Result<(), Rejection> {
        if method != "PUT" && method != "POST" {
            return Err(MethodNotAllowed.into());
        }
        let mut values = token_values.into_iter();
        let token = match (values.next(), values.next()) {
            (Some(token), None) => token,
            _ => return Err(Unauthorized.into()),
        };
        if !self.receiver.inner.verifier.verify(token) {
            return Err(Unauthorized.into());
        }
        let limit = self.body_limit();
        if content_length.is_some_and(|len| len > limit as u64) {
            return Err(PayloadTooLarge { limit }.into());
        }
        Ok(())
    }

    /// [`check_head`](Self::check_head) for the `http` crate's types.
    pub fn check_http_head(&self, method: &Method, headers: &HeaderMap) -> Result<(), Rejection> {
        let content_length = headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        self.check_head(
            method.as_str(),
            headers.get_all(TOKEN_HEADER).iter().map(|v| v.as_bytes()),
            content_length,
        )
    }

    /// A rejection found by the adapter itself (the body could not be read, or was too
    /// long), recorded in the span and logged like the pipeline's own.
    pub fn reject(&self, rejection: Rejection) -> Rejection {
        self.rejected(&rejection);
        rejection
    }

    /// The 413 for a body found over the limit while reading it (without a
    /// `Content-Length`, say), recorded and logged like the pipeline's own rejections.
    pub fn too_large(&self) -> Rejection {
        self.reject(PayloadTooLarge::new(self.body_limit()).into())
    }

    /// Steps 3 to 7 on the whole body: limit, envelope, type, PING, claim.
    pub async fn accept_body(self, body: Bytes) -> Result<Accepted, Rejection> {
        let result = self.accept_body_inner(body).await;
        match &result {
            Err(rejection) => self.rejected(rejection),
            Ok(Accepted::Answered(answer)) => {
                self.span.record("outcome", answer.outcome());
                #[cfg(feature = "metrics")]
                crate::metrics::delivery(answer.outcome(), self.event_type_label());
                // At INFO: "did Knolyx reach me?" is answered by the PING. The outcome is
                // the span's field, not repeated on the line.
                self.span.in_scope(|| match answer {
                    Answer::Ping => tracing::info!("PING answered"),
                    Answer::Duplicate => tracing::info!("duplicate of a handled delivery; dropped"),
                    Answer::Queued => tracing::info!("stored in the inbox"),
                });
            }
            Ok(Accepted::Deliver(_)) => {}
        }
        result
    }

    async fn accept_body_inner(&self, body: Bytes) -> Result<Accepted, Rejection> {
        let inner = &self.receiver.inner;
        let config = &inner.config;
        if body.len() > config.body_limit {
            return Err(PayloadTooLarge::new(config.body_limit).into());
        }
        let lenient = config.invalid_data == InvalidDataHandling::DeliverAsUnknown;
        let event = WebhookEvent::parse(body, lenient).map_err(|e| {
            if let Some((id, event_type)) = e.id_and_type() {
                self.span.record("id", id);
                self.span.record("event_type", event_type);
                #[cfg(feature = "metrics")]
                self.known_type(event_type);
            }
            match e.kind() {
                ParseErrorKind::InvalidData => Rejection::from(InvalidEventData::new(e)),
                _ => MalformedPayload::new(e).into(),
            }
        })?;
        self.span.record("id", event.id());
        self.span.record("event_type", event.event_type());
        #[cfg(feature = "metrics")]
        self.known_type(event.event_type());

        if matches!(event.event(), Event::Ping(_)) {
            return match config.ping {
                PingHandling::Answer => Ok(Accepted::Answered(Answer::Ping)),
                PingHandling::Forward => {
                    Ok(self.deliver(event, Settlement::new(None, self.span.clone())))
                }
            };
        }

        if let Some(inbox) = &inner.inbox {
            return match inbox.accept(&event).await {
                Ok(crate::inbox::Accepted::Stored) => Ok(Accepted::Answered(Answer::Queued)),
                Ok(crate::inbox::Accepted::Duplicate) => Ok(Accepted::Answered(Answer::Duplicate)),
                Err(error) => Err(StoreUnavailable::new(error, config.store_retry_after).into()),
            };
        }

        // Dropped before the store answers (the request was cancelled), the attempt
        // releases what the store may have taken; see the `settle` module.
        let attempt = ClaimAttempt::new(inner, event.shared_id(), self.span.clone());
        match attempt.run().await {
            Claim::Won(claim) => {
                Ok(self.deliver(event, Settlement::new(Some(claim), self.span.clone())))
            }
            Claim::Taken(ClaimOutcome::InProgress) => {
                Err(InFlight::new(config.in_flight_status, config.in_flight_retry_after).into())
            }
            Claim::Taken(_) => Ok(Accepted::Answered(Answer::Duplicate)),
            Claim::Failed(error) => match config.store_failure {
                StoreFailureHandling::FailClosed => {
                    Err(StoreUnavailable::new(error, config.store_retry_after).into())
                }
                StoreFailureHandling::FailOpen => {
                    self.span.in_scope(|| {
                        tracing::error!(
                            kind = error.kind().as_str(),
                            error = &error as &dyn std::error::Error,
                            "idempotency store failed; running the handler without a claim \
                             (fail-open)"
                        )
                    });
                    Ok(self.deliver(event, Settlement::new(None, self.span.clone())))
                }
            },
        }
    }

    fn deliver(&self, event: WebhookEvent, settlement: Settlement) -> Accepted {
        #[cfg(feature = "metrics")]
        let settlement = settlement.metered(self.event_type_label());
        Accepted::Deliver(Delivery { event, settlement })
    }

    #[cfg(feature = "metrics")]
    fn known_type(&self, event_type: &str) {
        let _ = self
            .event_type
            .set(crate::metrics::event_type_label(event_type));
    }

    #[cfg(feature = "metrics")]
    fn event_type_label(&self) -> &'static str {
        self.event_type
            .get()
            .copied()
            .unwrap_or(crate::metrics::NO_TYPE)
    }

    fn rejected(&self, rejection: &Rejection) {
        let outcome = rejection.outcome();
        self.span.record("outcome", outcome);
        #[cfg(feature = "metrics")]
        crate::metrics::delivery(outcome, self.event_type_label());
        let _entered = self.span.enter();
        match rejection {
            // The kind and the whole source chain (the fmt subscriber prints
            // `error.sources`): a wrong password is told from an outage.
            // The outcome is the span's field: not repeated on the line.
            Rejection::StoreUnavailable(r) if self.receiver.inner.inbox.is_some() => {
                tracing::error!(
                    kind = r.store_error().kind().as_str(),
                    error = r.store_error() as &dyn std::error::Error,
                    "inbox failed; nothing acknowledged"
                )
            }
            Rejection::StoreUnavailable(r) => tracing::error!(
                kind = r.store_error().kind().as_str(),
                error = r.store_error() as &dyn std::error::Error,
                "idempotency store failed"
            ),
            Rejection::InFlight(_) => tracing::info!("duplicate while in progress"),
            Rejection::MalformedPayload(r) => {
                // Only the error's fixed text: the parser's own message may quote the body.
                tracing::warn!(reason = %r.parse_error(), "rejected")
            }
            // The path of documented field names: never a value from the body.
            Rejection::InvalidEventData(r) => match r.parse_error().path() {
                Some(path) => tracing::warn!(path, "rejected: data does not fit its type"),
                None => tracing::warn!("rejected: data does not fit its type"),
            },
            _ => tracing::warn!("rejected"),
        }
    }
}

/// What the pipeline decided for a delivery that passed its checks.
#[derive(Debug)]
#[must_use = "a delivery must be handed to the handler and settled"]
// Moved once per delivery, straight into a match: boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
pub enum Accepted {
    /// Run the handler with this event, then settle with its outcome.
    Deliver(Delivery),
    /// Answered by the pipeline (PING, completed duplicate): do not run the handler.
    Answered(Answer),
}

/// An event for the handler, and the [`Settlement`] to finish once it has run.
#[derive(Debug)]
#[must_use = "a delivery must be handed to the handler and settled"]
pub struct Delivery {
    event: WebhookEvent,
    settlement: Settlement,
}

impl Delivery {
    /// The event.
    pub fn event(&self) -> &WebhookEvent {
        &self.event
    }

    /// The event for the handler, and the settlement for the adapter.
    pub fn into_parts(self) -> (WebhookEvent, Settlement) {
        (self.event, self.settlement)
    }
}
