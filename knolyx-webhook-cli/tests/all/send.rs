//! `send` against the example axum receiver (`knolyx_webhook_examples::axum_receiver`),
//! started in-process on 127.0.0.1 with a counting handler.

use axum::http::StatusCode;
use knolyx_webhook_core::testing::TestEvent;
use knolyx_webhook_core::{Event, WebhookReceiver};
use knolyx_webhook_examples::{RunningReceiver, axum_receiver};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::support::{Counting, GUARD, Recorder, Run, bin, json_response, loopback, run};

const TOKEN: &str = "receiver-token-3b9f";

/// Starts a receiver with the default pipeline and `handler`.
async fn start(handler: &Counting) -> RunningReceiver {
    let receiver = WebhookReceiver::builder()
        .token(TOKEN)
        .build()
        .expect("a receiver");
    axum_receiver::spawn(receiver, handler.handler(), loopback())
        .await
        .expect("the receiver starts")
}

async fn send(url: &str, args: &[&str]) -> Run {
    let mut all = vec!["send"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--url", url]);
    let out = run(&all, &[("KNOLYX_WEBHOOK_TOKEN", TOKEN)]).await;
    assert!(!out.all_output().contains(TOKEN), "the token was printed");
    out
}

/// The per-delivery lines of text output.
fn delivery_lines(stdout: &str) -> Vec<&str> {
    stdout.lines().filter(|l| l.starts_with('[')).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_event_type_is_delivered_and_handled() {
    let handler = Counting::new();
    let receiver = start(&handler).await;
    let url = receiver.url();
    for (i, name) in TestEvent::known_types().into_iter().enumerate() {
        // Both spellings are accepted.
        let spelling = if i % 2 == 0 {
            name.to_owned()
        } else {
            name.to_ascii_lowercase().replace('_', "-")
        };
        let out = send(&url, &[&spelling]).await;
        assert_eq!(out.code, 0, "{name}: {}", out.stderr);
        let lines = delivery_lines(&out.stdout);
        assert_eq!(lines.len(), 1, "{}", out.stdout);
        assert!(lines[0].contains("accepted"), "{}", lines[0]);
        assert!(lines[0].contains("200 OK"), "{}", lines[0]);
        assert!(lines[0].contains("duplicate: no"), "{}", lines[0]);
        assert!(lines[0].contains(" ms"), "{}", lines[0]);
        assert!(out.stdout.contains(name), "the header names the type");
        assert!(
            out.stdout.contains("1 delivery: 1 accepted"),
            "{}",
            out.stdout
        );
    }
    // The pipeline answers PING itself by default; every other type reached the handler,
    // parsed as its own variant.
    let handled: Vec<String> = handler
        .events()
        .iter()
        .map(|e| e.event_type().to_owned())
        .collect();
    assert_eq!(
        handled,
        [
            "COURSE_COMPLETED",
            "COURSE_STARTED",
            "COURSE_PAYMENT_RECEIVED",
            "BUNDLE_PAYMENT_RECEIVED"
        ]
    );
    assert!(handler.events().iter().all(|e| e.event().is_known()));
    receiver.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reused_id_sent_three_times_runs_the_handler_once() {
    let handler = Counting::new();
    let receiver = start(&handler).await;
    let out = send(
        &receiver.url(),
        &[
            "course-completed",
            "--id",
            "retransmitted-1",
            "--times",
            "3",
        ],
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let lines = delivery_lines(&out.stdout);
    assert_eq!(lines.len(), 3, "{}", out.stdout);
    assert!(lines[0].starts_with("[1/3]") && lines[0].contains("duplicate: no"));
    for line in &lines[1..] {
        assert!(line.contains("200 OK"), "{line}");
        assert!(line.contains("duplicate: yes"), "{line}");
    }
    assert!(
        out.stdout
            .contains("3 deliveries: 3 accepted (2 duplicates), in "),
        "{}",
        out.stdout
    );
    let events = handler.events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].id(), "retransmitted-1");
    receiver.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn json_report_for_scripts() {
    let handler = Counting::new();
    let receiver = start(&handler).await;
    let out = send(
        &receiver.url(),
        &[
            "BUNDLE_PAYMENT_RECEIVED",
            "--id",
            "j-1",
            "--times",
            "2",
            "--json",
        ],
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let report: Value = serde_json::from_str(&out.stdout).expect("only JSON on stdout");
    assert_eq!(report["id"], "j-1");
    assert_eq!(report["type"], "BUNDLE_PAYMENT_RECEIVED");
    assert_eq!(report["exitCode"], 0);
    assert_eq!(
        report["summary"],
        serde_json::json!({"deliveries": 2, "accepted": 2, "duplicates": 1, "rejected": 0, "failed": 0})
    );
    let deliveries = report["deliveries"].as_array().expect("deliveries");
    assert_eq!(deliveries[0]["status"], 200);
    assert_eq!(deliveries[0]["duplicate"], false);
    assert_eq!(deliveries[1]["duplicate"], true);
    assert!(deliveries.iter().all(|d| d["ms"].is_number()));
    receiver.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ten_concurrent_copies_run_the_handler_once() {
    let handler = Counting::new();
    let receiver = start(&handler).await;
    let out = send(
        &receiver.url(),
        &["course-started", "--id", "burst-1", "--concurrency", "10"],
    )
    .await;
    let lines = delivery_lines(&out.stdout);
    assert_eq!(lines.len(), 10, "{}", out.stdout);
    let first = lines
        .iter()
        .filter(|l| l.contains("duplicate: no") && l.contains("200 OK"))
        .count();
    let duplicates = lines
        .iter()
        .filter(|l| l.contains("duplicate: yes"))
        .count();
    let in_flight = lines.iter().filter(|l| l.contains("503")).count();
    assert_eq!(first, 1, "{}", out.stdout);
    assert_eq!(first + duplicates + in_flight, 10, "{}", out.stdout);
    assert_eq!(
        out.code,
        if in_flight > 0 { 1 } else { 0 },
        "{}",
        out.stderr
    );
    assert_eq!(handler.events().len(), 1);
    receiver.stop().await;
}

/// While the handler of the first delivery is held, every other copy is answered 503 (the
/// id is in progress); the test reads the binary's output as it comes and only then lets
/// the handler finish.
#[tokio::test(flavor = "multi_thread")]
async fn copies_arriving_while_the_first_runs_get_503_and_exit_1() {
    let handler = Counting::gated();
    let receiver = start(&handler).await;
    let url = receiver.url();
    let mut child = bin()
        .args([
            "send",
            "course-completed",
            "--id",
            "held-1",
            "--concurrency",
            "10",
        ])
        .args(["--url", &url, "--token", TOKEN])
        .spawn()
        .expect("spawn");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut lines = Vec::new();
    let result = tokio::time::timeout(GUARD, async {
        while let Some(line) = stdout.next_line().await.expect("read") {
            let done = line.starts_with('[');
            lines.push(line);
            if done && lines.iter().filter(|l| l.starts_with('[')).count() == 9 {
                // Nine answered while the handler is still held: let it finish.
                handler.open();
            }
        }
        child.wait().await.expect("wait")
    })
    .await;
    let status = result.unwrap_or_else(|_| panic!("hung; output so far: {lines:#?}"));
    let deliveries: Vec<&String> = lines.iter().filter(|l| l.starts_with('[')).collect();
    assert_eq!(deliveries.len(), 10, "{lines:#?}");
    for line in &deliveries[..9] {
        assert!(
            line.contains("rejected") && line.contains("503 Service Unavailable"),
            "{line}"
        );
    }
    assert!(deliveries[9].contains("accepted") && deliveries[9].contains("200 OK"));
    assert!(
        lines
            .last()
            .unwrap()
            .starts_with("10 deliveries: 1 accepted, 9 rejected, in "),
        "{lines:#?}"
    );
    assert_eq!(status.code(), Some(1));
    assert_eq!(handler.events().len(), 1);

    // The first delivery completed: a retransmission now is a duplicate.
    let out = send(&url, &["course-completed", "--id", "held-1"]).await;
    assert_eq!(out.code, 0);
    assert!(out.stdout.contains("duplicate: yes"), "{}", out.stdout);
    assert_eq!(handler.events().len(), 1);
    receiver.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_token_is_reported_401_and_exits_1() {
    let handler = Counting::new();
    let receiver = start(&handler).await;
    let out = run(
        &[
            "send",
            "course-completed",
            "--url",
            &receiver.url(),
            "--token",
            "not-the-token",
        ],
        &[],
    )
    .await;
    assert_eq!(out.code, 1);
    let lines = delivery_lines(&out.stdout);
    assert_eq!(lines.len(), 1);
    assert!(
        lines[0].contains("rejected") && lines[0].contains("401 Unauthorized"),
        "{}",
        lines[0]
    );
    assert!(
        out.stdout.contains("1 delivery: 1 rejected, in "),
        "no zero counts: {}",
        out.stdout
    );
    assert!(out.stderr.contains("refused the token"), "{}", out.stderr);
    assert!(!out.all_output().contains("not-the-token"));
    assert!(handler.events().is_empty());
    receiver.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_url_is_a_transport_failure() {
    let dead = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr")
    };
    let url = format!("http://{dead}/webhooks/knolyx");
    let out = send(&url, &["ping", "--times", "2"]).await;
    assert_eq!(out.code, 3, "{}", out.stderr);
    let lines = delivery_lines(&out.stdout);
    assert_eq!(lines.len(), 2);
    assert!(
        lines.iter().all(|l| l.contains("could not connect")),
        "{lines:?}"
    );
    assert!(out.stdout.contains("2 deliveries: 2 failed, in "));
    assert!(
        out.stderr.contains(&format!(
            "hint: nothing listens at {dead}: is the receiver running"
        )),
        "{}",
        out.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn custom_data_for_an_unknown_type_is_wrapped_in_the_envelope() {
    let handler = Counting::new();
    let receiver = start(&handler).await;
    let dir = std::env::temp_dir().join(format!("knolyx-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("certificate.json");
    std::fs::write(&file, r#"{"user": {"id": 5}, "certificate": {"id": 9}}"#).expect("write");

    let out = send(
        &receiver.url(),
        &[
            "CERTIFICATE_ISSUED",
            "--id",
            "cert-1",
            "--data-file",
            file.to_str().unwrap(),
        ],
    )
    .await;
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let events = handler.events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].id(), "cert-1");
    assert_eq!(events[0].event_type(), "CERTIFICATE_ISSUED");
    let Event::Unknown(unknown) = events[0].event() else {
        panic!("expected an unknown event: {:?}", events[0]);
    };
    let data: Value = serde_json::from_str(unknown.data_json()).expect("data");
    assert_eq!(data["certificate"]["id"], 9);
    receiver.stop().await;
}

/// What goes on the wire, exactly: PUT, JSON, the token header, the envelope.
#[tokio::test(flavor = "multi_thread")]
async fn delivers_the_way_knolyx_does() {
    let sink =
        Recorder::start(|_| json_response(StatusCode::ACCEPTED, serde_json::json!({"ok": true})))
            .await;
    let url = format!("{}/hooks/knolyx", sink.base_url);
    let out = send(
        &url,
        &["course-payment-received", "--id", "wire-1", "--show-body"],
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout
            .contains(r#"{"id":"wire-1","type":"COURSE_PAYMENT_RECEIVED""#),
        "--show-body"
    );
    assert!(
        out.stdout.contains(r#"202 Accepted  duplicate: no"#),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains(r#"body: {"ok":true}"#),
        "{}",
        out.stdout
    );

    let request = sink.only_request();
    assert_eq!(request.method, "PUT");
    assert_eq!(request.path, "/hooks/knolyx");
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(request.header("x-webhook-security-token"), Some(TOKEN));
    let body = request.json();
    assert_eq!(body["id"], "wire-1");
    assert_eq!(body["type"], "COURSE_PAYMENT_RECEIVED");
    assert!(body["data"]["user"]["id"].is_i64());
    assert!(body["data"]["course"]["id"].is_i64());
    assert!(body["data"]["user"]["email"].is_string());
    // The body parses back as the event it claims to be.
    let event =
        knolyx_webhook_core::WebhookEvent::from_slice(request.body.as_bytes()).expect("parses");
    assert!(matches!(event.event(), Event::CoursePaymentReceived(_)));
}
