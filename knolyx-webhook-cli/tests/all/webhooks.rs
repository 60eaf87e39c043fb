//! `webhooks …` against a fake Knolyx Webhook API that follows the vendor guide.

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use crate::support::{Recorded, Recorder, empty_response, json_response, run};

const API_KEY: &str = "test-api-key-Zx81";
const PROJECT: &str = "1234";
const COLLECTION: &str = "/public/api/v1/webhook";

/// Plays the documented API: create, get all, get one, delete, ping all, ping one.
fn fake_api(request: &Recorded) -> Response {
    if request.header("x-api-key") != Some(API_KEY) {
        return json_response(
            StatusCode::UNAUTHORIZED,
            json!({"message": "invalid api key"}),
        );
    }
    let one = json!({
        "id": 42,
        "name": "course events",
        "url": "https://hooks.example.com/webhooks/knolyx",
        "active": true,
        "securityToken": "stored-token-never-shown",
    });
    match (request.method.as_str(), request.path.as_str()) {
        ("POST", COLLECTION) => {
            let body = request.json();
            json_response(
                StatusCode::OK,
                json!({"id": 42, "name": body["name"], "url": body["url"], "active": true}),
            )
        }
        ("GET", COLLECTION) => json_response(
            StatusCode::OK,
            json!([one, {"id": "7b", "name": "orders", "url": "https://orders.example.com/k"}]),
        ),
        ("GET", "/public/api/v1/webhook/42") => json_response(StatusCode::OK, one),
        ("DELETE", "/public/api/v1/webhook/42") => empty_response(StatusCode::NO_CONTENT),
        ("POST", "/public/api/v1/webhook/ping" | "/public/api/v1/webhook/42/ping") => {
            empty_response(StatusCode::OK)
        }
        _ => json_response(
            StatusCode::NOT_FOUND,
            json!({"message": "Webhook not found"}),
        ),
    }
}

/// The API settings as environment variables.
fn env(api: &Recorder) -> [(&'static str, String); 3] {
    [
        ("KNOLYX_API_URL", api.base_url.clone()),
        ("KNOLYX_API_KEY", API_KEY.to_owned()),
        ("KNOLYX_PROJECT_ID", PROJECT.to_owned()),
    ]
}

async fn run_env(api: &Recorder, args: &[&str]) -> crate::support::Run {
    let env = env(api);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let out = run(args, &env).await;
    assert!(
        !out.all_output().contains(API_KEY),
        "the API key was printed"
    );
    assert!(
        !out.all_output().contains("stored-token-never-shown"),
        "a stored token was printed"
    );
    out
}

/// Checks the headers every API call carries.
fn assert_api_headers(request: &Recorded) {
    assert_eq!(request.header("x-api-key"), Some(API_KEY));
    assert_eq!(request.header("x-project-id"), Some(PROJECT));
}

fn is_generated_token(token: &str) -> bool {
    token.len() == 43
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[tokio::test(flavor = "multi_thread")]
async fn create_without_a_token_generates_sends_and_prints_it() {
    let api = Recorder::start(fake_api).await;
    let out = run_env(
        &api,
        &[
            "webhooks",
            "create",
            "--name",
            "course events",
            "--url",
            "https://hooks.example.com/webhooks/knolyx",
        ],
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);

    let request = api.only_request();
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, COLLECTION);
    assert_api_headers(&request);
    assert!(
        request
            .header("content-type")
            .is_some_and(|v| v.starts_with("application/json"))
    );
    let body = request.json();
    let object = body.as_object().expect("an object");
    assert_eq!(object.len(), 3, "{body}");
    assert_eq!(body["name"], "course events");
    assert_eq!(body["url"], "https://hooks.example.com/webhooks/knolyx");
    let token = body["securityToken"].as_str().expect("a token");
    assert!(is_generated_token(token), "{token}");

    assert!(out.stdout.contains("Created webhook 42."), "{}", out.stdout);
    assert!(
        out.stdout
            .contains("https://hooks.example.com/webhooks/knolyx")
    );
    let printed: Vec<&str> = out
        .stdout
        .lines()
        .map(str::trim)
        .filter(|line| is_generated_token(line))
        .collect();
    assert_eq!(printed, [token], "the token is printed alone on its line");
    assert!(out.stdout.contains("KNOLYX_WEBHOOK_TOKEN"));
    assert!(out.stdout.contains("Keep this security token secret"));
}

#[tokio::test(flavor = "multi_thread")]
async fn create_with_flags_a_given_token_and_json() {
    let api = Recorder::start(fake_api).await;
    // Flags instead of environment variables.
    let out = run(
        &[
            "webhooks",
            "create",
            "--api-url",
            &api.base_url,
            "--api-key",
            API_KEY,
            "--project-id",
            PROJECT,
            "--name",
            "orders",
            "--url",
            "https://orders.example.com/k",
            "--token",
            "my-own-token-123",
            "--json",
        ],
        &[],
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(!out.all_output().contains(API_KEY));
    assert!(
        !out.all_output().contains("my-own-token-123"),
        "a given token is not echoed"
    );

    let request = api.only_request();
    assert_api_headers(&request);
    assert_eq!(request.json()["securityToken"], "my-own-token-123");

    let printed: Value = serde_json::from_str(&out.stdout).expect("JSON on stdout");
    assert_eq!(
        printed,
        json!({
            "webhook": {"id": "42", "name": "orders", "url": "https://orders.example.com/k", "active": true},
            "securityToken": null,
        })
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn create_json_prints_the_generated_token_for_scripts() {
    let api = Recorder::start(fake_api).await;
    let out = run_env(
        &api,
        &[
            "webhooks",
            "create",
            "--name",
            "n",
            "--url",
            "https://h.example.com/x",
            "--json",
        ],
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let printed: Value = serde_json::from_str(&out.stdout).expect("only JSON on stdout");
    let sent = api.only_request().json();
    assert_eq!(printed["securityToken"], sent["securityToken"]);
    assert!(is_generated_token(
        printed["securityToken"].as_str().unwrap()
    ));
    assert!(
        out.stderr.contains("KNOLYX_WEBHOOK_TOKEN"),
        "the note goes to stderr"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn create_refuses_urls_knolyx_would_refuse_and_sends_nothing() {
    let api = Recorder::start(fake_api).await;
    for (url, reason) in [
        (
            "http://hooks.example.com/webhooks/knolyx",
            "only accepts https",
        ),
        ("https://localhost:3000/webhooks/knolyx", "localhost"),
        ("https://127.0.0.1/webhooks/knolyx", "loopback"),
        ("not a url", "not a URL"),
    ] {
        let out = run_env(&api, &["webhooks", "create", "--name", "n", "--url", url]).await;
        assert_eq!(out.code, 2, "{url}");
        assert!(out.stderr.contains("invalid webhook URL"), "{}", out.stderr);
        assert!(out.stderr.contains(reason), "{url}: {}", out.stderr);
        assert!(
            out.stderr.contains("knolyx-webhook send"),
            "the hint points to send"
        );
        assert!(out.stdout.is_empty());
    }
    assert!(api.requests().is_empty(), "nothing was sent");
}

#[tokio::test(flavor = "multi_thread")]
async fn list_prints_a_table_or_json() {
    let api = Recorder::start(fake_api).await;
    let out = run_env(&api, &["webhooks", "list"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        out.stdout,
        "ID  NAME           URL\n\
         42  course events  https://hooks.example.com/webhooks/knolyx\n\
         7b  orders         https://orders.example.com/k\n"
    );

    let out = run_env(&api, &["webhooks", "list", "--json"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let printed: Value = serde_json::from_str(&out.stdout).expect("JSON");
    assert_eq!(
        printed,
        json!([
            {"id": "42", "name": "course events", "url": "https://hooks.example.com/webhooks/knolyx", "active": true},
            {"id": "7b", "name": "orders", "url": "https://orders.example.com/k"},
        ])
    );

    let requests = api.requests();
    assert_eq!(requests.len(), 2);
    for request in &requests {
        assert_eq!(
            (request.method.as_str(), request.path.as_str()),
            ("GET", COLLECTION)
        );
        assert_api_headers(request);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn get_prints_one_webhook_and_reports_a_missing_one() {
    let api = Recorder::start(fake_api).await;
    let out = run_env(&api, &["webhooks", "get", "42"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        out.stdout,
        "id:      42\n\
         name:    course events\n\
         url:     https://hooks.example.com/webhooks/knolyx\n\
         active:  true\n"
    );

    let out = run_env(&api, &["webhooks", "get", "42", "--json"]).await;
    let printed: Value = serde_json::from_str(&out.stdout).expect("JSON");
    assert_eq!(printed["id"], "42");
    assert_eq!(printed["active"], true);

    let out = run_env(&api, &["webhooks", "get", "99"]).await;
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("404"), "{}", out.stderr);
    assert!(out.stderr.contains("Webhook not found"), "{}", out.stderr);
    assert!(out.stdout.is_empty());

    let paths: Vec<_> = api
        .requests()
        .iter()
        .map(|r| {
            assert_api_headers(r);
            format!("{} {}", r.method, r.path)
        })
        .collect();
    assert_eq!(
        paths,
        [
            "GET /public/api/v1/webhook/42",
            "GET /public/api/v1/webhook/42",
            "GET /public/api/v1/webhook/99"
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn delete_and_ping() {
    let api = Recorder::start(fake_api).await;

    let out = run_env(&api, &["webhooks", "delete", "42"]).await;
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, "Deleted webhook 42.\n")
    );
    let out = run_env(&api, &["webhooks", "delete", "42", "--json"]).await;
    assert_eq!(out.stdout.trim(), r#"{"deleted":"42"}"#);

    let out = run_env(&api, &["webhooks", "ping"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("every webhook"), "{}", out.stdout);
    let out = run_env(&api, &["webhooks", "ping", "--json"]).await;
    assert_eq!(out.stdout.trim(), r#"{"pinged":"all"}"#);

    let out = run_env(&api, &["webhooks", "ping", "42"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("webhook 42"), "{}", out.stdout);
    let out = run_env(&api, &["webhooks", "ping", "42", "--json"]).await;
    assert_eq!(out.stdout.trim(), r#"{"pinged":"42"}"#);

    let calls: Vec<_> = api
        .requests()
        .iter()
        .map(|r| {
            assert_api_headers(r);
            assert!(r.body.is_empty(), "{} {} has a body", r.method, r.path);
            format!("{} {}", r.method, r.path)
        })
        .collect();
    assert_eq!(
        calls,
        [
            "DELETE /public/api/v1/webhook/42",
            "DELETE /public/api/v1/webhook/42",
            "POST /public/api/v1/webhook/ping",
            "POST /public/api/v1/webhook/ping",
            "POST /public/api/v1/webhook/42/ping",
            "POST /public/api/v1/webhook/42/ping",
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_api_key_exits_1_without_printing_it() {
    let api = Recorder::start(fake_api).await;
    let out = run(
        &["webhooks", "list"],
        &[
            ("KNOLYX_API_URL", &api.base_url),
            ("KNOLYX_API_KEY", "wrong-key-Qq7"),
            ("KNOLYX_PROJECT_ID", PROJECT),
        ],
    )
    .await;
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("401"), "{}", out.stderr);
    assert!(
        out.stderr.contains("KNOLYX_API_KEY"),
        "the hint names the setting"
    );
    assert!(!out.all_output().contains("wrong-key-Qq7"));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_api_is_a_transport_failure() {
    let dead = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr")
    };
    let url = format!("http://{dead}");
    let out = run(
        &["webhooks", "ping"],
        &[
            ("KNOLYX_API_URL", &url),
            ("KNOLYX_API_KEY", API_KEY),
            ("KNOLYX_PROJECT_ID", PROJECT),
        ],
    )
    .await;
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(out.stderr.contains("could not connect"), "{}", out.stderr);
    assert!(!out.all_output().contains(API_KEY));
}
