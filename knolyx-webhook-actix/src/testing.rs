//! Test support (feature `testing`): the request Knolyx would send, for `actix_web::test`.
//!
//! Your handler is tested through the same three pieces it runs with (the receiver as app
//! data, the middleware, the extractor), so the test sees what Knolyx would: the handler's
//! response, or the pipeline's own answer.
//!
//! ```
//! use actix_web::{App, HttpResponse, test, web};
//! use knolyx_webhook_actix::{KnolyxEvent, KnolyxWebhookMiddleware, testing};
//! use knolyx_webhook_core::WebhookReceiver;
//! use knolyx_webhook_core::testing::TestEvent;
//!
//! async fn on_event(KnolyxEvent(event): KnolyxEvent) -> HttpResponse {
//!     HttpResponse::Ok().body(event.event_type().to_owned())
//! }
//!
//! # actix_web::rt::System::new().block_on(async {
//! let receiver = WebhookReceiver::builder().token("test-token").build().unwrap();
//! let app = test::init_service(
//!     App::new()
//!         .app_data(receiver)
//!         .wrap(KnolyxWebhookMiddleware)
//!         .route("/webhooks/knolyx", web::route().to(on_event)),
//! )
//! .await;
//!
//! let event = TestEvent::course_completed();
//! let request = testing::request(&event, "/webhooks/knolyx", "test-token").to_request();
//! let response = test::call_service(&app, request).await;
//! assert_eq!(response.status(), 200);
//! assert_eq!(test::read_body(response).await, "COURSE_COMPLETED");
//! # });
//! ```

use actix_web::test::TestRequest;
use knolyx_webhook_core::TOKEN_HEADER;
use knolyx_webhook_core::testing::TestEvent;

/// The request Knolyx would send for `event` to `uri`, with `token` in
/// `X-Webhook-Security-Token`: a `PUT` with the event's JSON body. Add headers if you need,
/// then `.to_request()` for `test::call_service`.
pub fn request(event: &TestEvent, uri: &str, token: &str) -> TestRequest {
    TestRequest::put()
        .uri(uri)
        .insert_header((TOKEN_HEADER, token))
        .insert_header(("content-type", "application/json"))
        .set_payload(event.to_body())
}
