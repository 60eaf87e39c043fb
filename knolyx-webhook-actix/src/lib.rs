//! actix-web adapter of [knolyx-webhook]: receive [Knolyx] webhooks safely in actix-web 4.
//!
//! A handler that takes a [`KnolyxEvent`] runs only for a delivery that the core pipeline
//! ([`knolyx_webhook_core`]) accepted: the `X-Webhook-Security-Token` header checked in
//! constant time before the body is read, the body read within its limit, the event parsed
//! into types, and its message id claimed in the idempotency store, so a retransmission does
//! not run the handler twice. Then the handler's response settles the claim: a 2xx marks
//! the event handled; an error, a non-2xx or a panic releases it, so Knolyx's retry runs the
//! handler again.
//!
//! Three pieces, each doing one thing:
//!
//! - the [`WebhookReceiver`](knolyx_webhook_core::WebhookReceiver) (tokens, store, limits),
//!   registered once as app data (`App::app_data(receiver.clone())`, or as a
//!   `web::Data<WebhookReceiver>`), and shared by every worker: it is a cheap handle;
//! - the extractor [`KnolyxEvent`], which runs the pipeline before the handler;
//! - the middleware [`KnolyxWebhookMiddleware`], the smallest piece that sees the handler's
//!   response, which settles the claim with its status before the response goes out.
//!
//! Every decision (which status for which outcome, when a claim completes or is released)
//! is made by the core pipeline; this crate only moves bytes and headers in and responses
//! out. The responses given without running the handler are described in
//! [`KnolyxEventRejection`]: refusals (401, 405, 413, 400, 422, 503), and the pipeline's
//! 200 answers to a `PING` and to the duplicate of a completed delivery (marked with
//! [`DUPLICATE_HEADER`](knolyx_webhook_core::DUPLICATE_HEADER)`: true`).
//!
//! Forgetting a piece fails loudly, on the first request, with a 500 whose text names what
//! to register; nothing is claimed or marked handled then.
//!
//! # Example
//!
//! ```
//! use actix_web::{App, HttpResponse, test, web};
//! use knolyx_webhook_actix::{KnolyxEvent, KnolyxWebhookMiddleware};
//! use knolyx_webhook_core::{Event, WebhookReceiver};
//!
//! async fn on_event(KnolyxEvent(event): KnolyxEvent) -> HttpResponse {
//!     match event.event() {
//!         Event::CourseCompleted(data) => {
//!             println!("{} completed course {}", data.user.email, data.course.id);
//!         }
//!         _ => println!("{} {}", event.event_type(), event.id()),
//!     }
//!     // A 2xx marks the event handled; anything else lets Knolyx's retry run it again.
//!     HttpResponse::Ok().finish()
//! }
//!
//! # actix_web::rt::System::new().block_on(async {
//! let receiver = WebhookReceiver::builder().token("s3cret-token").build()?;
//!
//! // In `HttpServer::new(move || …)`, build the same `App` for every worker.
//! let app = App::new()
//!     .app_data(receiver.clone())
//!     .wrap(KnolyxWebhookMiddleware)
//!     // Every method reaches the extractor, which answers 405 with `Allow: PUT, POST`.
//!     .route("/webhooks/knolyx", web::route().to(on_event));
//! let app = test::init_service(app).await;
//!
//! let body = r#"{"id":"m-1","type":"COURSE_COMPLETED","data":{
//!     "user":{"id":1,"name":"Ana","email":"ana@example.com"},"course":{"id":2,"name":"Rust"}}}"#;
//! let delivery = || {
//!     test::TestRequest::put()
//!         .uri("/webhooks/knolyx")
//!         .insert_header(("X-Webhook-Security-Token", "s3cret-token"))
//!         .set_payload(body)
//!         .to_request()
//! };
//!
//! // First delivery: the handler runs, and its 200 marks the event handled.
//! let response = test::call_service(&app, delivery()).await;
//! assert_eq!(response.status(), 200);
//!
//! // The retransmission is answered by the pipeline; the handler does not run.
//! let response = test::call_service(&app, delivery()).await;
//! assert_eq!(response.status(), 200);
//! let marker = response.headers().get("x-knolyx-webhook-duplicate");
//! assert_eq!(marker.map(|v| v.as_bytes()), Some(&b"true"[..]));
//!
//! // A wrong token: 401, before the body is read.
//! let request = test::TestRequest::put()
//!     .uri("/webhooks/knolyx")
//!     .insert_header(("X-Webhook-Security-Token", "guess"))
//!     .set_payload(body)
//!     .to_request();
//! assert_eq!(test::call_service(&app, request).await.status(), 401);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! With a real server, `HttpServer::new(move || App::new().app_data(receiver.clone())…)`
//! builds one `App` per worker, all sharing the receiver and its store.
//!
//! # Settling, and why a middleware
//!
//! An extractor runs before the handler and never sees its response, so it cannot tell
//! success from failure. [`KnolyxWebhookMiddleware`] is the smallest piece that can: it
//! wraps the route, begins the delivery before the route runs (so the extractor and the
//! handler run inside the delivery's tracing span), receives the delivery's settlement from
//! the extractor through the request's extensions, and once the route has answered, settles
//! with the response's status (a handler error rendered into a response counts as that
//! response's status). It
//! awaits the store before the response leaves, so Knolyx never sees a 2xx for an event
//! that is not yet marked handled. If the handler panics, the settlement is dropped
//! unsettled and core releases the claim on the worker's Tokio runtime (the `tokio` feature
//! of `knolyx-webhook-core`, enabled by this crate).
//!
//! # Answers are errors, to the extractor
//!
//! An extractor can only succeed (the handler runs) or fail (its error is the response). So
//! the pipeline's 200 answers (a `PING`, the duplicate of a completed delivery) come out as
//! [`KnolyxEventRejection::Answered`], whose response is a 200: the handler does not run,
//! and Knolyx sees success. Take `Result<KnolyxEvent, KnolyxEventRejection>` to see them in
//! the handler (then answer them yourself, with
//! [`ResponseError::error_response`](actix_web::ResponseError::error_response): a 2xx to a
//! refusal, say to a duplicate still in progress, would tell Knolyx to stop retrying). Avoid
//! `Option<KnolyxEvent>`: actix-web turns every refusal into `None`, and the handler would
//! answer a forged request itself.
//!
//! # Completing the claim in your own transaction
//!
//! A handler that completes the claim itself, beside its side effect (with PostgreSQL:
//! `PostgresStore::complete_in_transaction`), takes [`KnolyxClaim`] beside [`KnolyxEvent`],
//! in any order: `async fn on_event(event: KnolyxEvent, claim: KnolyxClaim, …)`. Not
//! `web::ReqData<ClaimRef>`: actix-web creates every extractor of a handler before polling
//! any, so `ReqData` looks in the request's extensions before `KnolyxEvent` has claimed the
//! delivery, and always answers 500. [`KnolyxClaim`] waits for the event's extraction
//! instead; see its docs for a complete example.
//!
//! # `Expect: 100-continue`
//!
//! A sender that sends `Expect: 100-continue` waits for `100 Continue` before uploading the
//! body. actix-web answers it in its HTTP layer, before any service of the app runs: its
//! dispatcher calls an "expect" handler first (actix-http's default accepts every request)
//! and `HttpServer` offers no way to replace it, so neither this extractor nor a middleware
//! can check the token first. The sender then uploads the body of a request the pipeline
//! refuses (401, before reading the body; the connection is then closed or drained by
//! actix-web, and nothing past the body limit is ever buffered). Knolyx sends small bodies
//! without `Expect`; a server that must refuse before the upload can run behind a proxy that
//! checks the header, or use the tower adapter, where hyper sends `100 Continue` only once the
//! body is read, after the token check.
//!
//! [knolyx-webhook]: https://github.com/knolyx-webhook/knolyx-webhook
//! [Knolyx]: https://knolyx.com
#![cfg_attr(docsrs, feature(doc_cfg))]

mod extractor;
mod middleware;
mod rejection;
#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;

pub use extractor::{KnolyxClaim, KnolyxEvent};
pub use middleware::{KnolyxWebhookMiddleware, KnolyxWebhookService};
pub use rejection::KnolyxEventRejection;

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
