//! [`KnolyxEventRejection`]: every response the extractor gives instead of running the
//! handler.

use std::error::Error as StdError;
use std::fmt;

use actix_web::http::StatusCode;
use actix_web::http::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use knolyx_webhook_core::{Answer, Rejection, Reply};

const MISSING_RECEIVER: &str = "knolyx-webhook: no `WebhookReceiver` in the app data: register it \
     with `App::new().app_data(receiver.clone())`";

const MISSING_MIDDLEWARE: &str = "knolyx-webhook: `KnolyxWebhookMiddleware` is missing: add \
     `.wrap(KnolyxWebhookMiddleware)` to the `App`, scope or resource of this route";

const MISSING_EVENT: &str = "knolyx-webhook: `KnolyxClaim` needs a `KnolyxEvent` argument in the \
     same handler: extracting the event is what claims the delivery";

const NO_CLAIM: &str = "knolyx-webhook: this delivery has no claim (a forwarded PING, fail-open \
     after a store failure, or an event that was not delivered): take `Option<KnolyxClaim>`";

/// Why [`KnolyxEvent`](crate::KnolyxEvent) (or [`KnolyxClaim`](crate::KnolyxClaim)) did not
/// hand an event (or its claim) to the handler, and the response that goes out instead.
///
/// It is the extractor's error type because an extractor can only succeed (the handler runs)
/// or fail (the error is the response). So it carries, besides the pipeline's rejections,
/// its **answers**: a `PING` (answered `200 pong` by default) and the duplicate of a
/// completed delivery (`200 duplicate` with
/// [`DUPLICATE_HEADER`](knolyx_webhook_core::DUPLICATE_HEADER)`: true`). Those render as 200
/// through [`ResponseError`]: the handler does not run, and Knolyx sees success.
///
/// Every status, header and body comes from the core pipeline ([`Rejection::reply`],
/// [`Answer::reply`]); bodies are short fixed texts that never echo the request. Only the
/// configuration mistakes are this crate's own, a 500 whose text names what is missing:
/// [`MissingReceiver`](Self::MissingReceiver), [`MissingMiddleware`](Self::MissingMiddleware),
/// and, for [`KnolyxClaim`](crate::KnolyxClaim), [`MissingEvent`](Self::MissingEvent) and
/// [`NoClaim`](Self::NoClaim).
///
/// A handler that takes `Result<KnolyxEvent, KnolyxEventRejection>` sees these outcomes
/// itself and must then answer them, for example with
/// [`error_response`](ResponseError::error_response).
#[derive(Debug)]
#[non_exhaustive]
pub enum KnolyxEventRejection {
    /// Refused by the pipeline (401, 405, 413, 400, 422, 503 …).
    Rejected(Rejection),
    /// Answered 200 by the pipeline without the handler: a `PING` or a completed duplicate.
    Answered(Answer),
    /// No [`WebhookReceiver`](knolyx_webhook_core::WebhookReceiver) in the app data: 500.
    MissingReceiver,
    /// [`KnolyxWebhookMiddleware`](crate::KnolyxWebhookMiddleware) does not wrap the route:
    /// 500, before anything is read or claimed (without it, no one could settle the claim).
    MissingMiddleware,
    /// [`KnolyxClaim`](crate::KnolyxClaim) taken by a handler that does not take a
    /// [`KnolyxEvent`](crate::KnolyxEvent), whose extraction claims the delivery: 500.
    MissingEvent,
    /// [`KnolyxClaim`](crate::KnolyxClaim) taken for a delivery without a claim (a forwarded
    /// `PING`, fail-open after a store failure, or an event refused or answered by the
    /// pipeline): 500. `Option<KnolyxClaim>` is then `None`.
    NoClaim,
}

impl KnolyxEventRejection {
    /// The response's status.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Rejected(r) => status_from(r.status().as_u16()),
            Self::Answered(a) => status_from(a.status().as_u16()),
            Self::MissingReceiver
            | Self::MissingMiddleware
            | Self::MissingEvent
            | Self::NoClaim => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The response's body: a short, fixed text.
    pub fn body_text(&self) -> &'static str {
        match self {
            Self::Rejected(r) => r.body_text(),
            Self::Answered(a) => a.body_text(),
            Self::MissingReceiver => MISSING_RECEIVER,
            Self::MissingMiddleware => MISSING_MIDDLEWARE,
            Self::MissingEvent => MISSING_EVENT,
            Self::NoClaim => NO_CLAIM,
        }
    }

    /// Whether this is a 2xx answer of the pipeline (`PING`, completed duplicate) rather than
    /// a refusal.
    pub fn is_answer(&self) -> bool {
        matches!(self, Self::Answered(_))
    }

    /// The pipeline's rejection, if it is one.
    pub fn rejection(&self) -> Option<&Rejection> {
        match self {
            Self::Rejected(r) => Some(r),
            _ => None,
        }
    }

    /// The pipeline's answer, if it is one.
    pub fn answer(&self) -> Option<Answer> {
        match self {
            Self::Answered(a) => Some(*a),
            _ => None,
        }
    }
}

impl fmt::Display for KnolyxEventRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Rejected(r) => fmt::Display::fmt(r, f),
            other => f.write_str(other.body_text()),
        }
    }
}

impl StdError for KnolyxEventRejection {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            Self::Rejected(r) => Some(r),
            _ => None,
        }
    }
}

impl From<Rejection> for KnolyxEventRejection {
    fn from(r: Rejection) -> Self {
        Self::Rejected(r)
    }
}

impl From<Answer> for KnolyxEventRejection {
    fn from(a: Answer) -> Self {
        Self::Answered(a)
    }
}

impl ResponseError for KnolyxEventRejection {
    fn status_code(&self) -> StatusCode {
        self.status()
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            Self::Rejected(r) => to_response(&r.reply()),
            Self::Answered(a) => to_response(&a.reply()),
            Self::MissingReceiver
            | Self::MissingMiddleware
            | Self::MissingEvent
            | Self::NoClaim => HttpResponse::InternalServerError()
                .insert_header((
                    CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; charset=utf-8"),
                ))
                .body(self.body_text()),
        }
    }
}

/// A status number from core (http 1.x) as actix-web's (http 0.2). Core only produces valid
/// statuses; the fallback is unreachable in practice.
fn status_from(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// The one bridge between core's framework-free [`Reply`] (http 1.x types) and actix-web's
/// response (http 0.2 types): by numbers and bytes.
fn to_response(reply: &Reply) -> HttpResponse {
    let mut response = HttpResponse::build(status_from(reply.status().as_u16()));
    for (name, value) in reply.headers() {
        // Names and values from core are valid in both versions of `http`.
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_str().as_bytes()),
            HeaderValue::from_bytes(value.as_bytes()),
        ) {
            response.append_header((name, value));
        }
    }
    response.body(reply.body_text())
}

#[cfg(test)]
mod tests {
    use actix_web::body::MessageBody;
    use knolyx_webhook_core::testing::TestEvent;
    use knolyx_webhook_core::{Accepted, DUPLICATE_HEADER, WebhookReceiver};

    use super::*;

    async fn rejection_for(method: &str, token: Option<&str>) -> Rejection {
        let receiver = WebhookReceiver::builder().token("right").build().unwrap();
        let mut headers = http::HeaderMap::new();
        if let Some(token) = token {
            headers.insert("x-webhook-security-token", token.parse().unwrap());
        }
        let method = http::Method::from_bytes(method.as_bytes()).unwrap();
        match receiver
            .receive(&method, &headers, TestEvent::course_started().to_body())
            .await
        {
            Err(r) => r,
            Ok(_) => panic!("expected a rejection"),
        }
    }

    fn body_of(response: HttpResponse) -> String {
        let bytes = response.into_body().try_into_bytes().unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn rejections_keep_core_status_headers_and_body() {
        let rejection = rejection_for("PATCH", Some("right")).await;
        let reply = rejection.reply();
        let error = KnolyxEventRejection::from(rejection);
        assert_eq!(error.status_code(), StatusCode::METHOD_NOT_ALLOWED);
        let response = error.error_response();
        assert_eq!(response.status().as_u16(), reply.status().as_u16());
        assert_eq!(response.headers().get("allow").unwrap(), "PUT, POST");
        assert_eq!(
            response.headers().get_all(CONTENT_TYPE).count(),
            1,
            "one content type"
        );
        assert_eq!(body_of(response), reply.body_text());

        let error = KnolyxEventRejection::from(rejection_for("PUT", Some("wrong")).await);
        assert_eq!(error.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(error.to_string(), error.body_text());
        assert!(error.source().is_some());
        assert!(!error.is_answer());
    }

    #[tokio::test]
    async fn answers_render_as_200_with_the_duplicate_marker() {
        let receiver = WebhookReceiver::builder().token("right").build().unwrap();
        let mut headers = http::HeaderMap::new();
        headers.insert("x-webhook-security-token", "right".parse().unwrap());
        let body = TestEvent::course_started().to_body();
        let Ok(Accepted::Deliver(delivery)) = receiver
            .receive(&http::Method::PUT, &headers, body.clone())
            .await
        else {
            panic!("expected a delivery")
        };
        let (_, settlement) = delivery.into_parts();
        settlement.settle(200).await;
        let Ok(Accepted::Answered(answer)) =
            receiver.receive(&http::Method::PUT, &headers, body).await
        else {
            panic!("expected an answer")
        };
        let error = KnolyxEventRejection::from(answer);
        assert!(error.is_answer());
        assert_eq!(error.answer(), Some(Answer::Duplicate));
        let response = error.error_response();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers().get(DUPLICATE_HEADER).unwrap(), "true");
        assert_eq!(body_of(response), "duplicate");

        let ping = KnolyxEventRejection::from(Answer::Ping).error_response();
        assert_eq!(ping.status(), StatusCode::OK);
        assert!(ping.headers().get(DUPLICATE_HEADER).is_none());
    }

    #[test]
    fn configuration_mistakes_are_500_naming_the_missing_piece() {
        let missing = KnolyxEventRejection::MissingReceiver;
        assert_eq!(missing.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(missing.body_text().contains("WebhookReceiver"));
        assert!(missing.body_text().contains("app_data"));
        let missing = KnolyxEventRejection::MissingMiddleware.error_response();
        assert_eq!(missing.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(body_of(missing).contains("KnolyxWebhookMiddleware"));
    }
}
