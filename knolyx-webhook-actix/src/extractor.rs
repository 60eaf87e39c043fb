//! [`KnolyxEvent`]: the extractor that runs the receive pipeline before the handler.

use std::future::poll_fn;
use std::ops::Deref;

use actix_web::dev::Payload;
use actix_web::error::PayloadError;
use actix_web::http::header::CONTENT_LENGTH;
use actix_web::web::{Bytes, BytesMut};
use actix_web::{FromRequest, HttpMessage, HttpRequest};
use futures_util::StreamExt;
use futures_util::future::LocalBoxFuture;
use knolyx_webhook_core::rejection::BodyReadFailed;
use knolyx_webhook_core::{Accepted, ClaimRef, Reception, TOKEN_HEADER, WebhookEvent};

use crate::middleware::{DeliverySlot, receiver_of};
use crate::rejection::KnolyxEventRejection;

/// A Knolyx event that passed the receive pipeline: authenticated, within the body limit,
/// parsed, and claimed in the idempotency store. The handler runs only for such events.
///
/// Extracting it, in this order:
///
/// 1. checks that [`KnolyxWebhookMiddleware`](crate::KnolyxWebhookMiddleware) wraps the
///    route, else 500 ([`KnolyxEventRejection::MissingMiddleware`]);
/// 2. finds the [`WebhookReceiver`](knolyx_webhook_core::WebhookReceiver) in the app data
///    (`App::app_data(receiver)`, or a `web::Data<WebhookReceiver>`), else 500
///    ([`KnolyxEventRejection::MissingReceiver`]);
/// 3. checks the method and the `X-Webhook-Security-Token` header, and a declared
///    `Content-Length`, from the request head alone (405, 401, 413);
/// 4. reads the body, never more than the limit (413, chunked bodies included);
/// 5. parses and types the event (400, 422), answers a `PING` and the duplicate of a
///    completed delivery itself (200, handler not run), claims the id (503 while another
///    delivery of it runs, or when the store fails);
/// 6. leaves the claim's [`Settlement`](knolyx_webhook_core::Settlement) for the middleware,
///    which settles it with the handler's status.
///
/// Every status comes from the core pipeline; see [`KnolyxEventRejection`] for how refusals
/// and answers become responses. The [crate docs](crate) have a complete example.
#[derive(Debug)]
pub struct KnolyxEvent(pub WebhookEvent);

impl KnolyxEvent {
    /// The event.
    pub fn into_inner(self) -> WebhookEvent {
        self.0
    }
}

impl Deref for KnolyxEvent {
    type Target = WebhookEvent;

    fn deref(&self) -> &WebhookEvent {
        &self.0
    }
}

impl FromRequest for KnolyxEvent {
    type Error = KnolyxEventRejection;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let slot = req.extensions().get::<DeliverySlot>().cloned();
        // Recorded now, while the handler's extractors are created and before any is polled,
        // so that a `KnolyxClaim` knows, in any argument order, that a claim may come.
        let extraction = slot.as_ref().map(DeliverySlot::start_event);
        let head = check_head(req, slot);
        let payload = payload.take();
        let req = req.clone();
        Box::pin(async move {
            let (reception, slot, declared) = head?;
            let body = read_body(payload, reception.body_limit(), declared)
                .await
                .map_err(|e| reception.reject(BodyReadFailed::new(e).into()))?;
            match reception.accept_body(body).await? {
                Accepted::Deliver(delivery) => {
                    let (event, settlement) = delivery.into_parts();
                    // For a handler completing the claim in its own transaction: through
                    // `KnolyxClaim`, and in the extensions for code that reads them later.
                    let claim = settlement.claim_ref();
                    if let Some(claim) = &claim {
                        req.extensions_mut().insert(claim.clone());
                    }
                    slot.put_settlement(settlement);
                    if let Some(extraction) = extraction {
                        extraction.finish(claim);
                    }
                    Ok(KnolyxEvent(event))
                }
                // Refused or answered: `extraction` is dropped, finishing without a claim.
                Accepted::Answered(answer) => Err(answer.into()),
            }
        })
    }
}

/// The claim of the delivery whose [`KnolyxEvent`] the same handler takes, for a handler
/// that completes the claim itself, in its own transaction beside its side effect (for
/// example with `knolyx_webhook_postgres::PostgresStore::complete_in_transaction`): then no
/// crash can separate the side effect from the completion.
///
/// Take it beside [`KnolyxEvent`], in any order: it resolves once the event's extraction
/// has claimed the delivery. Extracting it fails with a 500
/// ([`KnolyxEventRejection::MissingEvent`]) when the handler takes no [`KnolyxEvent`], and
/// ([`KnolyxEventRejection::NoClaim`]) when the delivery has no claim: a forwarded `PING`,
/// or fail-open after a store failure. Take `Option<KnolyxClaim>` to run the handler then
/// too, with `None`.
///
/// Why not `web::ReqData<ClaimRef>`: actix-web creates every extractor of a handler (calls
/// each `from_request`) before it polls any, and `ReqData` reads the request's extensions
/// in `from_request`, before `KnolyxEvent` has claimed anything. It always fails (500), in
/// either order, and the handler never runs. (The [`ClaimRef`] is still inserted in the
/// extensions, for code that reads them once the handler runs.)
///
/// ```
/// use std::sync::Arc;
///
/// use actix_web::{App, HttpResponse, test, web};
/// use knolyx_webhook_actix::{KnolyxClaim, KnolyxEvent, KnolyxWebhookMiddleware};
/// use knolyx_webhook_core::store::{IdempotencyStore, SettleOutcome};
/// use knolyx_webhook_core::{MemoryStore, WebhookReceiver};
///
/// async fn on_event(
///     KnolyxEvent(event): KnolyxEvent,
///     KnolyxClaim(claim): KnolyxClaim,
///     store: web::Data<dyn IdempotencyStore>,
/// ) -> HttpResponse {
///     println!("handling {}", event.id());
///     // With PostgreSQL: the side effect and `complete_in_transaction(&mut tx, &claim)` in
///     // one transaction. The same, by hand: the fenced completion, then `mark_completed`.
///     match store.complete(claim.id(), claim.owner(), claim.retention()).await {
///         Ok(SettleOutcome::Settled) => {
///             claim.mark_completed(); // the middleware does not complete it again
///             HttpResponse::Ok().finish()
///         }
///         // The lease was lost, or the store failed: an error status lets Knolyx retry.
///         _ => HttpResponse::ServiceUnavailable().finish(),
///     }
/// }
///
/// # actix_web::rt::System::new().block_on(async {
/// let store: Arc<dyn IdempotencyStore> = Arc::new(MemoryStore::new());
/// let receiver = WebhookReceiver::builder()
///     .token("s3cret-token")
///     .shared_store(Arc::clone(&store))
///     .build()?;
/// let app = App::new()
///     .app_data(receiver.clone())
///     .app_data(web::Data::from(store))
///     .wrap(KnolyxWebhookMiddleware)
///     .route("/webhooks/knolyx", web::route().to(on_event));
/// let app = test::init_service(app).await;
///
/// let body = r#"{"id":"m-1","type":"COURSE_STARTED","data":{
///     "user":{"id":1,"name":"Ana","email":"ana@example.com"},"course":{"id":2,"name":"Rust"}}}"#;
/// let delivery = || {
///     test::TestRequest::put()
///         .uri("/webhooks/knolyx")
///         .insert_header(("X-Webhook-Security-Token", "s3cret-token"))
///         .set_payload(body)
///         .to_request()
/// };
/// assert_eq!(test::call_service(&app, delivery()).await.status(), 200);
/// // Completed by the handler: the retransmission is a duplicate.
/// let again = test::call_service(&app, delivery()).await;
/// assert!(again.headers().contains_key("x-knolyx-webhook-duplicate"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct KnolyxClaim(pub ClaimRef);

impl KnolyxClaim {
    /// The claim.
    pub fn into_inner(self) -> ClaimRef {
        self.0
    }
}

impl Deref for KnolyxClaim {
    type Target = ClaimRef;

    fn deref(&self) -> &ClaimRef {
        &self.0
    }
}

impl FromRequest for KnolyxClaim {
    type Error = KnolyxEventRejection;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        // Decided when polled: by then, every extractor of the handler has been created.
        let slot = req.extensions().get::<DeliverySlot>().cloned();
        Box::pin(async move {
            let slot = slot.ok_or(KnolyxEventRejection::MissingMiddleware)?;
            let claim = poll_fn(|cx| slot.poll_claim(cx)).await;
            if let Err(KnolyxEventRejection::MissingEvent) = claim {
                tracing::error!(
                    "knolyx-webhook: `KnolyxClaim` taken without a `KnolyxEvent` in the same \
                     handler; refusing the delivery"
                );
            }
            claim.map(KnolyxClaim)
        })
    }
}

/// Steps 1 to 3: everything decided before the body is read.
fn check_head(
    req: &HttpRequest,
    slot: Option<DeliverySlot>,
) -> Result<(Reception, DeliverySlot, Option<u64>), KnolyxEventRejection> {
    let slot = slot.ok_or_else(|| {
        tracing::error!(
            "knolyx-webhook: `KnolyxWebhookMiddleware` does not wrap this route; refusing \
                 the delivery"
        );
        KnolyxEventRejection::MissingMiddleware
    })?;
    // Begun by the middleware; or here, when the receiver is registered closer to the route
    // than the middleware (the handler then runs outside the delivery's span).
    let reception = match slot.take_reception() {
        Some(reception) => reception,
        None => receiver_of(req)
            .ok_or_else(|| {
                tracing::error!(
                    "knolyx-webhook: no `WebhookReceiver` in the app data; refusing the delivery"
                );
                KnolyxEventRejection::MissingReceiver
            })?
            .begin(),
    };
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    reception.check_head(
        req.method().as_str(),
        req.headers()
            .get_all(TOKEN_HEADER)
            .map(|value| value.as_bytes()),
        declared,
    )?;
    Ok((reception, slot, declared))
}

/// Reads the body, stopping as soon as it is longer than `limit`: the pipeline then answers
/// 413 (for chunked bodies too, which declare no length).
async fn read_body(
    mut payload: Payload,
    limit: usize,
    declared: Option<u64>,
) -> Result<Bytes, PayloadError> {
    // Most bodies arrive in one chunk: keep it without copying.
    let mut first: Option<Bytes> = None;
    let mut joined: Option<BytesMut> = None;
    while let Some(chunk) = payload.next().await {
        let chunk = chunk?;
        let len = match (&mut first, &mut joined) {
            (None, None) => {
                let len = chunk.len();
                first = Some(chunk);
                len
            }
            (Some(head), None) => {
                let capacity = declared
                    .and_then(|n| usize::try_from(n).ok())
                    .unwrap_or(0)
                    .min(limit.saturating_add(1))
                    .max(head.len() + chunk.len());
                let mut buf = BytesMut::with_capacity(capacity);
                buf.extend_from_slice(head);
                buf.extend_from_slice(&chunk);
                first = None;
                let len = buf.len();
                joined = Some(buf);
                len
            }
            (_, Some(buf)) => {
                buf.extend_from_slice(&chunk);
                buf.len()
            }
        };
        if len > limit {
            break;
        }
    }
    Ok(match (first, joined) {
        (_, Some(buf)) => buf.freeze(),
        (Some(head), None) => head,
        (None, None) => Bytes::new(),
    })
}

#[cfg(test)]
mod tests {
    use futures_util::stream;

    use super::*;

    fn payload_of(chunks: &[&'static [u8]]) -> Payload {
        let chunks: Vec<Result<Bytes, PayloadError>> =
            chunks.iter().map(|c| Ok(Bytes::from_static(c))).collect();
        Payload::from(Box::pin(stream::iter(chunks))
            as std::pin::Pin<
                Box<dyn futures_util::Stream<Item = Result<Bytes, PayloadError>>>,
            >)
    }

    #[tokio::test]
    async fn reads_one_or_many_chunks_whole() {
        let one = read_body(payload_of(&[b"abc"]), 10, Some(3)).await.unwrap();
        assert_eq!(one, "abc");
        let many = read_body(payload_of(&[b"ab", b"cd", b"e"]), 10, None)
            .await
            .unwrap();
        assert_eq!(many, "abcde");
        let none = read_body(payload_of(&[]), 10, None).await.unwrap();
        assert!(none.is_empty());
    }

    #[tokio::test]
    async fn stops_reading_just_past_the_limit() {
        let chunks: &[&'static [u8]] = &[b"aaaa", b"bbbb", b"cccc", b"dddd"];
        let body = read_body(payload_of(chunks), 6, None).await.unwrap();
        // Past the limit (so the pipeline answers 413), and not one chunk more.
        assert_eq!(body, "aaaabbbb");
        let body = read_body(payload_of(&[b"0123456789"]), 4, None)
            .await
            .unwrap();
        assert!(body.len() > 4);
    }

    #[tokio::test]
    async fn a_read_error_is_returned() {
        let chunks: Vec<Result<Bytes, PayloadError>> = vec![
            Ok(Bytes::from_static(b"ab")),
            Err(PayloadError::Incomplete(None)),
        ];
        let payload = Payload::from(Box::pin(stream::iter(chunks))
            as std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<Bytes, PayloadError>>>>);
        assert!(read_body(payload, 10, None).await.is_err());
    }
}
