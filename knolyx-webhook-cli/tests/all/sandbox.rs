//! `knolyx-webhook sandbox` over real HTTP: the real binary serves the sandbox (and runs
//! `webhooks` and `sandbox trigger` against it); the receivers are the example axum
//! receiver (`knolyx_webhook_examples::axum_receiver`) on loopback, with the default
//! pipeline (PINGs forwarded to the handler, so they are counted) and a handler that
//! records every call and fails the first N attempts of each id on purpose. The client
//! crate is tested against the in-process sandbox here too: the client cannot
//! dev-depend on this crate, which depends on it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use knolyx_webhook_cli::sandbox::Sandbox;
use knolyx_webhook_client::{CreateWebhook, Error, KnolyxClient};
use knolyx_webhook_core::testing::TestEvent;
use knolyx_webhook_core::{PingHandling, WebhookEvent, WebhookReceiver};
use knolyx_webhook_examples::{EventHandler, HandlerError, RunningReceiver, axum_receiver};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Child;

use crate::support::{GUARD, Run, bin, loopback, run};

const API_KEY: &str = "sandbox-key-5c1e";

/// A receiver's handler: records every call, fails the first `fail_first` of each id.
#[derive(Clone, Default)]
struct Flaky {
    fail_first: u32,
    calls: Arc<Mutex<HashMap<String, u32>>>,
    handled: Arc<Mutex<Vec<WebhookEvent>>>,
}

impl Flaky {
    fn failing_first(fail_first: u32) -> Self {
        Self {
            fail_first,
            ..Self::default()
        }
    }

    fn handler(&self) -> EventHandler {
        let this = self.clone();
        Arc::new(move |event: WebhookEvent| {
            let this = this.clone();
            Box::pin(async move {
                let call = {
                    let mut calls = this.calls.lock().expect("lock");
                    let n = calls.entry(event.id().to_owned()).or_insert(0);
                    *n += 1;
                    *n
                };
                if call <= this.fail_first {
                    return Err(HandlerError(format!("failing call {call} on purpose")));
                }
                this.handled.lock().expect("lock").push(event);
                Ok(())
            })
        })
    }

    /// `(type, id)` of every event handled (2xx), in order.
    fn handled(&self) -> Vec<(String, String)> {
        self.handled
            .lock()
            .expect("lock")
            .iter()
            .map(|e| (e.event_type().to_owned(), e.id().to_owned()))
            .collect()
    }

    fn calls(&self, id: &str) -> u32 {
        self.calls
            .lock()
            .expect("lock")
            .get(id)
            .copied()
            .unwrap_or(0)
    }
}

/// A receiver accepting `token`, forwarding PINGs to `handler`.
async fn receiver(token: &str, handler: &Flaky) -> RunningReceiver {
    let receiver = WebhookReceiver::builder()
        .token(token)
        .ping(PingHandling::Forward)
        .build()
        .expect("a receiver");
    axum_receiver::spawn(receiver, handler.handler(), loopback())
        .await
        .expect("the receiver starts")
}

/// The `knolyx-webhook sandbox` process: its URL and what it printed on stdout.
struct SandboxProcess {
    child: Child,
    url: String,
    stdout: Arc<Mutex<Vec<String>>>,
}

impl SandboxProcess {
    /// Starts `knolyx-webhook sandbox --port 0 ARGS` and waits for its "listening on" line.
    async fn start(args: &[&str]) -> Self {
        let mut command = bin();
        command.args(["sandbox", "--port", "0"]).args(args);
        let mut child = command.spawn().expect("the sandbox runs");
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let mut out = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let lines = Arc::clone(&stdout);
        tokio::spawn(async move {
            while let Ok(Some(line)) = out.next_line().await {
                eprintln!("sandbox stdout: {line}");
                lines.lock().expect("lock").push(line);
            }
        });
        let mut err = BufReader::new(child.stderr.take().expect("stderr")).lines();
        let url = tokio::time::timeout(GUARD, async {
            while let Some(line) = err.next_line().await.expect("stderr") {
                eprintln!("sandbox stderr: {line}");
                if let Some(url) = line.strip_prefix("Knolyx sandbox listening on ") {
                    return url.to_owned();
                }
            }
            panic!("the sandbox exited before listening");
        })
        .await
        .expect("the sandbox did not start");
        tokio::spawn(async move {
            while let Ok(Some(line)) = err.next_line().await {
                eprintln!("sandbox stderr: {line}");
            }
        });
        Self { child, url, stdout }
    }

    /// The attempt lines the sandbox printed so far.
    fn printed(&self) -> Vec<String> {
        self.stdout.lock().expect("lock").clone()
    }

    /// Kills the process (SIGKILL: nothing is saved on the way out) and waits for it.
    async fn kill(mut self) {
        self.child.kill().await.expect("kill the sandbox");
    }

    fn api(&self, project: &str) -> Vec<String> {
        vec![
            "--api-url".into(),
            self.url.clone(),
            "--api-key".into(),
            API_KEY.into(),
            "--project-id".into(),
            project.into(),
        ]
    }

    /// Runs `knolyx-webhook ARGS` against this sandbox, for `project`.
    async fn cli(&self, project: &str, args: &[&str]) -> Run {
        let mut all: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        all.extend(self.api(project));
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        run(&all, &[]).await
    }

    /// `webhooks create --allow-local` of `url` with `token`; returns the webhook's id.
    async fn create(&self, project: &str, url: &str, token: &str) -> String {
        let out = self
            .cli(
                project,
                &[
                    "webhooks",
                    "create",
                    "--allow-local",
                    "--name",
                    "dev",
                    "--url",
                    url,
                    "--token",
                    token,
                    "--json",
                ],
            )
            .await;
        assert_eq!(out.code, 0, "{}", out.stderr);
        let created: Value = serde_json::from_str(&out.stdout).expect("JSON");
        assert_eq!(created["webhook"]["url"], url);
        created["webhook"]["id"].as_str().expect("an id").to_owned()
    }

    /// `sandbox trigger TYPE ARGS --json`: the exit code, the attempts, the summary.
    async fn trigger(&self, project: &str, event_type: &str, args: &[&str]) -> Triggered {
        let mut all = vec!["sandbox", "trigger", event_type, "--json"];
        all.extend_from_slice(args);
        let out = self.cli(project, &all).await;
        let mut attempts = Vec::new();
        let mut summary = Value::Null;
        for line in out.stdout.lines() {
            let line: Value = serde_json::from_str(line).expect("JSON lines only");
            if let Some(attempt) = line.get("attempt") {
                attempts.push(attempt.clone());
            } else {
                summary = line["summary"].clone();
            }
        }
        assert!(!summary.is_null(), "no summary: {}", out.stdout);
        Triggered {
            code: out.code,
            attempts,
            summary,
        }
    }
}

struct Triggered {
    code: i32,
    attempts: Vec<Value>,
    summary: Value,
}

impl Triggered {
    fn id(&self) -> String {
        self.summary["messageId"]
            .as_str()
            .expect("a message id")
            .to_owned()
    }

    fn statuses(&self) -> Vec<Value> {
        self.attempts.iter().map(|a| a["status"].clone()).collect()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn register_ping_trigger_every_type_and_delete() {
    let sandbox = SandboxProcess::start(&["--api-key", API_KEY]).await;
    let (one, two) = (Flaky::default(), Flaky::default());
    let (r1, r2) = (receiver("t-one", &one).await, receiver("t-two", &two).await);

    // Create sends a PING, with the webhook's token, before it answers.
    let id1 = sandbox.create("1", &r1.url(), "t-one").await;
    let id2 = sandbox.create("1", &r2.url(), "t-two").await;
    assert_ne!(id1, id2);
    for handler in [&one, &two] {
        let handled = handler.handled();
        assert_eq!(handled.len(), 1, "{handled:?}");
        assert_eq!(handled[0].0, "PING");
    }

    // Every type, triggered once, reaches each webhook once.
    let mut expected = Vec::new();
    for name in TestEvent::known_types() {
        let spelling = name.to_ascii_lowercase().replace('_', "-");
        let triggered = sandbox.trigger("1", &spelling, &[]).await;
        assert_eq!(triggered.code, 0, "{name}");
        assert_eq!(triggered.summary["webhooks"], 2);
        assert_eq!(triggered.summary["delivered"], 2);
        assert_eq!(triggered.summary["type"], name);
        assert_eq!(triggered.attempts.len(), 2);
        assert!(
            triggered
                .attempts
                .iter()
                .all(|a| a["status"] == 200 && a["attempt"] == 1 && a["willRetry"] == false)
        );
        expected.push((name.to_owned(), triggered.id()));
    }
    for handler in [&one, &two] {
        assert_eq!(handler.handled()[1..], expected[..]);
    }
    // The sandbox printed one line per attempt: 2 PINGs, then 2 per type.
    let printed = sandbox.printed();
    assert_eq!(printed.len(), 2 + 2 * expected.len(), "{printed:?}");
    assert!(printed.iter().all(|l| l.contains("200 OK")), "{printed:?}");

    // The ping endpoint, through the CLI, sends one more PING to that webhook only.
    let out = sandbox.cli("1", &["webhooks", "ping", &id1]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(one.handled().len(), 7);
    assert_eq!(one.handled()[6].0, "PING");
    assert_eq!(two.handled().len(), 6);

    // A deleted webhook gets nothing more; the other still gets everything.
    let out = sandbox.cli("1", &["webhooks", "delete", &id2]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let triggered = sandbox.trigger("1", "course-completed", &[]).await;
    assert_eq!(triggered.code, 0);
    assert_eq!(triggered.summary["webhooks"], 1);
    assert_eq!(
        one.handled().last().cloned(),
        Some(("COURSE_COMPLETED".to_owned(), triggered.id()))
    );
    assert_eq!(two.handled().len(), 6);
    let out = sandbox.cli("1", &["webhooks", "get", &id2]).await;
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("404"), "{}", out.stderr);

    // `list` and `get` show the remaining webhook, never its token.
    let out = sandbox.cli("1", &["webhooks", "list", "--json"]).await;
    assert_eq!(out.code, 0);
    let list: Value = serde_json::from_str(&out.stdout).expect("JSON");
    assert_eq!(list.as_array().map(Vec::len), Some(1));
    assert_eq!(list[0]["id"], Value::String(id1.clone()));
    assert!(!out.stdout.contains("t-one"));
    r1.stop().await;
    r2.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_handler_is_retried_until_handled_exactly_once() {
    let sandbox = SandboxProcess::start(&[]).await;
    let flaky = Flaky::failing_first(2);
    let r = receiver("t-flaky", &flaky).await;
    sandbox.create("7", &r.url(), "t-flaky").await;

    let triggered = sandbox
        .trigger(
            "7",
            "COURSE_STARTED",
            &["--retry-schedule", "20ms,20ms,20ms"],
        )
        .await;
    assert_eq!(triggered.code, 0);
    let id = triggered.id();
    assert_eq!(triggered.statuses(), [500, 500, 200]);
    let retries: Vec<_> = triggered.attempts.iter().map(|a| &a["willRetry"]).collect();
    assert_eq!(retries, [true, true, false]);
    let numbers: Vec<_> = triggered.attempts.iter().map(|a| &a["attempt"]).collect();
    assert_eq!(numbers, [1, 2, 3]);
    assert_eq!(flaky.calls(&id), 3);
    let handled: Vec<_> = flaky
        .handled()
        .into_iter()
        .filter(|(_, i)| *i == id)
        .collect();
    assert_eq!(handled.len(), 1);

    // The same in text: one line per attempt, then the summary.
    let out = sandbox
        .cli(
            "7",
            &[
                "sandbox",
                "trigger",
                "course-started",
                "--retry-schedule",
                "20ms,20ms",
            ],
        )
        .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 5, "{}", out.stdout);
    assert!(
        lines[0].starts_with("Triggering COURSE_STARTED "),
        "{}",
        lines[0]
    );
    for line in &lines[1..3] {
        assert!(line.contains("500 Internal Server Error") && line.ends_with("retry in 20ms"));
    }
    assert!(lines[3].contains("attempt 3: 200 OK"), "{}", lines[3]);
    assert!(
        lines[4].ends_with(": 1 webhook, 1 delivered, 3 attempts"),
        "{}",
        lines[4]
    );

    // Retries exhausted: exit 1, the handler never succeeded.
    let stubborn = Flaky::failing_first(10);
    let r2 = receiver("t-stubborn", &stubborn).await;
    sandbox.create("8", &r2.url(), "t-stubborn").await;
    let triggered = sandbox
        .trigger("8", "course-completed", &["--retry-schedule", "10ms"])
        .await;
    assert_eq!(triggered.code, 1);
    assert_eq!(triggered.statuses(), [500, 500]);
    assert_eq!(triggered.summary["failed"], 1);
    // --no-retry: one attempt.
    let triggered = sandbox
        .trigger("8", "course-completed", &["--no-retry"])
        .await;
    assert_eq!(triggered.code, 1);
    assert_eq!(triggered.statuses(), [500]);
    assert_eq!(triggered.attempts[0]["willRetry"], false);

    // A receiver that is gone: no response, retried, then given up.
    let gone = r2.url();
    r2.stop().await;
    let triggered = sandbox
        .trigger("8", "course-completed", &["--retry-schedule", "10ms"])
        .await;
    assert_eq!(triggered.code, 1);
    assert_eq!(triggered.statuses(), [Value::Null, Value::Null]);
    assert!(
        triggered
            .attempts
            .iter()
            .all(|a| a["url"] == gone.as_str() && a["error"] == "could not connect")
    );
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_duplicate_rate_retransmits_delivered_messages_which_the_receiver_drops() {
    let sandbox = SandboxProcess::start(&[]).await;
    let handler = Flaky::default();
    let r = receiver("t-dup", &handler).await;
    sandbox.create("1", &r.url(), "t-dup").await;
    let triggered = sandbox
        .trigger(
            "1",
            "bundle-payment-received",
            &["--duplicate-rate", "1", "--retry-schedule", "10ms"],
        )
        .await;
    assert_eq!(triggered.code, 0);
    assert_eq!(triggered.statuses(), [200, 200]);
    let duplicates: Vec<_> = triggered.attempts.iter().map(|a| &a["duplicate"]).collect();
    assert_eq!(duplicates, [false, true]);
    // The receiver dropped the retransmission: the handler ran once.
    assert_eq!(handler.calls(&triggered.id()), 1);
    r.stop().await;
}

/// A state file path unique to this test run.
fn state_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "knolyx-sandbox-{name}-{}-{}.json",
        std::process::id(),
        knolyx_webhook_core::testing::random_id()
    ))
}

#[tokio::test(flavor = "multi_thread")]
async fn webhooks_survive_a_restart_with_state() {
    let path = state_path("restart");
    let path_arg = path.to_str().expect("utf-8 path").to_owned();
    let handler = Flaky::default();
    let r = receiver("t-kept", &handler).await;

    let sandbox = SandboxProcess::start(&["--state", &path_arg]).await;
    let id = sandbox.create("3", &r.url(), "t-kept").await;
    sandbox.kill().await;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path)
            .expect("state file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "the state file holds tokens: {mode:o}");
    }

    let sandbox = SandboxProcess::start(&["--state", &path_arg]).await;
    let out = sandbox.cli("3", &["webhooks", "get", &id, "--json"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let webhook: Value = serde_json::from_str(&out.stdout).expect("JSON");
    assert_eq!(webhook["url"], r.url().as_str());
    // The token was kept too: the receiver accepts the delivery.
    let triggered = sandbox.trigger("3", "course-completed", &[]).await;
    assert_eq!(triggered.code, 0);
    assert_eq!(handler.calls(&triggered.id()), 1);
    // Ids are not reused after a restart.
    let second = sandbox.create("3", &r.url(), "t-kept").await;
    assert_ne!(second, id);
    sandbox.kill().await;
    let _ = std::fs::remove_file(&path);

    // A file that is not a state file: the sandbox refuses to start, exit 2.
    let bad = state_path("bad");
    std::fs::write(&bad, "not json").expect("write");
    let out = run(
        &[
            "sandbox",
            "--port",
            "0",
            "--state",
            bad.to_str().expect("utf-8"),
        ],
        &[],
    )
    .await;
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("not a sandbox state file"),
        "{}",
        out.stderr
    );
    let _ = std::fs::remove_file(&bad);
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn headers_api_key_projects_and_strict_urls() {
    let sandbox =
        SandboxProcess::start(&["--api-key", API_KEY, "--strict", "--attempt-timeout", "0.5"])
            .await;
    let http = reqwest::Client::new();
    let url = format!("{}/public/api/v1/webhook", sandbox.url);
    let status = |request: reqwest::RequestBuilder| async move {
        let response = request.send().await.expect("a response");
        let status = response.status().as_u16();
        let body: Value = response.json().await.expect("a JSON error");
        (
            status,
            body["error"].as_str().unwrap_or_default().to_owned(),
        )
    };
    let (code, error) = status(http.get(&url).header("X-Project-Id", "1")).await;
    assert_eq!(
        (code, error.as_str()),
        (400, "the X-Api-Key header is required")
    );
    let (code, error) = status(http.get(&url).header("X-Api-Key", API_KEY)).await;
    assert_eq!(
        (code, error.as_str()),
        (400, "the X-Project-Id header is required")
    );
    let (code, error) = status(
        http.get(&url)
            .header("X-Api-Key", "wrong")
            .header("X-Project-Id", "1"),
    )
    .await;
    assert_eq!((code, error.as_str()), (401, "invalid API key"));
    let authed = |request: reqwest::RequestBuilder| {
        request
            .header("X-Api-Key", API_KEY)
            .header("X-Project-Id", "1")
    };
    let (code, error) = status(authed(http.post(&url)).body("{nope")).await;
    assert_eq!(code, 400, "{error}");
    let (code, error) = status(
        authed(http.post(&url))
            .json(&serde_json::json!({"name": "x", "url": "https://a.example/h"})),
    )
    .await;
    assert_eq!((code, error.as_str()), (400, "`securityToken` is required"));
    let (code, _) = status(authed(http.get(format!("{url}/999")))).await;
    assert_eq!(code, 404);
    let (code, _) = status(authed(http.put(&url))).await;
    assert_eq!(code, 405);

    // The CLI with a wrong key: exit 1, the status said.
    let out = run(
        &[
            "webhooks",
            "list",
            "--api-url",
            &sandbox.url,
            "--api-key",
            "wrong",
            "--project-id",
            "1",
        ],
        &[],
    )
    .await;
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("401"), "{}", out.stderr);

    // --strict: the platform's rules, localhost refused by the sandbox itself.
    let out = sandbox
        .cli(
            "1",
            &[
                "webhooks",
                "create",
                "--allow-local",
                "--name",
                "n",
                "--url",
                "http://localhost:3000/webhooks/knolyx",
            ],
        )
        .await;
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("422"), "{}", out.stderr);
    assert!(out.stderr.contains("https"), "{}", out.stderr);
    // Without --allow-local the CLI refuses before sending (exit 2), as against Knolyx.
    let out = sandbox
        .cli(
            "1",
            &[
                "webhooks",
                "create",
                "--name",
                "n",
                "--url",
                "http://localhost:3000/x",
            ],
        )
        .await;
    assert_eq!(out.code, 2);

    // A public https URL is accepted in strict mode (its PING fails: a documentation address, nothing answers).
    let out = sandbox
        .cli(
            "1",
            &[
                "webhooks",
                "create",
                "--name",
                "n",
                "--url",
                "https://192.0.2.1/knolyx",
            ],
        )
        .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    // Webhooks are per project.
    let out = sandbox.cli("2", &["webhooks", "list", "--json"]).await;
    assert_eq!(out.stdout.trim(), "[]");
}

#[tokio::test(flavor = "multi_thread")]
async fn trigger_usage_and_transport_errors() {
    // Nothing listens at this port once the sandbox has stopped.
    let stopped = Sandbox::builder().bind(loopback()).await.expect("bind");
    let url = stopped.url();
    stopped.shutdown().await;
    let args = [
        "sandbox",
        "trigger",
        "ping",
        "--api-url",
        &url,
        "--api-key",
        "k",
        "--project-id",
        "1",
    ];
    let out = run(&args, &[]).await;
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(
        out.stderr.contains("knolyx-webhook sandbox"),
        "{}",
        out.stderr
    );
    for bad in [
        &["--duplicate-rate", "1.5"][..],
        &["--retry-schedule", "1h"],
        &["--retry-schedule", "1s", "--no-retry"],
    ] {
        let mut all = args.to_vec();
        all.extend_from_slice(bad);
        assert_eq!(run(&all, &[]).await.code, 2, "{bad:?}");
    }
    let mut unknown = args.to_vec();
    unknown[2] = "certificate-issued";
    assert_eq!(run(&unknown, &[]).await.code, 2);

    // A project without webhooks: nothing delivered, exit 1.
    let sandbox = SandboxProcess::start(&[]).await;
    let triggered = sandbox.trigger("empty", "ping", &[]).await;
    assert_eq!(triggered.code, 1);
    assert_eq!(triggered.summary["webhooks"], 0);
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_stops_the_sandbox_with_exit_0() {
    let mut sandbox = SandboxProcess::start(&[]).await;
    let pid = sandbox.child.id().expect("a pid").to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .stdout(Stdio::null())
        .status()
        .expect("kill runs");
    assert!(killed.success());
    let status = tokio::time::timeout(GUARD, sandbox.child.wait())
        .await
        .expect("the sandbox did not stop")
        .expect("wait");
    assert_eq!(status.code(), Some(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_client_crate_against_the_in_process_sandbox() {
    let sandbox = Sandbox::builder()
        .api_key(API_KEY)
        .bind(loopback())
        .await
        .expect("the sandbox starts");
    let handler = Flaky::default();
    let request = CreateWebhook::with_generated_token("client", "http://127.0.0.1:1/unused");
    let r = receiver(request.security_token(), &handler).await;
    let request = CreateWebhook::new("client", r.url(), request.security_token());

    // Without the opt-in the client refuses the URL, as against Knolyx.
    let strict = KnolyxClient::new(&sandbox.url(), API_KEY, "9").expect("client");
    assert!(matches!(
        strict.create(&request).await,
        Err(Error::InvalidWebhookUrl(_))
    ));

    let client = KnolyxClient::builder(&sandbox.url(), API_KEY, "9")
        .allow_local_webhook_urls(true)
        .build()
        .expect("client");
    let created = client.create(&request).await.expect("created");
    let id = created.id.clone().expect("an id");
    assert_eq!(created.url.as_deref(), Some(r.url().as_str()));
    assert_eq!(created.security_token, None, "the token is not echoed");
    // The PING arrived with the generated token (the receiver checks it).
    assert_eq!(handler.handled().len(), 1);

    let listed = client.list().await.expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id.as_ref(), Some(&id));
    assert_eq!(
        client.get(&id).await.expect("get").name.as_deref(),
        Some("client")
    );
    client.ping(&id).await.expect("ping");
    client.ping_all().await.expect("ping all");
    let pings: Vec<_> = handler
        .handled()
        .into_iter()
        .filter(|(t, _)| t == "PING")
        .collect();
    assert_eq!(pings.len(), 3);
    client.delete(&id).await.expect("delete");
    assert!(client.get(&id).await.unwrap_err().is_not_found());
    assert!(client.delete(&id).await.unwrap_err().is_not_found());
    let wrong = KnolyxClient::new(&sandbox.url(), "wrong", "9").expect("client");
    assert!(matches!(
        wrong.list().await,
        Err(Error::Status { status, .. }) if status.as_u16() == 401
    ));
    sandbox.shutdown().await;
    r.stop().await;
}
