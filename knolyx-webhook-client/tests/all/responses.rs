//! Undocumented response bodies, in the shapes the client must tolerate.

use knolyx_webhook_client::{CreateWebhook, WebhookId};
use serde_json::json;

use crate::server::FakeKnolyx;

#[tokio::test]
async fn ids_as_numbers_or_strings() {
    let server = FakeKnolyx::start().await;
    let client = server.client();

    server.reply(
        200,
        r#"{"id": 42, "name": "n", "url": "https://x.example.com/h"}"#,
    );
    let by_number = client.get(42).await.expect("number id");
    let id = by_number.id.expect("id");
    assert_eq!(id, WebhookId::from(42));
    assert_eq!(id.to_string(), "42");
    assert_eq!(id.as_i64(), Some(42));

    server.reply(200, r#"{"id": "af46ec07-de79-40b5-916c-0058b54b2d2b"}"#);
    let by_string = client
        .get("af46ec07-de79-40b5-916c-0058b54b2d2b")
        .await
        .expect("string id");
    let id = by_string.id.expect("id");
    assert_eq!(id.to_string(), "af46ec07-de79-40b5-916c-0058b54b2d2b");
    assert_eq!(id.as_i64(), None);
    assert_eq!(by_string.name, None);
}

#[tokio::test]
async fn unknown_fields_are_kept_and_missing_ones_are_none() {
    let server = FakeKnolyx::start().await;
    let client = server.client();

    server.reply(
        200,
        r#"{"id": 5, "name": "n", "active": true, "createdAt": "2024-01-01", "events": ["PING"], "securityToken": "echoed-secret"}"#,
    );
    let webhook = client.get(5).await.expect("get");
    assert_eq!(webhook.extra.get("active"), Some(&json!(true)));
    assert_eq!(webhook.extra.get("events"), Some(&json!(["PING"])));
    assert_eq!(webhook.url, None);
    assert_eq!(webhook.security_token.as_deref(), Some("echoed-secret"));
    assert!(!format!("{webhook:?}").contains("echoed-secret"));

    // An object without any known field: the requested id is filled in.
    server.reply(200, "{}");
    let bare = client.get(9).await.expect("empty object");
    assert_eq!(bare.id, Some(WebhookId::from(9)));

    // Wrapped in an envelope.
    server.reply(
        200,
        r#"{"data": {"id": 3, "name": "wrapped"}, "success": true}"#,
    );
    let wrapped = client.get(3).await.expect("wrapped");
    assert_eq!(wrapped.name.as_deref(), Some("wrapped"));
}

#[tokio::test]
async fn list_shapes() {
    let server = FakeKnolyx::start().await;
    let client = server.client();
    let items = r#"[{"id": 1, "name": "a"}, {"id": "2", "name": "b", "extraField": {"x": 1}}]"#;
    let shapes = [
        items.to_owned(),
        format!(r#"{{"data": {items}}}"#),
        format!(r#"{{"content": {items}, "totalElements": 2, "number": 0}}"#),
        format!(r#"{{"items": {items}}}"#),
        format!(r#"{{"webhooks": {items}, "count": 2}}"#),
        format!(r#"{{"data": {{"content": {items}}}}}"#),
    ];
    for shape in &shapes {
        server.reply(200, shape.clone());
        let list = client
            .list()
            .await
            .unwrap_or_else(|e| panic!("{shape}: {e}"));
        let ids: Vec<String> = list
            .iter()
            .map(|w| w.id.as_ref().unwrap().to_string())
            .collect();
        assert_eq!(ids, ["1", "2"], "{shape}");
        assert_eq!(list[1].extra.get("extraField"), Some(&json!({"x": 1})));
    }

    for empty in ["", "[]", "null", r#"{"data": []}"#] {
        server.reply(200, empty);
        assert!(client.list().await.expect(empty).is_empty(), "{empty}");
    }
}

#[tokio::test]
async fn empty_bodies_are_success_for_delete_and_ping() {
    let server = FakeKnolyx::start().await;
    let client = server.client();
    for (status, body) in [(200, ""), (204, ""), (200, "OK"), (202, r#"{"ok": true}"#)] {
        server.reply(status, body);
        client
            .delete(1)
            .await
            .unwrap_or_else(|e| panic!("delete {status} {body:?}: {e}"));
        server.reply(status, body);
        client
            .ping(1)
            .await
            .unwrap_or_else(|e| panic!("ping {status} {body:?}: {e}"));
        server.reply(status, body);
        client
            .ping_all()
            .await
            .unwrap_or_else(|e| panic!("ping all {status} {body:?}: {e}"));
    }
}

#[tokio::test]
async fn create_tolerates_sparse_responses() {
    let server = FakeKnolyx::start().await;
    let client = server.client();
    let request = CreateWebhook::new("name", "https://hooks.example.com/k", "tok");

    server.reply(201, "");
    let empty = client.create(&request).await.expect("empty body");
    assert_eq!(empty.id, None);
    assert_eq!(empty.name.as_deref(), Some("name"));
    assert_eq!(empty.url.as_deref(), Some("https://hooks.example.com/k"));

    server.reply(200, "17");
    let bare_id = client.create(&request).await.expect("bare id");
    assert_eq!(bare_id.id, Some(WebhookId::from(17)));

    server.reply(200, r#"{"webhookId": "w-1", "status": "ACTIVE"}"#);
    let other_key = client.create(&request).await.expect("webhookId");
    assert_eq!(other_key.id, Some(WebhookId::from("w-1")));
    assert_eq!(other_key.extra.get("status"), Some(&json!("ACTIVE")));
}
