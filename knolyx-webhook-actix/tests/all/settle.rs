//! An error from inside the middleware settles by the response actix-web really sends for
//! it (`error_response()`), not by the status the error claims (`status_code()`).

use std::fmt;

use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError, web};
use knolyx_webhook_actix::KnolyxWebhookMiddleware;
use knolyx_webhook_core::testing::TestEvent;
use knolyx_webhook_core::{DUPLICATE_HEADER, MemoryStore};

use crate::support::{ROUTE, Response, Script, TestServer, on_event, receiver_with};

/// An error whose `status_code()` is not the status of the response it renders.
#[derive(Debug, Clone, Copy)]
struct Misreported {
    claimed: StatusCode,
    rendered: StatusCode,
}

impl fmt::Display for Misreported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "claims {} but renders {}", self.claimed, self.rendered)
    }
}

impl ResponseError for Misreported {
    fn status_code(&self) -> StatusCode {
        self.claimed
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.rendered).body("rendered by error_response")
    }
}

/// Delivers one event twice to the scripted handler, behind a `wrap_fn` inside
/// `KnolyxWebhookMiddleware` that turns every response of the route into `Err(error)`
/// (except the pipeline's duplicate answers). The two responses, and how many times the
/// handler ran.
async fn deliver_twice(claimed: StatusCode, rendered: StatusCode) -> (Response, Response, u32) {
    let error = Misreported { claimed, rendered };
    let script = Script::ok();
    let receiver = receiver_with(MemoryStore::new());
    let server = TestServer::serve(&script, 1, move |cfg| {
        let resource = web::resource(ROUTE)
            .route(web::route().to(on_event))
            .wrap_fn(move |req, srv| {
                let route = srv.call(req);
                async move {
                    let response: ServiceResponse = route.await?;
                    if response.headers().contains_key(DUPLICATE_HEADER) {
                        return Ok(response);
                    }
                    Err(error.into())
                }
            })
            .wrap(KnolyxWebhookMiddleware);
        cfg.app_data(receiver.clone()).service(resource);
    });
    let event = TestEvent::course_completed();
    let first = server.deliver(event.to_body()).await;
    let again = server.deliver(event.to_body()).await;
    server.stop().await;
    (first, again, script.runs(event.message_id()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_claiming_2xx_but_rendered_500_releases_the_claim() {
    let (first, retried, runs) =
        deliver_twice(StatusCode::OK, StatusCode::INTERNAL_SERVER_ERROR).await;
    assert_eq!(first.status, 500);
    assert_eq!(first.body, "rendered by error_response");
    // Knolyx saw a 500 and retries: the retry must run the handler, not be a duplicate.
    assert!(!retried.is_duplicate(), "the event was marked handled");
    assert_eq!(runs, 2, "the retry ran the handler");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_claiming_500_but_rendered_2xx_completes_the_claim() {
    let (first, again, runs) =
        deliver_twice(StatusCode::INTERNAL_SERVER_ERROR, StatusCode::OK).await;
    assert_eq!(first.status, 200);
    assert_eq!(first.body, "rendered by error_response");
    // Knolyx saw a 2xx: the id is handled, and a retransmission is a duplicate.
    assert_eq!(again.status, 200);
    assert!(again.is_duplicate(), "the claim was released after a 2xx");
    assert_eq!(runs, 1, "the handler ran once");
}
