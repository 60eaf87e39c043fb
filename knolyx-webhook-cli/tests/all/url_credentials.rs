//! The `user:password@` part of a URL is never printed: not by `send` (text, JSON, hints,
//! errors), not by the `webhooks` commands.

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::support::{Recorder, json_response, run};

const TOKEN: &str = "url-credentials-token";
const USER: &str = "hook-user";
const PASSWORD: &str = "url-pa55word";

/// `http://user:password@` followed by `rest` (e.g. `127.0.0.1:4000/hooks`).
fn with_credentials(rest: &str) -> String {
    format!("http://{USER}:{PASSWORD}@{rest}")
}

fn assert_no_credentials(output: &str) {
    assert!(
        !output.contains(PASSWORD),
        "the password was printed:\n{output}"
    );
    assert!(
        !output.contains(USER),
        "the user name was printed:\n{output}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn send_never_prints_the_credentials_of_the_url() {
    let sink = Recorder::start(|_| json_response(StatusCode::OK, json!({"ok": true}))).await;
    let host = sink.base_url.trim_start_matches("http://").to_owned();
    let url = with_credentials(&format!("{host}/hooks"));
    let redacted = format!("http://***@{host}/hooks");

    let out = run(&["send", "ping", "--url", &url, "--token", TOKEN], &[]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_no_credentials(&out.all_output());
    assert!(out.stdout.contains(&redacted), "{}", out.stdout);

    let out = run(
        &["send", "ping", "--url", &url, "--token", TOKEN, "--json"],
        &[],
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_no_credentials(&out.all_output());
    let report: Value = serde_json::from_str(&out.stdout).expect("JSON on stdout");
    assert_eq!(report["url"], redacted.as_str());

    // The credentials still reach the receiver, as HTTP basic auth.
    let requests = sink.requests();
    assert_eq!(requests.len(), 2);
    assert!(requests.iter().all(|r| r.header("authorization").is_some()));

    // The hint of a transport failure, and the error for a URL that does not parse.
    let dead = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr")
    };
    let out = run(
        &[
            "send",
            "ping",
            "--url",
            &with_credentials(&format!("{dead}/x")),
            "--token",
            TOKEN,
        ],
        &[],
    )
    .await;
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(out.stderr.contains("nothing listens at"), "{}", out.stderr);
    assert_no_credentials(&out.all_output());
    let out = run(
        &[
            "send",
            "ping",
            "--url",
            &with_credentials("[::1/x"),
            "--token",
            TOKEN,
        ],
        &[],
    )
    .await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("is not a URL"), "{}", out.stderr);
    assert_no_credentials(&out.all_output());
}

#[tokio::test(flavor = "multi_thread")]
async fn webhooks_commands_never_print_the_credentials_of_a_url() {
    let stored = "https://hook-user:url-pa55word@hooks.example.com/k";
    let api = Recorder::start(move |request| match request.method.as_str() {
        "POST" => json_response(
            StatusCode::OK,
            json!({"id": 1, "url": request.json()["url"]}),
        ),
        _ if request.path.ends_with("/webhook") => json_response(
            StatusCode::OK,
            json!([{"id": 1, "name": "n", "url": stored}]),
        ),
        _ => json_response(StatusCode::OK, json!({"id": 1, "name": "n", "url": stored})),
    })
    .await;
    let env = [
        ("KNOLYX_API_URL", api.base_url.as_str()),
        ("KNOLYX_API_KEY", "k"),
        ("KNOLYX_PROJECT_ID", "1"),
    ];
    let redacted = "https://***@hooks.example.com/k";
    let create = ["webhooks", "create", "--name", "n", "--url", stored];
    for args in [
        &create[..],
        &["webhooks", "list"],
        &["webhooks", "list", "--json"],
        &["webhooks", "get", "1"],
        &["webhooks", "get", "1", "--json"],
    ] {
        let out = run(args, &env).await;
        assert_eq!(out.code, 0, "{args:?}: {}", out.stderr);
        assert_no_credentials(&out.all_output());
        assert!(out.stdout.contains(redacted), "{args:?}: {}", out.stdout);
    }
    // What is sent to the API is the URL as given.
    assert_eq!(api.requests()[0].json()["url"], stored);
}
