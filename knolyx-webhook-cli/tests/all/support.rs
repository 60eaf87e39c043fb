//! Shared test helpers: running the binary, a fake Knolyx API, a recording server, and
//! counting handlers for the receivers.

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use knolyx_webhook_core::WebhookEvent;
use knolyx_webhook_examples::{EventHandler, HandlerError};
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpListener;
use tokio::sync::Notify;

/// Environment variables the binary reads; removed from every run so the developer's own
/// settings never leak into a test.
const CLI_ENV: [&str; 6] = [
    "KNOLYX_API_URL",
    "KNOLYX_API_KEY",
    "KNOLYX_PROJECT_ID",
    "KNOLYX_WEBHOOK_TOKEN",
    "KNOLYX_WEBHOOK_INBOX",
    "KNOLYX_WEBHOOK_STORE",
];

/// A guard against a hung test, never a way to wait for something.
pub(crate) const GUARD: Duration = Duration::from_secs(60);

/// The binary, with a clean environment.
pub(crate) fn bin() -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_knolyx-webhook"));
    for name in CLI_ENV {
        command.env_remove(name);
    }
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// What a run of the binary produced.
#[derive(Debug)]
pub(crate) struct Run {
    pub(crate) code: i32,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Run {
    /// stdout and stderr together, for "never printed" checks.
    pub(crate) fn all_output(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

/// Runs the binary with `args` and `env`, to completion.
pub(crate) async fn run(args: &[&str], env: &[(&str, &str)]) -> Run {
    run_with_stdin(args, env, None).await
}

/// Runs the binary with `args` and `env`, to completion, writing `stdin` (when given) to
/// its standard input and then closing it.
pub(crate) async fn run_with_stdin(
    args: &[&str],
    env: &[(&str, &str)],
    stdin: Option<&[u8]>,
) -> Run {
    let mut command = bin();
    command.args(args);
    for (name, value) in env {
        command.env(name, value);
    }
    if stdin.is_some() {
        command.stdin(Stdio::piped());
    }
    let mut child = command.spawn().expect("the binary runs");
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(input).await.expect("write stdin");
        // Dropping the pipe closes it: the binary reads to the end.
    }
    let output = tokio::time::timeout(GUARD, child.wait_with_output())
        .await
        .expect("the binary did not finish")
        .expect("the binary runs");
    let run = Run {
        code: output.status.code().expect("exited normally"),
        stdout: String::from_utf8(output.stdout).expect("utf-8 stdout"),
        stderr: String::from_utf8(output.stderr).expect("utf-8 stderr"),
    };
    eprintln!(
        "$ knolyx-webhook {}\n-- exit {}\n-- stdout\n{}-- stderr\n{}",
        args.join(" "),
        run.code,
        run.stdout,
        run.stderr
    );
    run
}

/// The loopback address with an ephemeral port.
pub(crate) fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// One request a [`Recorder`] server saw.
#[derive(Debug, Clone)]
pub(crate) struct Recorded {
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) headers: HeaderMap,
    pub(crate) body: String,
}

impl Recorded {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(name)
            .map(|v| v.to_str().expect("ascii header"))
    }

    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).expect("a JSON body")
    }
}

type Respond = Arc<dyn Fn(&Recorded) -> Response + Send + Sync>;

#[derive(Clone)]
struct RecorderState {
    requests: Arc<Mutex<Vec<Recorded>>>,
    respond: Respond,
}

/// An HTTP server on loopback that records every request and answers with `respond`.
pub(crate) struct Recorder {
    pub(crate) base_url: String,
    requests: Arc<Mutex<Vec<Recorded>>>,
    server: tokio::task::JoinHandle<()>,
}

impl Recorder {
    pub(crate) async fn start(
        respond: impl Fn(&Recorded) -> Response + Send + Sync + 'static,
    ) -> Self {
        let requests = Arc::new(Mutex::new(Vec::new()));
        let state = RecorderState {
            requests: Arc::clone(&requests),
            respond: Arc::new(respond),
        };
        let app = Router::new().fallback(record).with_state(state);
        let listener = TcpListener::bind(loopback()).await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("serve");
        });
        Self {
            base_url: format!("http://{addr}"),
            requests,
            server,
        }
    }

    /// Every request so far.
    pub(crate) fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().expect("lock").clone()
    }

    /// The only request so far.
    pub(crate) fn only_request(&self) -> Recorded {
        let mut requests = self.requests();
        assert_eq!(
            requests.len(),
            1,
            "expected exactly one request: {requests:?}"
        );
        requests.remove(0)
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn record(State(state): State<RecorderState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 1 << 20).await.expect("body");
    let recorded = Recorded {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        headers: parts.headers,
        body: String::from_utf8(body.to_vec()).expect("utf-8 body"),
    };
    let response = (state.respond)(&recorded);
    state.requests.lock().expect("lock").push(recorded);
    response
}

/// A JSON response.
pub(crate) fn json_response(status: StatusCode, body: serde_json::Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// An empty response.
pub(crate) fn empty_response(status: StatusCode) -> Response {
    Response::builder()
        .status(status)
        .body(Body::empty())
        .expect("response")
}

/// A handler that records every event it is given, optionally waiting for a gate to open
/// before it returns.
#[derive(Clone, Default)]
pub(crate) struct Counting {
    events: Arc<Mutex<Vec<WebhookEvent>>>,
    gate: Option<Arc<Notify>>,
}

impl Counting {
    /// A handler that returns as soon as it has recorded the event.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// A handler that records the event, then waits until [`open`](Self::open) is called.
    pub(crate) fn gated() -> Self {
        Self {
            events: Arc::default(),
            gate: Some(Arc::new(Notify::new())),
        }
    }

    /// Lets one waiting (or the next) handler call return.
    pub(crate) fn open(&self) {
        if let Some(gate) = &self.gate {
            gate.notify_one();
        }
    }

    /// The events handled so far.
    pub(crate) fn events(&self) -> Vec<WebhookEvent> {
        self.events.lock().expect("lock").clone()
    }

    /// The handler to give a receiver.
    pub(crate) fn handler(&self) -> EventHandler {
        let this = self.clone();
        Arc::new(move |event: WebhookEvent| {
            let this = this.clone();
            Box::pin(async move {
                this.events.lock().expect("lock").push(event);
                if let Some(gate) = &this.gate {
                    gate.notified().await;
                }
                Ok::<(), HandlerError>(())
            })
        })
    }
}
