//! [`KnolyxWebhookMiddleware`]: settles each delivery with the handler's response status.

use std::cell::RefCell;
use std::future::{Ready, ready};
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::{HttpMessage, HttpRequest, web};
use futures_util::future::LocalBoxFuture;
use knolyx_webhook_core::{ClaimRef, Reception, Settlement, WebhookReceiver};
use tracing::Instrument;

use crate::rejection::KnolyxEventRejection;

/// The middleware that learns the handler's outcome and settles the delivery with it.
///
/// [`KnolyxEvent`](crate::KnolyxEvent) claims the message id before the handler runs, but an
/// extractor never sees the handler's response. This middleware does, and that is all it
/// does:
///
/// 1. before the route runs, it begins the delivery (core's
///    [`WebhookReceiver::begin`], which opens the `knolyx_webhook.delivery` tracing span)
///    and puts it in the request's extensions, for the extractor. The extractor refuses
///    with a 500 naming this middleware when it finds nothing there, so a forgotten
///    `.wrap(...)` fails on the first request instead of silently marking events handled;
/// 2. the extractor runs the pipeline and leaves the delivery's [`Settlement`] there;
/// 3. once the route has produced its response, the middleware settles with the response's
///    status, *before* the response goes out: a 2xx completes the claim; anything else
///    (a non-2xx, or a handler error rendered as its status) releases it, so Knolyx's retry
///    runs the handler again. An `Err` from an inner middleware or service settles by the
///    response actix-web sends for it (`error_response()`), not by its `status_code()`. If the handler panics, the settlement is dropped unsettled and
///    core releases the claim on the worker's runtime.
///
/// The route (extractor and handler) runs inside the delivery's span, so the handler's logs
/// carry the message id and type. That needs the receiver to be visible where the
/// middleware is registered: app data of the `App`, or of the same scope or resource. (With
/// the receiver registered closer to the route than the middleware, everything works the
/// same, but the handler runs outside the span.)
///
/// Register it on the `App`, a scope or the resource that serves the webhook. Requests to
/// routes without [`KnolyxEvent`](crate::KnolyxEvent) pass through unchanged (at the cost of
/// an unused span when the receiver is visible): wrapping only the webhook's resource keeps
/// other routes free of it. See the [crate docs](crate) for a complete example.
#[derive(Clone, Copy, Debug, Default)]
pub struct KnolyxWebhookMiddleware;

impl<S, B> Transform<S, ServiceRequest> for KnolyxWebhookMiddleware
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
    S::Future: 'static,
    B: 'static,
{
    type Response = ServiceResponse<B>;
    type Error = actix_web::Error;
    type Transform = KnolyxWebhookService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(KnolyxWebhookService { service }))
    }
}

/// The service [`KnolyxWebhookMiddleware`] wraps a route in.
#[derive(Debug)]
pub struct KnolyxWebhookService<S> {
    service: S,
}

impl<S, B> Service<ServiceRequest> for KnolyxWebhookService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
    S::Future: 'static,
    B: 'static,
{
    type Response = ServiceResponse<B>;
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self::Response, Self::Error>>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        // Begin the delivery here, so that its span covers the extractor and the handler.
        let reception = receiver_of(req.request()).map(WebhookReceiver::begin);
        let span = reception.as_ref().map(|r| r.span().clone());
        let slot = DeliverySlot::new(reception);
        req.extensions_mut().insert(slot.clone());
        let route = self.service.call(req);
        Box::pin(async move {
            let result = match span {
                Some(span) => route.instrument(span).await,
                None => route.await,
            };
            if let Some(settlement) = slot.take_settlement() {
                let status = match &result {
                    Ok(response) => response.status(),
                    // An error the route returned: actix-web sends `error_response()`,
                    // whose status may differ from the error's `status_code()`.
                    Err(error) => error.error_response().status(),
                };
                settlement.settle(status.as_u16()).await;
            }
            result
        })
    }
}

/// The receiver registered as app data, directly or as `web::Data`.
pub(crate) fn receiver_of(req: &HttpRequest) -> Option<&WebhookReceiver> {
    req.app_data::<WebhookReceiver>().or_else(|| {
        req.app_data::<web::Data<WebhookReceiver>>()
            .map(|data| data.get_ref())
    })
}

/// What the middleware and the extractors hand each other through the request's
/// extensions: the delivery the middleware began (when it could see the receiver), the
/// [`Settlement`] the extractor leaves for the middleware, and how far the extraction of
/// [`KnolyxEvent`](crate::KnolyxEvent) got, for [`KnolyxClaim`](crate::KnolyxClaim). Shared
/// by the extensions, the middleware's future and the extractors' futures, on one worker
/// thread: `Rc`.
#[derive(Clone, Debug)]
pub(crate) struct DeliverySlot(Rc<RefCell<Slot>>);

#[derive(Debug)]
struct Slot {
    reception: Option<Reception>,
    settlement: Option<Settlement>,
    event: EventState,
    /// The task of a `KnolyxClaim` waiting for the event's extraction to finish.
    claim_waker: Option<Waker>,
}

/// How far the `KnolyxEvent` extraction of this request got.
#[derive(Debug)]
enum EventState {
    /// No `KnolyxEvent` extractor was created for this request.
    NotStarted,
    /// Created (in `from_request`), not finished yet.
    Running,
    /// Finished, with the delivery's claim if it has one.
    Finished(Option<ClaimRef>),
}

impl DeliverySlot {
    fn new(reception: Option<Reception>) -> Self {
        Self(Rc::new(RefCell::new(Slot {
            reception,
            settlement: None,
            event: EventState::NotStarted,
            claim_waker: None,
        })))
    }

    /// The delivery begun by the middleware, if it saw the receiver.
    pub(crate) fn take_reception(&self) -> Option<Reception> {
        self.0.borrow_mut().reception.take()
    }

    pub(crate) fn put_settlement(&self, settlement: Settlement) {
        self.0.borrow_mut().settlement = Some(settlement);
    }

    fn take_settlement(&self) -> Option<Settlement> {
        self.0.borrow_mut().settlement.take()
    }

    /// Records, from `KnolyxEvent::from_request`, that the event's extraction has begun. The
    /// extraction finishes when the returned guard is finished or dropped.
    pub(crate) fn start_event(&self) -> EventExtraction {
        self.0.borrow_mut().event = EventState::Running;
        EventExtraction(self.clone())
    }

    /// Finishes a running extraction, and wakes the `KnolyxClaim` waiting for it.
    fn finish_event(&self, claim: Option<ClaimRef>) {
        let waker = {
            let mut slot = self.0.borrow_mut();
            if !matches!(slot.event, EventState::Running) {
                return;
            }
            slot.event = EventState::Finished(claim);
            slot.claim_waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// The claim once the event's extraction has finished with one. Every extractor of a
    /// handler is created before any is polled, so a poll that finds no extraction begun
    /// means the handler takes no `KnolyxEvent`.
    pub(crate) fn poll_claim(
        &self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<ClaimRef, KnolyxEventRejection>> {
        let mut slot = self.0.borrow_mut();
        match &slot.event {
            EventState::NotStarted => Poll::Ready(Err(KnolyxEventRejection::MissingEvent)),
            EventState::Running => {
                slot.claim_waker = Some(cx.waker().clone());
                Poll::Pending
            }
            EventState::Finished(Some(claim)) => Poll::Ready(Ok(claim.clone())),
            EventState::Finished(None) => Poll::Ready(Err(KnolyxEventRejection::NoClaim)),
        }
    }
}

/// A running `KnolyxEvent` extraction: [`finish`](Self::finish) it with the claim; dropped
/// unfinished (refused, answered, or the future dropped), it finishes without one, so a
/// waiting `KnolyxClaim` never hangs.
#[derive(Debug)]
pub(crate) struct EventExtraction(DeliverySlot);

impl EventExtraction {
    pub(crate) fn finish(self, claim: Option<ClaimRef>) {
        self.0.finish_event(claim);
    }
}

impl Drop for EventExtraction {
    fn drop(&mut self) {
        self.0.finish_event(None);
    }
}

#[cfg(test)]
mod tests {
    use actix_web::{App, HttpResponse, test, web};
    use knolyx_webhook_core::WebhookReceiver;
    use knolyx_webhook_core::testing::TestEvent;

    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::task::{Context, Poll, Wake, Waker};

    use super::DeliverySlot;
    use crate::{KnolyxEvent, KnolyxEventRejection, KnolyxWebhookMiddleware};

    struct Woken(AtomicBool);

    impl Wake for Woken {
        fn wake(self: Arc<Self>) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_waiting_claim_is_woken_when_the_event_extraction_ends_without_one() {
        let woken = Arc::new(Woken(AtomicBool::new(false)));
        let waker = Waker::from(Arc::clone(&woken));
        let mut cx = Context::from_waker(&waker);
        let slot = DeliverySlot::new(None);
        let no_event = slot.poll_claim(&mut cx);
        assert!(matches!(
            no_event,
            Poll::Ready(Err(KnolyxEventRejection::MissingEvent))
        ));

        let extraction = slot.start_event();
        assert!(slot.poll_claim(&mut cx).is_pending());
        // The event's future dropped unfinished (refused, or dropped by actix-web).
        drop(extraction);
        assert!(woken.0.load(Ordering::SeqCst), "the claim's task was woken");
        let no_claim = slot.poll_claim(&mut cx);
        assert!(matches!(
            no_claim,
            Poll::Ready(Err(KnolyxEventRejection::NoClaim))
        ));
    }

    async fn span_name(_: KnolyxEvent) -> HttpResponse {
        let current = tracing::Span::current();
        let name = current.metadata().map_or("none", |m| m.name());
        HttpResponse::Ok().body(name)
    }

    #[test]
    fn a_receiver_registered_below_the_middleware_still_settles() {
        actix_web::rt::System::new().block_on(async {
            let receiver = WebhookReceiver::builder().token("t").build().unwrap();
            let app =
                test::init_service(App::new().wrap(KnolyxWebhookMiddleware).service(
                    web::resource("/").app_data(receiver).route(
                        web::route().to(|_: KnolyxEvent| async { HttpResponse::Ok().finish() }),
                    ),
                ))
                .await;
            let body = TestEvent::course_started().to_body();
            let delivery = || {
                test::TestRequest::put()
                    .uri("/")
                    .insert_header(("x-webhook-security-token", "t"))
                    .set_payload(body.clone())
                    .to_request()
            };
            let first = test::call_service(&app, delivery()).await;
            assert_eq!(first.status(), 200);
            assert!(first.headers().get("x-knolyx-webhook-duplicate").is_none());
            let again = test::call_service(&app, delivery()).await;
            assert_eq!(again.status(), 200);
            assert!(again.headers().get("x-knolyx-webhook-duplicate").is_some());
        });
    }

    #[test]
    fn the_handler_runs_inside_the_delivery_span() {
        // Global (other tests in this binary log nothing either way), and the interest
        // cache rebuilt, so a callsite first seen on another test's thread is enabled too.
        let _ = tracing::subscriber::set_global_default(tracing_subscriber::registry());
        tracing::callsite::rebuild_interest_cache();
        actix_web::rt::System::new().block_on(async {
            let receiver = WebhookReceiver::builder().token("t").build().unwrap();
            let app = test::init_service(
                App::new()
                    .app_data(receiver)
                    .wrap(KnolyxWebhookMiddleware)
                    .route("/", web::route().to(span_name)),
            )
            .await;
            let request = test::TestRequest::put()
                .uri("/")
                .insert_header(("x-webhook-security-token", "t"))
                .set_payload(TestEvent::course_started().to_body())
                .to_request();
            let body = test::call_and_read_body(&app, request).await;
            assert_eq!(body, "knolyx_webhook.delivery");
        });
    }
}
