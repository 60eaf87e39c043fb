//! The layer in front of a plain hyper server: the request body is hyper's `Incoming`.

use std::convert::Infallible;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use knolyx_webhook_core::WebhookEvent;
use knolyx_webhook_core::testing::TestEvent;
use knolyx_webhook_tower::{KnolyxWebhookLayer, RequestBody};
use tokio::net::TcpListener;
use tower::ServiceBuilder;

use crate::support::{bounded, deliver, header, receiver, text};

async fn handle(request: Request<RequestBody>) -> Result<Response<Full<Bytes>>, Infallible> {
    let id = request
        .extensions()
        .get::<WebhookEvent>()
        .map(|e| e.id().to_owned());
    Ok(Response::new(Full::from(id.unwrap_or_default())))
}

#[tokio::test]
async fn the_layer_serves_plain_hyper() {
    let service = ServiceBuilder::new()
        .layer(KnolyxWebhookLayer::new(receiver()))
        .service_fn(handle);
    // The layered service takes hyper's own request body.
    fn takes_incoming<S: tower::Service<Request<Incoming>>>(_: &S) {}
    takes_incoming(&service);

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/anything", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        // Serves connections until the test ends.
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let service = TowerToHyperService::new(service.clone());
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });

    let event = TestEvent::course_started();
    let response = bounded("hyper", deliver(&url, event.to_body())).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(text(response).await, event.message_id());
    let response = deliver(&url, event.to_body()).await;
    assert_eq!(
        header(&response, "x-knolyx-webhook-duplicate").as_deref(),
        Some("true")
    );
    let response = reqwest::Client::new().get(&url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    server.abort();
}
