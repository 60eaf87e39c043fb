use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use knolyx_webhook_core::rejection::BodyReadFailed;
use knolyx_webhook_core::store::BoxError;
use knolyx_webhook_core::{Accepted, Reception, WebhookReceiver};
use tower_service::Service;
use tracing::Instrument;

use crate::future::ResponseFuture;
use crate::layer::KnolyxWebhookLayer;

/// The request body the inner service receives: the delivery's bytes, read whole.
pub type RequestBody = Full<Bytes>;

/// Runs the Knolyx receive pipeline in front of `S`: see the [crate docs](crate) for what it
/// does and an example. Usually added with [`KnolyxWebhookLayer`].
///
/// # Types
///
/// - **Request body**: any [`http_body::Body`] (axum's `Body`, hyper's `Incoming`, a
///   tower-http wrapper…). The pipeline reads it whole, within the receiver's body limit,
///   before the inner service runs.
/// - **Inner service**: receives `Request<`[`RequestBody`]`>` (the same bytes, in a
///   [`Full`]) with the parsed [`WebhookEvent`](knolyx_webhook_core::WebhookEvent) in its
///   extensions. axum's `Router`, `Route` and handlers accept any body, so this is invisible
///   there.
/// - **Response body**: the inner service's, which must implement `From<Bytes>` since the
///   pipeline's own answers (short texts) share its type. axum's `Body` and
///   [`Full<Bytes>`](Full) do, so axum responses pass through unchanged, without boxing.
///   With a body that does not (`BoxBody`, say), map the inner service's responses to one
///   that does (for example with tower's `MapResponseBodyLayer` and `axum::body::Body::new`).
/// - **Error**: the inner service's; the pipeline itself never fails (a body it cannot read
///   is a 400 response). When the inner service fails, the claim is released and the error
///   returned.
#[derive(Clone, Debug)]
pub struct KnolyxWebhook<S> {
    inner: S,
    receiver: WebhookReceiver,
}

impl<S> KnolyxWebhook<S> {
    /// Runs `receiver`'s pipeline in front of `inner`.
    pub fn new(inner: S, receiver: WebhookReceiver) -> Self {
        Self { inner, receiver }
    }

    /// A [`KnolyxWebhookLayer`] running `receiver`'s pipeline.
    pub fn layer(receiver: WebhookReceiver) -> KnolyxWebhookLayer {
        KnolyxWebhookLayer::new(receiver)
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service, by value.
    pub fn into_inner(self) -> S {
        self.inner
    }

    /// The receiver whose pipeline runs.
    pub fn receiver(&self) -> &WebhookReceiver {
        &self.receiver
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for KnolyxWebhook<S>
where
    S: Service<Request<RequestBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqBody: Body + Send + 'static,
    ReqBody::Data: Send,
    ReqBody::Error: Into<BoxError>,
    ResBody: From<Bytes> + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let reception = self.receiver.begin();
        // Steps 1-3 from the head alone: nothing of the body is read for a wrong method or
        // token, or a declared length over the limit.
        if let Err(rejection) = reception.check_http_head(request.method(), request.headers()) {
            return ResponseFuture::ready(Ok(rejection.into_response()));
        }
        // The service that `poll_ready` made ready goes into the future; `self` keeps a clone
        // (which the caller will `poll_ready` before the next call).
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        ResponseFuture::pipeline(Box::pin(deliver(inner, reception, request)))
    }
}

/// Reads the body, runs core's body steps, calls `inner` with the event and settles the
/// claim from its status before the response leaves.
async fn deliver<S, ReqBody, ResBody>(
    mut inner: S,
    reception: Reception,
    request: Request<ReqBody>,
) -> Result<Response<ResBody>, S::Error>
where
    S: Service<Request<RequestBody>, Response = Response<ResBody>>,
    ReqBody: Body,
    ReqBody::Error: Into<BoxError>,
    ResBody: From<Bytes>,
{
    let (mut parts, body) = request.into_parts();
    // `Limited` counts what arrives, so a chunked body without `Content-Length` is cut off
    // past the limit too.
    let bytes = match Limited::new(body, reception.body_limit()).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) if is_length_limit(&*error) => {
            return Ok(reception.too_large().into_response());
        }
        Err(error) => {
            let rejection = reception.reject(BodyReadFailed::new(error).into());
            return Ok(rejection.into_response());
        }
    };
    let delivery = match reception.accept_body(bytes.clone()).await {
        Ok(Accepted::Deliver(delivery)) => delivery,
        Ok(Accepted::Answered(answer)) => return Ok(answer.into_response()),
        Err(rejection) => return Ok(rejection.into_response()),
    };
    let (event, settlement) = delivery.into_parts();
    parts.extensions.insert(event);
    // For a handler completing the claim in its own transaction (`Extension<ClaimRef>`).
    if let Some(claim) = settlement.claim_ref() {
        parts.extensions.insert(claim);
    }
    let request = Request::from_parts(parts, Full::new(bytes));

    // If this future is dropped or the inner service panics from here on, `settlement` is
    // dropped unsettled and core releases the claim on the Tokio runtime.
    let span = settlement.span().clone();
    let result = span.in_scope(|| inner.call(request)).instrument(span).await;
    match result {
        Ok(response) => {
            // Settled before the response leaves: the store knows the outcome before Knolyx
            // sees the 2xx (and can send nothing that races it).
            settlement.settle(response.status().as_u16()).await;
            Ok(response)
        }
        Err(error) => {
            settlement.release().await;
            Err(error)
        }
    }
}

/// Whether `error`, or any error in its source chain, is a body limit's: ours, or an outer
/// one (tower-http's `RequestBodyLimit`, say) whose error reaches us wrapped, in
/// `axum::Error` for example. Either way the answer is a 413, not a 400.
fn is_length_limit(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(error) = next {
        if error.is::<LengthLimitError>() {
            return true;
        }
        next = error.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::convert::Infallible;
    use std::pin::Pin;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use http::{HeaderValue, Method, StatusCode};
    use http_body::Frame;
    use knolyx_webhook_core::store::{
        ClaimOutcome, IdempotencyStore, MemoryStore, OwnerToken, SettleOutcome,
    };
    use knolyx_webhook_core::testing::{CallOutcome, FaultyStore, StoreOp, TestEvent};
    use knolyx_webhook_core::{DUPLICATE_HEADER, WebhookEvent};
    use tokio::sync::oneshot;
    use tower::{ServiceBuilder, ServiceExt, service_fn};

    use super::*;

    const TOKEN: &str = "unit-test-token";
    const WAIT: Duration = Duration::from_secs(10);

    /// A receiver over a memory store wrapped in a [`FaultyStore`] (no faults), and the
    /// store, to watch its calls.
    fn receiver_watching_store() -> (WebhookReceiver, FaultyStore<MemoryStore>) {
        let store = FaultyStore::new(MemoryStore::new());
        let receiver = WebhookReceiver::builder()
            .token(TOKEN)
            .body_limit(1024)
            .store(store.clone())
            .build()
            .unwrap();
        (receiver, store)
    }

    fn receiver() -> WebhookReceiver {
        receiver_watching_store().0
    }

    fn request<B>(body: B) -> Request<B> {
        Request::put("/hook")
            .header("x-webhook-security-token", TOKEN)
            .body(body)
            .unwrap()
    }

    /// `ready().await?.call(request)`, with the request type pinned down.
    async fn send<S, B>(service: &mut S, request: Request<B>) -> Result<S::Response, S::Error>
    where
        S: Service<Request<B>>,
    {
        service.ready().await?.call(request).await
    }

    async fn text<B: Body>(response: Response<B>) -> String
    where
        B::Error: std::fmt::Debug,
    {
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    /// Answers 200 with the body it received and the event id from the extensions.
    async fn echo(request: Request<RequestBody>) -> Result<Response<Full<Bytes>>, Infallible> {
        let id = request
            .extensions()
            .get::<WebhookEvent>()
            .map(|e| e.id().to_owned());
        let body = request.into_body().collect().await.unwrap().to_bytes();
        let mut response = Response::new(Full::new(body));
        response.headers_mut().insert(
            "x-event-id",
            HeaderValue::from_str(&id.unwrap_or_default()).unwrap(),
        );
        Ok(response)
    }

    /// A body that yields its chunks one by one and declares no length (like a chunked
    /// request), or fails.
    struct Chunks(VecDeque<Result<Bytes, &'static str>>);

    impl Body for Chunks {
        type Data = Bytes;
        type Error = &'static str;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            Poll::Ready(self.0.pop_front().map(|chunk| chunk.map(Frame::data)))
        }
    }

    /// A body that must never be read.
    struct Untouchable;

    impl Body for Untouchable {
        type Data = Bytes;
        type Error = Infallible;

        fn poll_frame(
            self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            panic!("the body was read")
        }
    }

    #[tokio::test]
    async fn the_inner_service_gets_the_event_and_the_body_bytes() {
        let mut service = ServiceBuilder::new()
            .layer(KnolyxWebhookLayer::new(receiver()))
            .service_fn(echo);
        let event = TestEvent::course_completed();
        let body = event.to_body();
        let response = send(&mut service, request(Full::new(body.clone())))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["x-event-id"], event.message_id());
        assert_eq!(text(response).await.as_bytes(), &body[..]);
    }

    #[tokio::test]
    async fn head_rejections_never_read_the_body() {
        let mut service = KnolyxWebhook::new(service_fn(echo), receiver());
        let mut wrong = request(Untouchable);
        wrong
            .headers_mut()
            .insert("x-webhook-security-token", HeaderValue::from_static("nope"));
        let response = send(&mut service, wrong).await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

        let mut get = request(Untouchable);
        *get.method_mut() = Method::GET;
        let response = send(&mut service, get).await.unwrap();
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(response.headers()["allow"], "PUT, POST");

        let mut declared = request(Untouchable);
        declared
            .headers_mut()
            .insert("content-length", HeaderValue::from_static("1025"));
        let response = send(&mut service, declared).await.unwrap();
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    }

    #[tokio::test]
    async fn a_body_past_the_limit_without_length_is_413_and_the_handler_does_not_run() {
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&calls);
        let mut service = KnolyxWebhook::new(
            service_fn(move |r| {
                counted.fetch_add(1, Ordering::SeqCst);
                echo(r)
            }),
            receiver(),
        );
        let chunk = Bytes::from(vec![b' '; 600]);
        let body = Chunks(VecDeque::from([Ok(chunk.clone()), Ok(chunk)]));
        let response = send(&mut service, request(body)).await.unwrap();
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(text(response).await, "payload too large");

        // Within the limit, the same chunked shape is delivered.
        let event = TestEvent::course_started().to_body();
        let (a, b) = event.split_at(event.len() / 2);
        let body = Chunks(VecDeque::from([
            Ok(Bytes::copy_from_slice(a)),
            Ok(Bytes::copy_from_slice(b)),
        ]));
        let response = send(&mut service, request(body)).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_body_that_fails_to_read_is_400() {
        let mut service = KnolyxWebhook::new(service_fn(echo), receiver());
        let body = Chunks(VecDeque::from([
            Ok(Bytes::from_static(b"{\"id\"")),
            Err("connection reset"),
        ]));
        let response = send(&mut service, request(body)).await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(text(response).await, "failed to read the request body");
    }

    #[tokio::test]
    async fn the_claim_is_completed_before_the_response_is_returned() {
        let receiver = receiver();
        let store = Arc::clone(receiver.store());
        let mut service = KnolyxWebhook::new(service_fn(echo), receiver);
        let event = TestEvent::bundle_payment_received();
        let response = send(&mut service, request(Full::new(event.to_body())))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let claim = store.claim(
            event.message_id(),
            OwnerToken::generate(),
            Duration::from_secs(60),
        );
        assert_eq!(claim.await.unwrap(), ClaimOutcome::Completed);

        let response = send(&mut service, request(Full::new(event.to_body())))
            .await
            .unwrap();
        assert_eq!(response.headers()[DUPLICATE_HEADER], "true");
    }

    #[tokio::test]
    async fn a_non_2xx_response_releases_the_claim_before_it_is_returned() {
        let receiver = receiver();
        let store = Arc::clone(receiver.store());
        let mut service = KnolyxWebhook::new(
            service_fn(|_: Request<RequestBody>| async {
                let mut response = Response::new(Full::<Bytes>::from("busy"));
                *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
                Ok::<_, Infallible>(response)
            }),
            receiver,
        );
        let event = TestEvent::course_payment_received();
        let response = send(&mut service, request(Full::new(event.to_body())))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let claim = store.claim(
            event.message_id(),
            OwnerToken::generate(),
            Duration::from_secs(60),
        );
        assert_eq!(claim.await.unwrap(), ClaimOutcome::Claimed);
    }

    #[tokio::test]
    async fn an_inner_error_releases_the_claim_and_is_returned() {
        let receiver = receiver();
        let store = Arc::clone(receiver.store());
        let mut service = KnolyxWebhook::new(
            service_fn(|_: Request<RequestBody>| async {
                Err::<Response<Full<Bytes>>, _>("inner failed")
            }),
            receiver,
        );
        let event = TestEvent::course_completed();
        let error = send(&mut service, request(Full::new(event.to_body())))
            .await
            .unwrap_err();
        assert_eq!(error, "inner failed");
        let claim = store.claim(
            event.message_id(),
            OwnerToken::generate(),
            Duration::from_secs(60),
        );
        assert_eq!(claim.await.unwrap(), ClaimOutcome::Claimed);
    }

    #[tokio::test]
    async fn a_dropped_response_future_releases_the_claim() {
        let (receiver, store) = receiver_watching_store();
        let (entered_tx, entered) = oneshot::channel::<()>();
        let entered_tx = Arc::new(std::sync::Mutex::new(Some(entered_tx)));
        let mut service = KnolyxWebhook::new(
            service_fn(move |_: Request<RequestBody>| {
                let entered_tx = Arc::clone(&entered_tx);
                async move {
                    if let Some(tx) = entered_tx.lock().unwrap().take() {
                        let _ = tx.send(());
                    }
                    std::future::pending::<Result<Response<Full<Bytes>>, Infallible>>().await
                }
            }),
            receiver,
        );
        let event = TestEvent::course_completed();
        let ready = ServiceExt::<Request<Full<Bytes>>>::ready(&mut service)
            .await
            .unwrap();
        let future = ready.call(request(Full::new(event.to_body())));
        let task = tokio::spawn(future);
        tokio::time::timeout(WAIT, entered).await.unwrap().unwrap();
        task.abort();
        assert!(task.await.unwrap_err().is_cancelled());
        let released = store.wait_for(|c| {
            c.op == StoreOp::Release && c.outcome == CallOutcome::Settle(SettleOutcome::Settled)
        });
        let release = tokio::time::timeout(WAIT, released).await.unwrap();
        assert_eq!(release.id, event.message_id());
    }

    /// A service that must be called only after `poll_ready` on the same instance.
    #[derive(Default)]
    struct MustBeReady {
        ready: bool,
    }

    impl Clone for MustBeReady {
        fn clone(&self) -> Self {
            // A clone has its own readiness: not ready yet.
            Self { ready: false }
        }
    }

    impl Service<Request<RequestBody>> for MustBeReady {
        type Response = Response<Full<Bytes>>;
        type Error = Infallible;
        type Future = std::future::Ready<Result<Self::Response, Infallible>>;

        fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            self.ready = true;
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, _request: Request<RequestBody>) -> Self::Future {
            assert!(self.ready, "called without poll_ready");
            self.ready = false;
            std::future::ready(Ok(Response::new(Full::from("ok"))))
        }
    }

    #[tokio::test]
    async fn the_service_made_ready_is_the_one_called() {
        let mut service = KnolyxWebhook::new(MustBeReady::default(), receiver());
        for _ in 0..2 {
            let body = Full::new(TestEvent::course_started().to_body());
            let response = send(&mut service, request(body)).await.unwrap();
            assert_eq!(response.status(), StatusCode::OK);
        }
    }
}
