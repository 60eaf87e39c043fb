//! The CLI's messages as a newcomer meets them, against real sockets on 127.0.0.1: missing
//! settings name their flag and variable, `--help` never shows an unset variable as empty,
//! `send` refuses what the receiver would refuse before sending, and each transport
//! failure gets the hint that fits it.

use axum::http::StatusCode;
use knolyx_webhook_core::WebhookReceiver;
use knolyx_webhook_examples::axum_receiver;
use serde_json::Value;
use tokio::net::TcpListener;

use crate::support::{Counting, Recorder, empty_response, loopback, run};

const TOKEN: &str = "messages-token-51c2";

async fn send(args: &[&str]) -> crate::support::Run {
    let mut all = vec!["send"];
    all.extend_from_slice(args);
    run(&all, &[("KNOLYX_WEBHOOK_TOKEN", TOKEN)]).await
}

#[tokio::test]
async fn missing_api_settings_name_the_flag_and_the_variable() {
    let out = run(&["webhooks", "list"], &[]).await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    for named in [
        "--api-url or KNOLYX_API_URL",
        "--api-key or KNOLYX_API_KEY",
        "--project-id or KNOLYX_PROJECT_ID",
    ] {
        assert!(out.stderr.contains(named), "{named}: {}", out.stderr);
    }
    // Only what is missing.
    let out = run(
        &["webhooks", "list", "--api-key", "k"],
        &[("KNOLYX_API_URL", "http://127.0.0.1:9")],
    )
    .await;
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("--project-id or KNOLYX_PROJECT_ID"));
    assert!(!out.stderr.contains("KNOLYX_API_URL"), "{}", out.stderr);
    let out = run(&["sandbox", "trigger", "ping"], &[]).await;
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("--api-url or KNOLYX_API_URL"));
}

#[tokio::test]
async fn help_shows_the_variables_never_their_values_or_an_empty_one() {
    for env in [
        &[][..],
        &[
            ("KNOLYX_API_URL", "http://set-url.example"),
            ("KNOLYX_PROJECT_ID", "4242"),
        ][..],
    ] {
        for command in [
            &["webhooks", "list", "--help"][..],
            &["sandbox", "trigger", "--help"],
        ] {
            let out = run(command, env).await;
            assert_eq!(out.code, 0);
            for name in ["KNOLYX_API_URL", "KNOLYX_API_KEY", "KNOLYX_PROJECT_ID"] {
                assert!(
                    out.stdout.contains(&format!("[env: {name}]")),
                    "{command:?} {name}: {}",
                    out.stdout
                );
            }
            assert!(!out.stdout.contains("=]"), "{}", out.stdout);
            assert!(!out.stdout.contains("set-url.example") && !out.stdout.contains("4242"));
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn ids_the_receiver_would_refuse_are_refused_before_sending() {
    let sink = Recorder::start(|_| empty_response(StatusCode::OK)).await;
    let url = format!("{}/webhooks/knolyx", sink.base_url);
    let long = "i".repeat(256);
    for id in ["", long.as_str()] {
        let out = send(&["ping", "--url", &url, "--id", id]).await;
        assert_eq!(out.code, 2, "{id:?}: {}", out.stderr);
        assert!(out.stderr.contains("--id: "), "{}", out.stderr);
        assert!(out.stderr.contains("nothing was sent"), "{}", out.stderr);
    }
    assert!(sink.requests().is_empty(), "nothing reached the server");
    let exactly = "i".repeat(255);
    let out = send(&["ping", "--url", &url, "--id", &exactly]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(sink.only_request().json()["id"], exactly.as_str());
}

#[tokio::test(flavor = "multi_thread")]
async fn custom_type_names_are_normalised_like_known_ones() {
    let sink = Recorder::start(|_| empty_response(StatusCode::OK)).await;
    let url = format!("{}/webhooks/knolyx", sink.base_url);
    let dir = std::env::temp_dir().join(format!("knolyx-cli-messages-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let data = dir.join("data.json");
    std::fs::write(&data, r#"{"certificate":{"id":7}}"#).unwrap();
    let out = send(&[
        "certificate-issued",
        "--data-file",
        data.to_str().unwrap(),
        "--url",
        &url,
    ])
    .await;
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains("Sending CERTIFICATE_ISSUED "),
        "{}",
        out.stdout
    );
    assert_eq!(sink.only_request().json()["type"], "CERTIFICATE_ISSUED");
}

/// A listener that accepts every connection and never answers (a stuck receiver).
async fn silent_server() -> (String, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind(loopback()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    (addr.to_string(), task)
}

#[tokio::test(flavor = "multi_thread")]
async fn each_transport_failure_gets_its_own_hint() {
    // A server that takes the connection and never answers.
    let (silent, task) = silent_server().await;
    let out = send(&[
        "ping",
        "--url",
        &format!("http://{silent}/webhooks/knolyx"),
        "--timeout",
        "1",
    ])
    .await;
    task.abort();
    assert_eq!(out.code, 3);
    assert!(
        out.stderr.contains(&format!(
            "hint: no response within 1s (--timeout): something at {silent}"
        )),
        "{}",
        out.stderr
    );

    // https:// to a plain-HTTP receiver: the TLS handshake reads an HTTP response.
    let receiver = WebhookReceiver::builder().token(TOKEN).build().unwrap();
    let running = axum_receiver::spawn(receiver, Counting::new().handler(), loopback())
        .await
        .unwrap();
    let plain = running.url();
    let out = send(&["ping", "--url", &plain.replacen("http://", "https://", 1)]).await;
    assert_eq!(out.code, 3);
    assert!(
        out.stderr.contains("answered in plain HTTP, not TLS")
            && out.stderr.contains(&format!("--url {plain}")),
        "{}",
        out.stderr
    );

    // A 404: the route is suggested.
    let elsewhere = plain.replace("/webhooks/knolyx", "/hooks");
    let out = send(&["ping", "--url", &elsewhere]).await;
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("404: nothing is served at /hooks")
            && out.stderr.contains(&format!("(--url {plain})")),
        "{}",
        out.stderr
    );
    running.stop().await;

    // A name that cannot resolve. A label over 63 bytes fails in the local resolver
    // (nothing is sent to a name server), the way an unknown host fails.
    let host = format!("{}.invalid", "a".repeat(64));
    let out = send(&["ping", "--url", &format!("http://{host}:9/webhooks/knolyx")]).await;
    assert_eq!(out.code, 3);
    assert!(
        out.stderr
            .contains(&format!("the host `{host}` could not be resolved (DNS)")),
        "{}",
        out.stderr
    );
}

#[tokio::test]
async fn a_url_without_a_scheme_is_told_to_add_one() {
    for given in [
        "127.0.0.1:3000/webhooks/knolyx",
        "localhost:3000/webhooks/knolyx",
    ] {
        let out = send(&["ping", "--url", given]).await;
        assert_eq!(out.code, 2, "{given}");
        assert!(
            out.stderr
                .contains(&format!("hint: add the scheme: --url http://{given}")),
            "{given}: {}",
            out.stderr
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn json_durations_share_one_format_and_text_shows_no_zero_counts() {
    let sink = Recorder::start(|_| empty_response(StatusCode::OK)).await;
    let url = format!("{}/webhooks/knolyx", sink.base_url);
    let out = send(&["course-started", "--url", &url, "--times", "3", "--json"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    let mut durations = vec![report["ms"].as_f64().unwrap()];
    for delivery in report["deliveries"].as_array().unwrap() {
        durations.push(delivery["ms"].as_f64().unwrap());
    }
    for ms in durations {
        assert_eq!((ms * 10.0).round() / 10.0, ms, "to a tenth: {}", out.stdout);
    }
    let out = send(&["course-started", "--url", &url]).await;
    let summary = out.stdout.lines().last().unwrap();
    assert!(
        summary.starts_with("1 delivery: 1 accepted, in "),
        "{summary}"
    );
    for zero in [" 0 ", "(0 ", "duplicate"] {
        assert!(!summary.contains(zero), "{summary}");
    }
}
