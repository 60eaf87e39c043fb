//! Where a webhook security token comes from (`--token`, `--token-file PATH`, stdin,
//! `KNOLYX_WEBHOOK_TOKEN`), and that a token the receiver would refuse is refused before
//! anything is sent, by `webhooks create` and `send` alike.

use std::path::PathBuf;

use axum::http::StatusCode;
use knolyx_webhook_core::{SecretToken, WebhookReceiver};
use knolyx_webhook_examples::axum_receiver;
use serde_json::json;

use crate::support::{Counting, Recorder, Run, json_response, loopback, run, run_with_stdin};

const API_KEY: &str = "token-input-api-key";
const RECEIVER_TOKEN: &str = "receiver-token-7c2e";

/// Tokens `SecretToken::new`, and so the receiver, refuses.
const REFUSED: [&str; 6] = [
    " leading-space",
    "trailing-space ",
    "naïve-token",
    "tab\tinside",
    "line\nbreak",
    "",
];

/// A file under the system's temp directory, removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str, contents: &[u8]) -> Self {
        let dir = std::env::temp_dir().join(format!("knolyx-cli-token-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join(name);
        std::fs::write(&path, contents).expect("write");
        Self(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().expect("a UTF-8 path")
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A fake Knolyx API that accepts every create.
async fn fake_api() -> Recorder {
    Recorder::start(|request| {
        json_response(
            StatusCode::OK,
            json!({"id": 9, "name": "n", "url": request.json()["url"]}),
        )
    })
    .await
}

fn api_env(api: &Recorder) -> [(&'static str, &str); 3] {
    [
        ("KNOLYX_API_URL", api.base_url.as_str()),
        ("KNOLYX_API_KEY", API_KEY),
        ("KNOLYX_PROJECT_ID", "1"),
    ]
}

/// `webhooks create --json` with `extra` arguments (and `stdin`).
async fn create(api: &Recorder, extra: &[&str], stdin: Option<&[u8]>) -> Run {
    let mut args = vec![
        "webhooks",
        "create",
        "--name",
        "n",
        "--url",
        "https://hooks.example.com/k",
        "--json",
    ];
    args.extend_from_slice(extra);
    run_with_stdin(&args, &api_env(api), stdin).await
}

/// The token of the last create the fake API received.
fn sent_token(api: &Recorder) -> String {
    let requests = api.requests();
    let last = requests.last().expect("a create was sent");
    last.json()["securityToken"]
        .as_str()
        .expect("a token")
        .to_owned()
}

/// Asserts a usage failure about the security token that printed nothing on stdout.
fn assert_refused(out: &Run, what: &str) {
    assert_eq!(out.code, 2, "{what}: {}", out.stderr);
    assert!(out.stdout.is_empty(), "{what}: {}", out.stdout);
    assert!(
        out.stderr.contains("security token"),
        "{what}: {}",
        out.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn create_refuses_a_token_the_receiver_would_refuse_before_sending() {
    let api = fake_api().await;
    for bad in REFUSED {
        assert!(
            SecretToken::new(bad).is_err(),
            "{bad:?} is refused by the receiver"
        );
        let out = create(&api, &["--token", bad], None).await;
        assert_refused(&out, bad);
        if !bad.trim().is_empty() {
            assert!(
                !out.all_output().contains(bad.trim()),
                "the token was echoed"
            );
        }
    }
    assert!(api.requests().is_empty(), "nothing was sent");

    // Not stricter than the receiver: spaces inside are fine.
    let inner = "inner space is-fine";
    assert!(SecretToken::new(inner).is_ok());
    let out = create(&api, &["--token", inner], None).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(sent_token(&api), inner);
}

#[tokio::test(flavor = "multi_thread")]
async fn create_reads_the_token_from_a_file_or_stdin() {
    let api = fake_api().await;

    let file = TempFile::new("create-ok", b"file-token-1\n");
    let out = create(&api, &["--token-file", file.path()], None).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(sent_token(&api), "file-token-1", "one newline stripped");
    assert!(
        !out.all_output().contains("file-token-1"),
        "a given token is not echoed"
    );
    let printed: serde_json::Value = serde_json::from_str(&out.stdout).expect("JSON");
    assert_eq!(printed["securityToken"], serde_json::Value::Null);

    let out = create(&api, &["--token-file", "-"], Some(b"stdin-token-2\n")).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(sent_token(&api), "stdin-token-2");

    let file = TempFile::new("create-no-newline", b"no-newline-3");
    let out = create(&api, &["--token-file", file.path()], None).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(sent_token(&api), "no-newline-3");
    let sent = api.requests().len();

    // Only one trailing newline is stripped; any other white space is refused, as the
    // receiver would refuse it.
    for (name, contents) in [
        ("two-newlines", &b"two-newlines\n\n"[..]),
        ("crlf", b"crlf-token\r\n"),
        ("padded", b" padded\n"),
        ("empty", b""),
        ("just-a-newline", b"\n"),
        ("not-utf8", b"caf\xe9\n"),
    ] {
        let file = TempFile::new(name, contents);
        let out = create(&api, &["--token-file", file.path()], None).await;
        assert_refused(&out, name);
    }
    let out = create(&api, &["--token-file", "-"], Some(b"stdin padded \n")).await;
    assert_refused(&out, "stdin");

    // A missing file is named; --token and --token-file are exclusive.
    let out = create(&api, &["--token-file", "/nonexistent/token"], None).await;
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("/nonexistent/token"), "{}", out.stderr);
    let file = TempFile::new("both", b"both-token\n");
    let out = create(&api, &["--token", "t", "--token-file", file.path()], None).await;
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("--token-file"), "{}", out.stderr);

    assert_eq!(api.requests().len(), sent, "nothing more was sent");
}

/// `send EVENT --url URL` with `extra` arguments, `env` and `stdin`.
async fn send(
    event: &str,
    url: &str,
    extra: &[&str],
    env: &[(&str, &str)],
    stdin: Option<&[u8]>,
) -> Run {
    let mut args = vec!["send", event, "--url", url];
    args.extend_from_slice(extra);
    run_with_stdin(&args, env, stdin).await
}

#[tokio::test(flavor = "multi_thread")]
async fn send_reads_the_token_from_a_file_or_stdin() {
    let handler = Counting::new();
    let receiver = WebhookReceiver::builder()
        .token(RECEIVER_TOKEN)
        .build()
        .expect("a receiver");
    let receiver = axum_receiver::spawn(receiver, handler.handler(), loopback())
        .await
        .expect("the receiver starts");
    let url = receiver.url();
    let line = format!("{RECEIVER_TOKEN}\n");
    let file = TempFile::new("send-ok", line.as_bytes());
    let from_file = ["--token-file", file.path()];

    let runs = [
        send("course-started", &url, &from_file, &[], None).await,
        send(
            "course-started",
            &url,
            &["--token-file", "-"],
            &[],
            Some(line.as_bytes()),
        )
        .await,
        // The file wins over the environment variable.
        send(
            "course-started",
            &url,
            &from_file,
            &[("KNOLYX_WEBHOOK_TOKEN", "not-the-receiver-token")],
            None,
        )
        .await,
    ];
    for out in &runs {
        assert_eq!(out.code, 0, "{}", out.stderr);
        assert!(
            out.stdout.contains("1 delivery: 1 accepted"),
            "{}",
            out.stdout
        );
        assert!(
            !out.all_output().contains(RECEIVER_TOKEN),
            "the token was printed"
        );
    }
    assert_eq!(handler.events().len(), 3);

    let out = send(
        "ping",
        &url,
        &["--token", "t", from_file[0], from_file[1]],
        &[],
        None,
    )
    .await;
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("--token-file"), "{}", out.stderr);
    // stdin can hold the token or the data, not both.
    let both = ["--token-file", "-", "--data-file", "-"];
    let out = send("x", &url, &both, &[], Some(b"{}")).await;
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("stdin"), "{}", out.stderr);
    assert_eq!(handler.events().len(), 3, "nothing more was delivered");
    receiver.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn send_refuses_a_token_the_receiver_would_refuse_before_sending() {
    let sink = Recorder::start(|_| json_response(StatusCode::OK, json!({}))).await;
    let url = format!("{}/hooks", sink.base_url);
    for bad in REFUSED {
        let out = send("ping", &url, &["--token", bad], &[], None).await;
        assert_refused(&out, bad);
        let out = send("ping", &url, &[], &[("KNOLYX_WEBHOOK_TOKEN", bad)], None).await;
        assert_refused(&out, bad);
        let file = TempFile::new("send-bad", format!("{bad}\n").as_bytes());
        let out = send("ping", &url, &["--token-file", file.path()], &[], None).await;
        assert_refused(&out, bad);
    }
    // No token at all: the three ways to give one are named.
    let out = send("ping", &url, &[], &[], None).await;
    assert_eq!(out.code, 2);
    for way in ["--token", "--token-file", "KNOLYX_WEBHOOK_TOKEN"] {
        assert!(out.stderr.contains(way), "{way}: {}", out.stderr);
    }
    assert!(sink.requests().is_empty(), "nothing was sent");
}

#[tokio::test]
async fn help_documents_the_token_file() {
    for args in [
        &["webhooks", "create", "--help"][..],
        &["send", "--help"][..],
    ] {
        let out = run(args, &[]).await;
        assert_eq!(out.code, 0);
        for needle in ["--token-file", "stdin", "newline"] {
            assert!(
                out.stdout.contains(needle),
                "{args:?} lacks {needle}: {}",
                out.stdout
            );
        }
    }
}
