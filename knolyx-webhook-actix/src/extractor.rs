//! [`KnolyxEvent`]: the extractor that runs the receive pipeline before the handler.

use std::ops::Deref;

use actix_web::dev::Payload;
use actix_web::error::PayloadError;
use actix_web::http::header::CONTENT_LENGTH;
use actix_web::web::{Bytes, BytesMut};
use actix_web::{FromRequest, HttpMessage, HttpRequest};
use futures_util::StreamExt;
use futures_util::future::LocalBoxFuture;
use knolyx_webhook_core::rejection::BodyReadFailed;
use knolyx_webhook_core::{Accepted, Reception, TOKEN_HEADER, WebhookEvent};

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
        let head = check_head(req);
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
                    // For a handler completing the claim in its own transaction
                    // (`web::ReqData<ClaimRef>`, extracted after `KnolyxEvent`).
                    if let Some(claim) = settlement.claim_ref() {
                        req.extensions_mut().insert(claim);
                    }
                    slot.put_settlement(settlement);
                    Ok(KnolyxEvent(event))
                }
                Accepted::Answered(answer) => Err(answer.into()),
            }
        })
    }
}

/// Steps 1 to 3: everything decided before the body is read.
fn check_head(
    req: &HttpRequest,
) -> Result<(Reception, DeliverySlot, Option<u64>), KnolyxEventRejection> {
    let slot = req
        .extensions()
        .get::<DeliverySlot>()
        .cloned()
        .ok_or_else(|| {
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
