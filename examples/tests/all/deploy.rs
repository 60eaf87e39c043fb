//! Deploys, for real, on both receiver binaries: SIGTERM (what Kubernetes, systemd and Docker
//! send) while a handler runs. A handler that finishes within the grace period answers and
//! completes its claim; one that does not is cut, its claim is released so that another
//! replica runs the retransmission at once, and the process exits 0 either way.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::Duration;

use knolyx_webhook_core::testing::TestEvent;
use knolyx_webhook_redis::testing::PrivateRedis;

pub(crate) const TOKEN: &str = "examples-deploy-token";
/// Generous bounds for the failure path only.
const WAIT: Duration = Duration::from_secs(30);
pub(crate) const BINARIES: [&str; 2] = [
    env!("CARGO_BIN_EXE_axum-receiver"),
    env!("CARGO_BIN_EXE_actix-receiver"),
];

/// A receiver binary, its stderr lines on a channel; killed if the test fails first.
pub(crate) struct Replica {
    child: Child,
    pub(crate) url: String,
    /// `http://127.0.0.1:PORT/metrics`, with `KNOLYX_METRICS_PORT`.
    pub(crate) metrics_url: Option<String>,
    /// The stderr lines up to and including `listening on URL`.
    pub(crate) startup: Vec<String>,
    stderr: Receiver<String>,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Replica {
    fn start(path: &str, store: &str, delay_ms: u64, grace_secs: u64) -> Self {
        let delay = delay_ms.to_string();
        let grace = grace_secs.to_string();
        Self::start_with(
            path,
            &[
                ("KNOLYX_WEBHOOK_STORE", store),
                ("KNOLYX_EXAMPLE_HANDLER_DELAY_MS", &delay),
                ("KNOLYX_SHUTDOWN_GRACE_SECS", &grace),
            ],
        )
    }

    /// A receiver binary with the test token, a free port, and these variables.
    pub(crate) fn start_with(path: &str, env: &[(&str, &str)]) -> Self {
        let mut child = Command::new(path)
            .env("KNOLYX_WEBHOOK_TOKEN", TOKEN)
            .env("PORT", "0")
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = BufReader::new(child.stderr.take().unwrap());
        let (tx, stderr) = channel();
        std::thread::spawn(move || {
            for line in lines.lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut replica = Self {
            child,
            url: String::new(),
            metrics_url: None,
            startup: Vec::new(),
            stderr,
        };
        replica.startup = replica.lines_through("listening on ");
        // The metrics' URL, if any, is printed before the webhook's.
        for line in &replica.startup {
            if let Some(url) = line.strip_prefix("metrics on ") {
                replica.metrics_url = Some(url.to_owned());
            }
        }
        let line = replica.startup.last().expect("the line");
        replica.url = line["listening on ".len()..].to_owned();
        replica
    }

    /// The first stderr line (from now on) containing `text`.
    pub(crate) fn wait_for_line(&self, text: &str) -> String {
        self.lines_through(text).pop().expect("the line")
    }

    /// The stderr lines from now on, through the first one containing `text`.
    pub(crate) fn lines_through(&self, text: &str) -> Vec<String> {
        let mut lines = Vec::new();
        loop {
            match self.stderr.recv_timeout(WAIT) {
                Ok(line) => {
                    let done = line.contains(text);
                    lines.push(line);
                    if done {
                        return lines;
                    }
                }
                Err(e) => panic!("no stderr line with {text:?} ({e}); read: {lines:#?}"),
            }
        }
    }

    /// `kill -9`: the process dies at once, nothing settled, nothing released.
    pub(crate) fn kill9(&self) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-KILL", &pid]).status().unwrap();
        assert!(sent.success());
    }

    pub(crate) fn terminate(&self) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(sent.success());
    }

    /// Waits for the process to exit; its status and stdout.
    pub(crate) fn exit(mut self) -> (ExitStatus, String) {
        let mut stdout = self.child.stdout.take().unwrap();
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            let mut out = String::new();
            let _ = std::io::Read::read_to_string(&mut stdout, &mut out);
            let _ = tx.send(out);
        });
        let out = rx.recv_timeout(WAIT).expect("the receiver exited");
        (self.child.wait().unwrap(), out)
    }
}

fn put(
    url: &str,
    event: &TestEvent,
) -> tokio::task::JoinHandle<reqwest::Result<reqwest::Response>> {
    let request = reqwest::Client::new()
        .put(url)
        .header("x-webhook-security-token", TOKEN)
        .body(event.to_body());
    tokio::spawn(request.send())
}

/// The raw value of `id`'s key (`p:<owner>` in progress, `c…` completed), read directly.
pub(crate) async fn key(server: &PrivateRedis, id: &str) -> Option<String> {
    use knolyx_webhook_redis::redis;
    let client = redis::Client::open(server.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("GET")
        .arg(format!("knolyx-webhook:{id}"))
        .query_async(&mut conn)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server and redis-cli (README: Running the store tests)"]
async fn sigterm_lets_a_short_handler_finish_and_complete() {
    if !knolyx_webhook_redis::testing::redis_server_installed() {
        return;
    }
    let redis = PrivateRedis::start().await;
    for path in BINARIES {
        let replica = Replica::start(path, &redis.url(), 1500, 20);
        let event = TestEvent::course_payment_received();
        let id = event.clone().build().id().to_owned();
        let delivery = put(&replica.url, &event);
        replica.wait_for_line(&format!(
            "handler started; waiting before printing id=\"{id}\""
        ));
        replica.terminate();
        replica.wait_for_line("SIGTERM: shutting down");

        let response = delivery
            .await
            .unwrap()
            .expect("the running delivery is answered");
        assert_eq!(response.status(), 200, "{path}");
        replica.wait_for_line("stopped: every delivery finished");
        let (status, stdout) = replica.exit();
        assert!(status.success(), "{path}: {status}");
        assert!(
            stdout.contains(&id),
            "{path}: the handler printed its line: {stdout:?}"
        );
        let value = key(&redis, &id).await;
        assert!(
            value.is_some_and(|v| v.starts_with('c')),
            "{path}: completed"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server and redis-cli (README: Running the store tests)"]
async fn sigterm_releases_the_claim_of_a_handler_outliving_the_grace_period() {
    if !knolyx_webhook_redis::testing::redis_server_installed() {
        return;
    }
    let redis = PrivateRedis::start().await;
    for path in BINARIES {
        // A handler far longer than the grace period (and the 60 s lease).
        let replica = Replica::start(path, &redis.url(), 600_000, 1);
        let event = TestEvent::course_completed();
        let id = event.clone().build().id().to_owned();
        let delivery = put(&replica.url, &event);
        replica.wait_for_line(&format!(
            "handler started; waiting before printing id=\"{id}\""
        ));
        let claimed = key(&redis, &id).await;
        assert!(
            claimed.is_some_and(|v| v.starts_with("p:")),
            "{path}: claimed"
        );

        replica.terminate();
        replica.wait_for_line("released the claims of 1 deliveries still running");
        let (status, stdout) = replica.exit();
        assert!(status.success(), "{path}: exits 0: {status}");
        assert!(
            !stdout.contains(&id),
            "{path}: the cut handler printed nothing"
        );
        assert!(
            delivery.await.unwrap().is_err(),
            "{path}: its connection was cut"
        );
        assert_eq!(
            key(&redis, &id).await,
            None,
            "{path}: the claim is released"
        );

        // Another replica takes the retransmission at once, not after the lease.
        let other = Replica::start(path, &redis.url(), 0, 1);
        let response = put(&other.url, &event).await.unwrap().unwrap();
        assert_eq!(response.status(), 200, "{path}");
        assert!(
            response
                .headers()
                .get("x-knolyx-webhook-duplicate")
                .is_none()
        );
        other.terminate();
        let (status, stdout) = other.exit();
        assert!(status.success());
        assert!(stdout.contains(&id), "{path}: handled by the other replica");
    }
}
