//! A handler completing the claim itself (as with `PostgresStore::complete_in_transaction`)
//! takes `KnolyxClaim` beside `KnolyxEvent`, in either order; `web::ReqData<ClaimRef>`
//! cannot work.

use std::sync::Arc;

use actix_web::{FromRequest, Handler, HttpMessage, HttpRequest, HttpResponse, Responder, web};
use knolyx_webhook_actix::{KnolyxClaim, KnolyxEvent, KnolyxWebhookMiddleware};
use knolyx_webhook_core::store::{IdempotencyStore, SettleOutcome};
use knolyx_webhook_core::testing::{CallOutcome, FaultyStore, StoreOp, TestEvent};
use knolyx_webhook_core::{
    ClaimRef, MemoryStore, PingHandling, StoreFailureHandling, WebhookReceiver,
};

use crate::support::{ROUTE, Script, TOKEN, TestServer, failing_store, receiver_with};

type Store = FaultyStore<MemoryStore>;

/// A server whose route is `handler`, with `receiver`, and `store` as `web::Data`.
fn serve<F, Args>(
    receiver: WebhookReceiver,
    store: &Store,
    script: &Arc<Script>,
    handler: F,
) -> TestServer
where
    F: Handler<Args> + Send,
    Args: FromRequest + 'static,
    F::Output: Responder + 'static,
{
    let store = web::Data::new(store.clone());
    TestServer::serve(script, 1, move |cfg| {
        cfg.app_data(receiver.clone())
            .app_data(store.clone())
            .service(
                web::resource(ROUTE)
                    .route(web::route().to(handler.clone()))
                    .wrap(KnolyxWebhookMiddleware),
            );
    })
}

/// The handler's work: record the run, then complete the claim itself, as
/// `PostgresStore::complete_in_transaction` does inside the handler's transaction (the
/// fenced completion, then `mark_completed`).
async fn complete_itself(
    event: &knolyx_webhook_core::WebhookEvent,
    claim: &ClaimRef,
    req: &HttpRequest,
    script: &Script,
    store: &Store,
) -> HttpResponse {
    let _ = script.start(event);
    if claim.id() != event.id() {
        return HttpResponse::InternalServerError().body("the claim of another event");
    }
    let in_extensions = req.extensions().get::<ClaimRef>().map(ClaimRef::owner);
    if in_extensions != Some(claim.owner()) {
        return HttpResponse::InternalServerError().body("no ClaimRef in the extensions");
    }
    match store
        .complete(claim.id(), claim.owner(), claim.retention())
        .await
    {
        Ok(SettleOutcome::Settled) => {
            claim.mark_completed();
            HttpResponse::Ok().body("completed by the handler")
        }
        _ => HttpResponse::ServiceUnavailable().body("not completed"),
    }
}

async fn event_then_claim(
    KnolyxEvent(event): KnolyxEvent,
    KnolyxClaim(claim): KnolyxClaim,
    req: HttpRequest,
    script: web::Data<Script>,
    store: web::Data<Store>,
) -> HttpResponse {
    complete_itself(&event, &claim, &req, &script, &store).await
}

async fn claim_then_event(
    KnolyxClaim(claim): KnolyxClaim,
    req: HttpRequest,
    KnolyxEvent(event): KnolyxEvent,
    script: web::Data<Script>,
    store: web::Data<Store>,
) -> HttpResponse {
    complete_itself(&event, &claim, &req, &script, &store).await
}

/// Two deliveries of one event to `handler`, which completes the claim itself: the first
/// runs it (200), the pipeline does not complete again, the retransmission is a duplicate.
async fn assert_the_handler_completes_the_claim<F, Args>(handler: F)
where
    F: Handler<Args> + Send,
    Args: FromRequest + 'static,
    F::Output: Responder + 'static,
{
    let store = FaultyStore::new(MemoryStore::new());
    let script = Script::ok();
    let server = serve(receiver_with(store.clone()), &store, &script, handler);
    let event = TestEvent::course_payment_received();

    let first = server.deliver(event.to_body()).await;
    assert_eq!(first.status, 200, "{first:?}");
    assert_eq!(first.body, "completed by the handler");
    assert_eq!(script.runs(event.message_id()), 1);
    let completions: Vec<_> = store
        .calls()
        .into_iter()
        .filter(|c| c.op != StoreOp::Claim)
        .collect();
    assert_eq!(
        completions.len(),
        1,
        "only the handler settled: {completions:?}"
    );
    assert_eq!(completions[0].op, StoreOp::Complete);
    assert_eq!(
        completions[0].outcome,
        CallOutcome::Settle(SettleOutcome::Settled)
    );

    let again = server.deliver(event.to_body()).await;
    assert_eq!(again.status, 200);
    assert!(again.is_duplicate(), "{again:?}");
    assert_eq!(script.runs(event.message_id()), 1, "the handler ran once");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_taking_the_event_then_the_claim_completes_it() {
    assert_the_handler_completes_the_claim(event_then_claim).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_taking_the_claim_then_the_event_completes_it() {
    assert_the_handler_completes_the_claim(claim_then_event).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_claim_without_the_event_extractor_is_a_500_naming_it() {
    let store = FaultyStore::new(MemoryStore::new());
    let script = Script::ok();
    let handler = |KnolyxClaim(_): KnolyxClaim| async { HttpResponse::Ok().body("ran") };
    let server = serve(receiver_with(store.clone()), &store, &script, handler);
    let response = server.deliver(TestEvent::course_started().to_body()).await;
    assert_eq!(response.status, 500);
    assert!(response.body.contains("`KnolyxEvent`"), "{}", response.body);
    assert!(
        store.calls().is_empty(),
        "nothing claimed: {:?}",
        store.calls()
    );
    server.stop().await;
}

async fn maybe_claim(
    KnolyxEvent(event): KnolyxEvent,
    claim: Option<KnolyxClaim>,
    script: web::Data<Script>,
) -> HttpResponse {
    let _ = script.start(&event);
    HttpResponse::Ok().body(match claim {
        Some(_) => "a claim",
        None => "no claim",
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_without_a_claim_gives_none_or_a_500() {
    // A forwarded PING is never claimed: `Option<KnolyxClaim>` is `None`.
    let receiver = WebhookReceiver::builder()
        .token(TOKEN)
        .ping(PingHandling::Forward)
        .build()
        .unwrap();
    let store = FaultyStore::new(MemoryStore::new());
    let script = Script::ok();
    let server = serve(receiver, &store, &script, maybe_claim);
    let ping = TestEvent::ping();
    let response = server.deliver(ping.to_body()).await;
    assert_eq!((response.status, response.body.as_str()), (200, "no claim"));
    assert_eq!(script.runs(ping.message_id()), 1);
    let event = TestEvent::course_started();
    let response = server.deliver(event.to_body()).await;
    assert_eq!((response.status, response.body.as_str()), (200, "a claim"));
    server.stop().await;

    // Fail-open after a store failure: no claim, and `KnolyxClaim` refuses with a 500.
    let store = failing_store();
    let receiver = WebhookReceiver::builder()
        .token(TOKEN)
        .store(store.clone())
        .store_failure(StoreFailureHandling::FailOpen)
        .build()
        .unwrap();
    let server = serve(receiver, &store, &script, event_then_claim);
    let response = server.deliver(event.to_body()).await;
    assert_eq!(response.status, 500);
    assert!(response.body.contains("no claim"), "{}", response.body);
    assert_eq!(
        script.runs(event.message_id()),
        1,
        "the handler did not run"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn req_data_claim_ref_never_reaches_the_handler() {
    // `ReqData` reads the extensions in `from_request`, before `KnolyxEvent` has claimed:
    // always a 500, the handler never runs, and nothing is marked handled.
    let store = FaultyStore::new(MemoryStore::new());
    let script = Script::ok();
    let handler = |KnolyxEvent(event): KnolyxEvent,
                   _: web::ReqData<ClaimRef>,
                   script: web::Data<Script>| async move {
        let _ = script.start(&event);
        HttpResponse::Ok().finish()
    };
    let server = serve(receiver_with(store.clone()), &store, &script, handler);
    let event = TestEvent::course_completed();
    for _ in 0..2 {
        let response = server.deliver(event.to_body()).await;
        assert_eq!(response.status, 500, "{response:?}");
        assert!(!response.is_duplicate());
    }
    assert_eq!(script.total(), 0, "the handler never ran");
    assert!(
        store.calls().iter().all(|c| c.op != StoreOp::Complete),
        "{:?}",
        store.calls()
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_keep_their_status_with_the_claim_taken_first() {
    // A refusal, found before (401) or after (503) the body is read, is the event's answer,
    // not the claim's 500.
    let store = failing_store();
    let script = Script::ok();
    let server = serve(
        receiver_with(store.clone()),
        &store,
        &script,
        claim_then_event,
    );
    let body = TestEvent::course_started().to_body();
    let forged = server
        .send(reqwest::Method::PUT, &["guess"], body.clone())
        .await;
    assert_eq!(forged.status, 401, "{forged:?}");
    let unavailable = server.deliver(body).await;
    assert_eq!(unavailable.status, 503, "{unavailable:?}");
    assert_eq!(script.total(), 0);
    server.stop().await;
}
