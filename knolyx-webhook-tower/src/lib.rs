//! Receive [Knolyx] webhooks in axum, hyper or any [tower] stack: one layer authenticates
//! each delivery, parses it into a typed event and drops retransmissions before your
//! handler runs.
//!
//! [`KnolyxWebhookLayer`] runs the receive pipeline of [`knolyx_webhook_core`] around an
//! inner service, in this order:
//!
//! 1. **From the head, before any byte of the body is read**: the method (PUT or POST, else
//!    405 with `Allow`), the `X-Webhook-Security-Token` (exactly one, equal to a configured
//!    token, else 401) and a declared `Content-Length` (413 past the limit).
//! 2. **The body**, read with the limit (64 KiB by default), so a chunked body without
//!    `Content-Length` is cut off at 413 too; a body that cannot be read is a 400.
//! 3. **The event**: malformed → 400, a known type with data of the wrong shape → 422, a
//!    `PING` answered 200 without the inner service (by default).
//! 4. **The claim** in the idempotency store: a duplicate of a handled delivery is answered
//!    200 with `x-knolyx-webhook-duplicate: true`, one still being handled 503 with
//!    `Retry-After`, and a failing store 503 with `Retry-After`.
//! 5. **The inner service** runs, inside the delivery's tracing span, with the
//!    [`WebhookEvent`] in the request's extensions (the [`KnolyxEvent`] extractor takes it
//!    from there) and the body bytes as its body.
//! 6. **Settling**, before the response leaves: a 2xx marks the id handled; anything else,
//!    or an error of the inner service, releases it so that Knolyx's retry runs the handler
//!    again. If the request is dropped or the handler panics, the claim is released on the
//!    Tokio runtime.
//!
//! Every status above is decided by core (see [`knolyx_webhook_core::rejection`]); this
//! crate only moves bytes and headers in and responses out.
//!
//! # axum
//!
//! Add the layer with `route_layer` to the webhook's route, and extract [`KnolyxEvent`]
//! (feature `axum`, on by default). Route every method to the handler (`any`): the pipeline
//! itself answers other methods with 405 and `Allow: PUT, POST`.
//!
//! **`route_layer` wraps every route added before it on the same router**, and only those.
//! Added to an app's router after `/health`, it guards `/health` too (a GET there gets 405).
//! In an app with other routes, give the webhook route a router of its own, with the layer,
//! and `merge` (or `nest`) it; routes of the other routers, and routes added after the
//! `route_layer`, are not affected:
//!
//! ```
//! use axum::extract::State;
//! use axum::routing::{any, get};
//! use axum::Router;
//! use knolyx_webhook_core::WebhookReceiver;
//! use knolyx_webhook_tower::{KnolyxEvent, KnolyxWebhookLayer};
//!
//! #[derive(Clone)]
//! struct AppState {
//!     shop: &'static str,
//! }
//!
//! async fn on_event(State(state): State<AppState>, KnolyxEvent(event): KnolyxEvent) -> String {
//!     format!("{} {}", state.shop, event.id())
//! }
//!
//! fn app(state: AppState, receiver: WebhookReceiver) -> Router {
//!     let webhooks = Router::new()
//!         .route("/webhooks/knolyx", any(on_event))
//!         .route_layer(KnolyxWebhookLayer::new(receiver)); // guards /webhooks/knolyx only
//!     Router::new()
//!         .route("/health", get(|| async { "ok" }))
//!         .nest("/api", Router::new().route("/orders", get(|| async { "[]" })))
//!         .merge(webhooks)
//!         .with_state(state)
//! }
//! # let _ = app(AppState { shop: "shop" }, WebhookReceiver::builder().token("t0ken").build().unwrap());
//! ```
//!
//! A complete example with a server:
//!
//! ```
//! use axum::body::Body;
//! use axum::routing::{any, get};
//! use axum::Router;
//! use http::{Request, StatusCode};
//! use knolyx_webhook_core::WebhookReceiver;
//! use knolyx_webhook_tower::{KnolyxEvent, KnolyxWebhookLayer};
//! use tower::ServiceExt;
//!
//! async fn on_event(KnolyxEvent(event): KnolyxEvent) -> &'static str {
//!     println!("{} {}", event.id(), event.event_type());
//!     "ok" // a 2xx marks the delivery handled
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let receiver = WebhookReceiver::builder().token("s3cret-token").build()?;
//! let app = Router::new()
//!     .route("/webhooks/knolyx", any(on_event))
//!     .route_layer(KnolyxWebhookLayer::new(receiver))
//!     // Routes added after `route_layer` are not affected by it (before it, they would be).
//!     .route("/health", get(|| async { "ok" }));
//!
//! let delivery = |token: &str| {
//!     Request::put("/webhooks/knolyx")
//!         .header("x-webhook-security-token", token)
//!         .body(Body::from(r#"{"id":"m-1","type":"COURSE_COMPLETED","data":{
//!             "user":{"id":1,"name":"Ana","email":"ana@example.com"},
//!             "course":{"id":2,"name":"Rust"}}}"#))
//!         .unwrap()
//! };
//!
//! // The first delivery runs the handler.
//! let response = app.clone().oneshot(delivery("s3cret-token")).await?;
//! assert_eq!(response.status(), StatusCode::OK);
//! // Its retransmission is answered by the pipeline, flagged as a duplicate.
//! let response = app.clone().oneshot(delivery("s3cret-token")).await?;
//! assert_eq!(response.status(), StatusCode::OK);
//! assert_eq!(response.headers()["x-knolyx-webhook-duplicate"], "true");
//! // A wrong token never reaches the handler.
//! let response = app.clone().oneshot(delivery("guess")).await?;
//! assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
//! // Nor does another method.
//! let get = Request::get("/webhooks/knolyx").body(Body::empty())?;
//! let response = app.clone().oneshot(get).await?;
//! assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
//! assert_eq!(response.headers()["allow"], "PUT, POST");
//! // Other routes are untouched.
//! let health = Request::get("/health").body(Body::empty())?;
//! assert_eq!(app.oneshot(health).await?.status(), StatusCode::OK);
//! # Ok(())
//! # }
//! ```
//!
//! One layer (cloned) can serve several routes, or a nested router; its clones share the
//! receiver's idempotency store. On a single method router, use `any(on_event).layer(…)`:
//! `MethodRouter::route_layer` wraps only method routes, and `any` has none (axum panics).
//!
//! # tower and hyper
//!
//! Any request body works in front of the layer (hyper's `Incoming`, axum's `Body`…). The
//! inner service receives `Request<`[`RequestBody`]`>` (the bytes, in a
//! [`Full`](http_body_util::Full)) with the [`WebhookEvent`] in its extensions, and its
//! response body must be buildable from [`Bytes`](bytes::Bytes) (such as `Full<Bytes>` or
//! axum's `Body`), since the pipeline's own answers share its type.
//!
//! ```
//! use std::convert::Infallible;
//!
//! use bytes::Bytes;
//! use http::{Request, Response, StatusCode};
//! use http_body_util::Full;
//! use knolyx_webhook_core::{Event, WebhookEvent, WebhookReceiver};
//! use knolyx_webhook_tower::{KnolyxWebhookLayer, RequestBody};
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! async fn handle(request: Request<RequestBody>) -> Result<Response<Full<Bytes>>, Infallible> {
//!     let event = request.extensions().get::<WebhookEvent>().expect("the layer runs first");
//!     let status = match event.event() {
//!         Event::CoursePaymentReceived(_) => StatusCode::OK,
//!         _ => StatusCode::ACCEPTED,
//!     };
//!     let mut response = Response::new(Full::from("handled"));
//!     *response.status_mut() = status;
//!     Ok(response)
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let receiver = WebhookReceiver::builder().token("s3cret-token").build()?;
//! let service = ServiceBuilder::new()
//!     .layer(KnolyxWebhookLayer::new(receiver))
//!     .service_fn(handle);
//!
//! let request = Request::put("/")
//!     .header("x-webhook-security-token", "s3cret-token")
//!     .body(Full::<Bytes>::from(r#"{"id":"m-2","type":"PING","data":{"message":"PING"}}"#))?;
//! let response = service.clone().oneshot(request).await?;
//! // PING is answered by the pipeline itself (by default).
//! assert_eq!(response.status(), StatusCode::OK);
//!
//! let request = Request::put("/")
//!     .header("x-webhook-security-token", "s3cret-token")
//!     .body(Full::<Bytes>::from(r#"{"id":"m-3","type":"COURSE_STARTED","data":{"user":"?"}}"#))?;
//! // A known type whose data does not fit its shape.
//! let response = service.oneshot(request).await?;
//! assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
//! # Ok(())
//! # }
//! ```
//!
//! # Testing your handler
//!
//! `knolyx_webhook_core::testing` (feature `testing`, for your dev-dependencies) builds
//! realistic events (`TestEvent`), the request Knolyx would send for one, with the token
//! header (`TestEvent::request(uri, token)`, for `tower::ServiceExt::oneshot` on your
//! router), and a claim for a handler that completes it in its own transaction
//! (`testing::claim`). The repository's README, "Testing your handler", has complete tests.
//!
//! # Handlers that fail or never finish
//!
//! A handler's non-2xx response or error releases the claim: the retransmission runs it
//! again. A handler that panics, or whose request is dropped, drops the delivery's
//! [`Settlement`](knolyx_webhook_core::Settlement) unsettled, and core releases the claim on
//! the Tokio runtime (without a runtime, the claim's lease expires instead). Keep handlers
//! shorter than the receiver's lease (60 s by default).
//!
//! # Features
//!
//! - `axum` (default): the [`KnolyxEvent`] extractor and its [`MissingKnolyxWebhookLayer`]
//!   rejection, built on `axum-core` alone. A tower- or hyper-only service can turn it off
//!   with `default-features = false`; the layer does not need it.
//!
//! [Knolyx]: https://knolyx.com
//! [tower]: https://docs.rs/tower
#![cfg_attr(docsrs, feature(doc_cfg))]
// The crate docs above present the axum extractor; without the (default) `axum` feature
// their links to it have no target, and render as plain text.
#![cfg_attr(not(feature = "axum"), allow(rustdoc::broken_intra_doc_links))]

mod future;
mod layer;
mod service;

#[cfg(feature = "axum")]
mod extract;

pub use future::ResponseFuture;
pub use layer::KnolyxWebhookLayer;
pub use service::{KnolyxWebhook, RequestBody};

#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub use extract::{KnolyxEvent, MissingKnolyxWebhookLayer};

pub use knolyx_webhook_core::{WebhookEvent, WebhookReceiver};

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
