//! The documented API, played by the fake server: what the client sends, and the
//! lifecycle of a webhook.

use axum::http::Method;
use knolyx_webhook_client::{CreateWebhook, Error, WebhookId};
use serde_json::json;

use crate::server::{API_KEY, FakeKnolyx, PROJECT_ID, Recorded, client_for};

const PATH: &str = "/public/api/v1/webhook";

fn assert_sent(request: &Recorded, method: Method, path: &str) {
    assert_eq!(request.method, method);
    assert_eq!(request.path, path);
    assert_eq!(request.api_key.as_deref(), Some(API_KEY));
    assert_eq!(request.project_id.as_deref(), Some(PROJECT_ID));
}

#[tokio::test]
async fn create_sends_the_documented_request() {
    let server = FakeKnolyx::start().await;
    let client = server.client();
    let request = CreateWebhook::new("Webhook name", "https://valid-domain/hook", "tok-123");

    let webhook = client.create(&request).await.expect("create");

    let sent = server.last_request();
    assert_sent(&sent, Method::POST, PATH);
    assert_eq!(sent.content_type.as_deref(), Some("application/json"));
    assert_eq!(
        sent.json(),
        json!({"name": "Webhook name", "url": "https://valid-domain/hook", "securityToken": "tok-123"})
    );
    assert_eq!(webhook.id, Some(WebhookId::from(1)));
    assert_eq!(webhook.name.as_deref(), Some("Webhook name"));
    assert_eq!(webhook.url.as_deref(), Some("https://valid-domain/hook"));
    assert_eq!(
        webhook.extra.get("createdAt"),
        Some(&json!("2024-05-01T10:00:00Z"))
    );
}

#[tokio::test]
async fn lifecycle() {
    let server = FakeKnolyx::start().await;
    let client = server.client();

    let first = client
        .create(&CreateWebhook::with_generated_token(
            "one",
            "https://a.example.com/hook",
        ))
        .await
        .expect("create one");
    let second = client
        .create(&CreateWebhook::with_generated_token(
            "two",
            "https://b.example.com/hook",
        ))
        .await
        .expect("create two");
    let (first_id, second_id) = (first.id.expect("id"), second.id.expect("id"));
    assert_ne!(first_id, second_id);

    let all = client.list().await.expect("list");
    assert_sent(&server.last_request(), Method::GET, PATH);
    let names: Vec<_> = all.iter().map(|w| w.name.as_deref().unwrap()).collect();
    assert_eq!(names, ["one", "two"]);

    let got = client.get(&second_id).await.expect("get");
    assert_sent(
        &server.last_request(),
        Method::GET,
        &format!("{PATH}/{second_id}"),
    );
    assert_eq!(got.url.as_deref(), Some("https://b.example.com/hook"));

    client.ping(&first_id).await.expect("ping one");
    assert_sent(
        &server.last_request(),
        Method::POST,
        &format!("{PATH}/{first_id}/ping"),
    );
    assert!(server.last_request().body.is_empty());

    client.ping_all().await.expect("ping all");
    assert_sent(
        &server.last_request(),
        Method::POST,
        &format!("{PATH}/ping"),
    );

    client.delete(&first_id).await.expect("delete");
    assert_sent(
        &server.last_request(),
        Method::DELETE,
        &format!("{PATH}/{first_id}"),
    );

    let err = client.get(&first_id).await.expect_err("deleted");
    assert!(err.is_not_found(), "{err}");
    let err = client.delete(&first_id).await.expect_err("deleted twice");
    assert!(err.is_not_found(), "{err}");
    let err = client.ping(&first_id).await.expect_err("ping deleted");
    assert!(err.is_not_found(), "{err}");

    let left = client.list().await.expect("list");
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].id.as_ref(), Some(&second_id));

    // Every request carried both headers.
    for request in server.requests() {
        assert_eq!(request.api_key.as_deref(), Some(API_KEY));
        assert_eq!(request.project_id.as_deref(), Some(PROJECT_ID));
    }
}

#[tokio::test]
async fn wrong_api_key_is_401_with_body() {
    let server = FakeKnolyx::start().await;
    let client = client_for(&server.base_url(), "wrong-key");

    let err = client.list().await.expect_err("401");
    assert!(err.is_unauthorized());
    match &err {
        Error::Status {
            status,
            body,
            truncated,
            method,
            path,
        } => {
            assert_eq!(status.as_u16(), 401);
            assert!(body.contains("Invalid api key"), "{body}");
            assert!(!truncated);
            assert_eq!(*method, Method::GET);
            assert_eq!(path, PATH);
        }
        other => panic!("expected a status error, got {other:?}"),
    }
    let shown = err.to_string();
    assert!(shown.contains("401"), "{shown}");
    assert!(shown.contains("Invalid api key"), "{shown}");
    assert!(!shown.contains("wrong-key"), "{shown}");
}

#[tokio::test]
async fn refused_url_is_never_sent() {
    let server = FakeKnolyx::start().await;
    let client = server.client();
    for url in [
        "http://example.com/hook",
        "https://localhost/hook",
        "https://127.0.0.1/hook",
    ] {
        let err = client
            .create(&CreateWebhook::new("x", url, "tok"))
            .await
            .expect_err(url);
        assert!(matches!(err, Error::InvalidWebhookUrl(_)), "{url}: {err:?}");
    }
    assert!(server.requests().is_empty());
}

#[tokio::test]
async fn ids_are_percent_encoded_and_checked() {
    let server = FakeKnolyx::start().await;
    let client = server.client();
    server.reply(200, r#"{"id": "a/b c"}"#);
    let got = client.get("a/b c").await.expect("get");
    assert_eq!(server.last_request().path, format!("{PATH}/a%2Fb%20c"));
    assert_eq!(got.id.unwrap().as_str(), "a/b c");

    for bad in ["", ".", ".."] {
        let err = client.delete(bad).await.expect_err("bad id");
        assert!(matches!(err, Error::InvalidWebhookId { .. }), "{err:?}");
    }
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn base_url_path_prefix_is_kept() {
    let server = FakeKnolyx::start().await;
    let client = client_for(&format!("{}/knolyx/", server.base_url()), API_KEY);
    server.reply(204, "");
    client.ping(7).await.expect("ping");
    assert_eq!(server.last_request().path, format!("/knolyx{PATH}/7/ping"));
}

#[tokio::test]
async fn secrets_stay_out_of_debug() {
    let server = FakeKnolyx::start().await;
    let client = server.client();
    let shown = format!("{client:?}");
    assert!(!shown.contains(API_KEY), "{shown}");
    assert!(shown.contains("redacted"), "{shown}");

    let builder =
        knolyx_webhook_client::KnolyxClient::builder("https://k.example.com", API_KEY, "1");
    assert!(!format!("{builder:?}").contains(API_KEY));

    let request = CreateWebhook::new("n", "https://example.com/h", "super-secret-token");
    assert!(!format!("{request:?}").contains("super-secret-token"));
}
