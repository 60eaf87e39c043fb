//! Error statuses, undecodable bodies and transport failures.

use std::time::Duration;

use knolyx_webhook_client::{Error, KnolyxClient, MAX_ERROR_BODY};
use std::error::Error as _;

use crate::server::{API_KEY, FakeKnolyx, PROJECT_ID, client_for};

#[tokio::test]
async fn error_statuses_keep_the_body() {
    let server = FakeKnolyx::start().await;
    let client = server.client();

    for (status, body) in [
        (401, r#"{"message":"Unauthorized"}"#),
        (404, r#"{"message":"Webhook not found"}"#),
        (500, "Internal Server Error: database unavailable"),
    ] {
        server.reply(status, body);
        let err = client.get(1).await.expect_err("error status");
        assert_eq!(err.status().map(|s| s.as_u16()), Some(status));
        assert_eq!(err.body(), Some(body));
        assert!(matches!(
            err,
            Error::Status {
                truncated: false,
                ..
            }
        ));
        assert!(err.source().is_none());
        let shown = err.to_string();
        assert!(shown.contains(&status.to_string()), "{shown}");
        assert!(shown.contains(body), "{shown}");
        assert!(shown.contains("GET /public/api/v1/webhook/1"), "{shown}");
    }
}

#[tokio::test]
async fn huge_error_body_is_truncated() {
    let server = FakeKnolyx::start().await;
    let client = server.client();
    server.reply(502, "x".repeat(1024 * 1024));

    let err = client.list().await.expect_err("502");
    match &err {
        Error::Status {
            body, truncated, ..
        } => {
            assert!(*truncated);
            assert_eq!(body.len(), MAX_ERROR_BODY);
        }
        other => panic!("expected a status error, got {other:?}"),
    }
    assert!(err.to_string().len() < 400, "{err}");
}

#[tokio::test]
async fn undecodable_json() {
    let server = FakeKnolyx::start().await;
    let client = server.client();

    for (body, call) in [
        ("<html>oops</html>", "list"),
        (r#"{"data": [1, 2"#, "list"),
        (r#"{"total": 3}"#, "list"),
        ("not json", "get"),
        ("", "get"),
        ("[true]", "list"),
    ] {
        server.reply(200, body);
        let err = match call {
            "list" => client.list().await.map(drop),
            _ => client.get(1).await.map(drop),
        }
        .expect_err(body);
        match &err {
            Error::Decode {
                status, body: kept, ..
            } => {
                assert_eq!(status.as_u16(), 200);
                assert_eq!(kept, body);
            }
            other => panic!("{body}: expected a decode error, got {other:?}"),
        }
        let source = err.source().expect("decode errors keep their source");
        assert!(source.is::<serde_json::Error>());
        assert!(err.to_string().contains("could not decode"), "{err}");
    }
}

#[tokio::test]
async fn transport_failure() {
    // A port nothing listens on.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let client = client_for(&format!("http://127.0.0.1:{port}"), API_KEY);

    let err = client.ping_all().await.expect_err("nothing listens");
    match &err {
        Error::Transport { source, path, .. } => {
            assert!(source.is_connect(), "{source:?}");
            assert_eq!(path, "/public/api/v1/webhook/ping");
        }
        other => panic!("expected a transport error, got {other:?}"),
    }
    assert!(err.source().is_some());
    assert!(err.to_string().contains("could not connect"), "{err}");
    assert!(!format!("{err:?}").contains(API_KEY));
}

#[tokio::test]
async fn timeout() {
    // Accepted by the kernel, never answered: the listener is bound but never polled.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let client = KnolyxClient::builder(&format!("http://{addr}"), API_KEY, PROJECT_ID)
        .http_client(http)
        .timeout(Duration::from_millis(200))
        .build()
        .expect("client");

    let err = client.list().await.expect_err("times out");
    assert!(err.is_timeout(), "{err:?}");
    assert!(err.to_string().contains("timed out"), "{err}");
    drop(listener);
}
