//! The layer inside real apps: beside other routes, state and layers, nested, shared; the
//! extractor without the layer.

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{any, get, post};
use bytes::Bytes;
use knolyx_webhook_core::testing::TestEvent;
use knolyx_webhook_tower::{KnolyxEvent, KnolyxWebhookLayer};

use crate::support::{
    Handler, ROUTE, Server, TOKEN, client, deliver, header, receiver, text, webhook_app,
};

#[tokio::test]
async fn without_the_layer_the_extractor_fails_with_a_500_naming_it() {
    async fn needs_event(KnolyxEvent(event): KnolyxEvent) -> String {
        event.id().to_owned()
    }
    async fn may_have_event(event: Option<KnolyxEvent>) -> &'static str {
        match event {
            Some(_) => "some",
            None => "none",
        }
    }
    let app = Router::new()
        .route("/needs", any(needs_event))
        .route("/may", any(may_have_event))
        .route(ROUTE, any(may_have_event))
        .route_layer(KnolyxWebhookLayer::new(receiver()))
        .route("/needs-unlayered", any(needs_event))
        .route("/may-unlayered", any(may_have_event));
    let server = Server::start(app).await;

    let response = deliver(
        &server.url("/needs-unlayered"),
        TestEvent::course_completed().to_body(),
    )
    .await;
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        text(response).await,
        "missing knolyx webhook event: is `KnolyxWebhookLayer` added to this route?"
    );
    let response = deliver(
        &server.url("/may-unlayered"),
        TestEvent::course_completed().to_body(),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(text(response).await, "none");
    // Under the layer, the optional extractor finds the event.
    let response = deliver(&server.url("/may"), TestEvent::course_completed().to_body()).await;
    assert_eq!(text(response).await, "some");
    let event = TestEvent::course_started();
    let response = deliver(&server.url("/needs"), event.to_body()).await;
    assert_eq!(text(response).await, event.message_id());
}

#[derive(Clone)]
struct AppState {
    greeting: &'static str,
}

async fn stamp(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    response
        .headers_mut()
        .insert("x-app", HeaderValue::from_static("stamped"));
    response
}

#[tokio::test]
async fn the_layer_leaves_other_routes_state_and_layers_alone() {
    let handler = Handler::ok();
    let app = Router::new()
        .route(
            "/hello",
            get(|State(s): State<AppState>| async move { s.greeting }),
        )
        .route(
            "/orders",
            post(|body: Bytes| async move { format!("{} bytes", body.len()) }),
        )
        .with_state(AppState { greeting: "hi" })
        .merge(webhook_app(receiver(), handler.clone()))
        .layer(middleware::from_fn(stamp));
    let server = Server::start(app).await;
    let http = client();

    let response = http.get(server.url("/hello")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, "x-app").as_deref(), Some("stamped"));
    assert_eq!(text(response).await, "hi");
    // No token, a body that is no event, a large body: none of the pipeline's business.
    let response = http
        .post(server.url("/orders"))
        .body(vec![b'x'; 100_000])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(text(response).await, "100000 bytes");
    // Unknown paths and wrong methods elsewhere keep axum's answers.
    let response = http.get(server.url("/nowhere")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let response = http.delete(server.url("/orders")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(header(&response, "allow").as_deref(), Some("POST"));
    assert_eq!(handler.runs(), 0);

    // The webhook route works, under the app-wide layer too.
    let response = deliver(&server.hook(), TestEvent::course_completed().to_body()).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, "x-app").as_deref(), Some("stamped"));
    let response = http.put(server.hook()).body("{}").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(header(&response, "x-app").as_deref(), Some("stamped"));
    assert_eq!(handler.runs(), 1);
}

#[tokio::test]
async fn the_layer_works_on_a_nested_router() {
    let handler = Handler::ok();
    let app = Router::new()
        .nest("/api", webhook_app(receiver(), handler.clone()))
        .route("/", get(|| async { "root" }));
    let server = Server::start(app).await;
    let url = server.url(&format!("/api{ROUTE}"));

    let event = TestEvent::course_completed();
    assert_eq!(
        deliver(&url, event.to_body()).await.status(),
        StatusCode::OK
    );
    let response = deliver(&url, event.to_body()).await;
    assert_eq!(
        header(&response, "x-knolyx-webhook-duplicate").as_deref(),
        Some("true")
    );
    let response = client().get(&url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(header(&response, "allow").as_deref(), Some("PUT, POST"));
    let response = client()
        .put(&url)
        .header("x-webhook-security-token", "nope")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        text(client().get(server.url("/")).send().await.unwrap()).await,
        "root"
    );
    assert_eq!(handler.runs(), 1);
}

#[tokio::test]
async fn one_layer_shared_by_two_routes_shares_its_store() {
    let handler = Handler::ok();
    let layer = KnolyxWebhookLayer::new(receiver());
    async fn on_event(
        State(handler): State<Handler>,
        KnolyxEvent(event): KnolyxEvent,
    ) -> StatusCode {
        handler.run(event).await
    }
    let app = Router::new()
        .route("/a", any(on_event))
        .route_layer(layer.clone())
        // On a method router, `layer` (with `any`, `route_layer` would wrap nothing).
        .route("/b", any(on_event).layer(layer))
        .with_state(handler.clone());
    let server = Server::start(app).await;
    let event = TestEvent::course_payment_received();

    assert_eq!(
        deliver(&server.url("/a"), event.to_body()).await.status(),
        StatusCode::OK
    );
    let response = deliver(&server.url("/b"), event.to_body()).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        header(&response, "x-knolyx-webhook-duplicate").as_deref(),
        Some("true")
    );
    let other = TestEvent::course_payment_received();
    let response = deliver(&server.url("/b"), other.to_body()).await;
    assert_eq!(header(&response, "x-knolyx-webhook-duplicate"), None);
    assert_eq!(handler.runs(), 2);
}

#[tokio::test]
async fn the_handler_receives_the_body_bytes_and_the_event() {
    async fn echo(
        KnolyxEvent(event): KnolyxEvent,
        body: Bytes,
    ) -> (StatusCode, [(&'static str, String); 1], Bytes) {
        (
            StatusCode::OK,
            [("x-event-id", event.id().to_owned())],
            body,
        )
    }
    let app = Router::new()
        .route(ROUTE, any(echo))
        .route_layer(KnolyxWebhookLayer::new(receiver()));
    let server = Server::start(app).await;
    // Extra fields and spacing: the handler gets the bytes exactly as sent.
    let body = format!(
        r#"{{ "id": "bytes-1", "type": "COURSE_STARTED", "extra": [1, 2], "data": {} }}"#,
        r#"{"user":{"id":1,"name":"Ana","email":"ana@example.com"},"course":{"id":2,"name":"Rust"}}"#
    );

    let response = client()
        .put(server.hook())
        .header("x-webhook-security-token", TOKEN)
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, "x-event-id").as_deref(), Some("bytes-1"));
    assert_eq!(text(response).await, body);
}

/// The README's "existing app" shape: state, `/health`, an API nested under `/api`, and the
/// webhook route in a router of its own, with the layer, merged in. `route_layer` wraps the
/// routes added before it on its router, so added to the app's router it guards `/health`
/// too: every request there is refused by the pipeline, a GET with 405.
#[tokio::test]
async fn route_layer_guards_only_the_routes_before_it_on_its_router() {
    use axum::body::Body;
    use tower::ServiceExt;

    #[derive(Clone)]
    struct App {
        name: &'static str,
    }
    async fn on_event(State(app): State<App>, KnolyxEvent(event): KnolyxEvent) -> String {
        format!("{} {}", app.name, event.event_type())
    }
    async fn health(State(app): State<App>) -> &'static str {
        app.name
    }
    let fetch = |uri: &str| axum::http::Request::get(uri).body(Body::empty()).unwrap();
    let status = |app: &Router, request: axum::http::Request<Body>| {
        let app = app.clone();
        async move { app.oneshot(request).await.unwrap().status() }
    };

    let webhooks = Router::new()
        .route(ROUTE, any(on_event))
        .route_layer(KnolyxWebhookLayer::new(receiver()));
    let api = Router::new().route("/orders", get(|| async { "[]" }));
    let app = Router::new()
        .route("/health", get(health))
        .nest("/api", api)
        .merge(webhooks)
        .with_state(App { name: "shop" });

    assert_eq!(status(&app, fetch("/health")).await, StatusCode::OK);
    assert_eq!(status(&app, fetch("/api/orders")).await, StatusCode::OK);
    let event = TestEvent::course_started();
    let response = app
        .clone()
        .oneshot(event.request::<Body>(ROUTE, TOKEN))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = axum::body::to_bytes(response.into_body(), 1024)
        .await
        .unwrap();
    assert_eq!(body, "shop COURSE_STARTED");
    assert_eq!(
        status(&app, event.request(ROUTE, "wrong")).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        status(&app, fetch(ROUTE)).await,
        StatusCode::METHOD_NOT_ALLOWED
    );

    // The mistake: the layer on the app's own router, after `/health`.
    let guarded = Router::new()
        .route("/health", get(health))
        .route(ROUTE, any(on_event))
        .route_layer(KnolyxWebhookLayer::new(receiver()))
        .with_state(App { name: "shop" });
    assert_eq!(
        status(&guarded, fetch("/health")).await,
        StatusCode::METHOD_NOT_ALLOWED
    );
}
