//! A local Knolyx: the Webhook API and the sender, on loopback, for development and CI.
//!
//! Knolyx refuses `http://` and localhost webhook URLs, so the real flow (register a
//! webhook, get its PING, have events delivered to every webhook, see failures
//! retransmitted) cannot be tried against it with a receiver on your machine. The sandbox
//! serves the same API on 127.0.0.1, accepts such URLs, and delivers events the way
//! Knolyx does:
//!
//! | endpoint | what |
//! |---|---|
//! | `POST /public/api/v1/webhook` | registers `{"name", "url", "securityToken"}` (all required, as the vendor guide says: the token is created client side), answers 201 with `{"id", "name", "url"}` after sending the webhook a PING |
//! | `GET /public/api/v1/webhook` | the project's webhooks, a JSON array |
//! | `GET /public/api/v1/webhook/{id}` | one webhook; 404 if the project has none by that id |
//! | `DELETE /public/api/v1/webhook/{id}` | 204 |
//! | `POST /public/api/v1/webhook/ping` | a PING to every webhook of the project; 200 with what each got |
//! | `POST /public/api/v1/webhook/{id}/ping` | a PING to one webhook |
//! | `POST /sandbox/v1/trigger` | sandbox only: delivers an event to every webhook of the project, with retransmissions; streams one JSON line per attempt, then a summary ([`TriggerLine`]) |
//!
//! Every call needs `X-Api-Key` and `X-Project-Id` (missing or empty: 400); with
//! [`SandboxBuilder::api_key`] the key must be that one (else 401). Webhooks are kept per
//! project (the `X-Project-Id`), in memory or in a JSON file
//! ([`SandboxBuilder::state_file`]) rewritten atomically on every change, so they survive a
//! restart. Refusals are a status and `{"error": "…"}`.
//!
//! Deliveries are HTTP PUTs of `{"id", "type", "data"}` with the webhook's token in
//! `X-Webhook-Security-Token`. A PING is sent once; a triggered event is retransmitted,
//! after each wait of its schedule, until it is answered 2xx (or the schedule is over, or
//! the webhook is deleted), and, at its duplicate rate, once more after a 2xx, as an
//! at-least-once sender may.
//!
//! The `knolyx-webhook sandbox` command runs it; start it in-process from your own tests
//! with [`Sandbox::builder`]:
//!
//! ```no_run
//! use knolyx_webhook_cli::sandbox::Sandbox;
//! use knolyx_webhook_client::{CreateWebhook, KnolyxClient};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let sandbox = Sandbox::builder()
//!     .api_key("dev-key")
//!     .bind(([127, 0, 0, 1], 0).into())
//!     .await?;
//! let client = KnolyxClient::builder(&sandbox.url(), "dev-key", "1")
//!     .allow_local_webhook_urls(true)
//!     .build()?;
//! // The receiver at this URL gets a PING before `create` returns.
//! let request = CreateWebhook::with_generated_token("dev", "http://127.0.0.1:3000/webhooks/knolyx");
//! let webhook = client.create(&request).await?;
//! println!("registered {:?}", webhook.id);
//! sandbox.shutdown().await;
//! # Ok(())
//! # }
//! ```

mod api;
pub(crate) mod command;
mod sender;
mod state;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use knolyx_webhook_core::SecretToken;
use knolyx_webhook_core::token::{InvalidToken, TokenVerifier};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

pub use sender::Attempt;

/// The port `knolyx-webhook sandbox` listens on unless `--port` says otherwise.
pub const DEFAULT_PORT: u16 = 8900;
/// The sandbox-only endpoint that delivers an event to every webhook of the project.
pub const TRIGGER_PATH: &str = "/sandbox/v1/trigger";
/// The waits before each retransmission of a triggered event unless the trigger gives
/// its own: 200 ms, 500 ms, 1 s, 2 s (five attempts in all).
pub const DEFAULT_RETRY_SCHEDULE: [Duration; 4] = [
    Duration::from_millis(200),
    Duration::from_millis(500),
    Duration::from_secs(1),
    Duration::from_secs(2),
];
/// How long a delivery attempt may take unless configured otherwise.
pub const DEFAULT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// Most retransmissions a trigger may ask for.
pub const MAX_RETRY_STEPS: usize = 100;
/// Longest wait of a retry schedule, and longest attempt timeout.
pub const MAX_WAIT: Duration = Duration::from_secs(600);
/// How long [`Sandbox::shutdown`] lets open requests (a trigger's stream) finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// What the sandbox prints on stdout for each delivery attempt (PINGs included).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum AttemptLog {
    /// Nothing (the default, for in-process use).
    #[default]
    Quiet,
    /// One line of text per attempt ([`Attempt::line`]).
    Text,
    /// One JSON object per attempt, one a line.
    Json,
}

/// One line of the trigger endpoint's response (newline-delimited JSON):
/// `{"attempt": {…}}` for each attempt as it happens, then `{"summary": {…}}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub enum TriggerLine {
    /// A delivery attempt.
    Attempt(Attempt),
    /// The last line: every delivery is settled.
    Summary(TriggerSummary),
}

/// How a triggered event went, over every webhook of the project.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct TriggerSummary {
    /// The message id.
    pub message_id: String,
    /// The event type.
    #[serde(rename = "type")]
    pub event_type: String,
    /// How many webhooks the project had when the event was triggered.
    pub webhooks: usize,
    /// How many answered 2xx (at some attempt).
    pub delivered: usize,
    /// How many never did (retries exhausted, or deleted meanwhile).
    pub failed: usize,
    /// Attempts made in all, retransmissions and duplicates included.
    pub attempts: usize,
}

/// Why a sandbox could not start (or save its state).
#[derive(Debug)]
#[non_exhaustive]
pub enum SandboxError {
    /// The address could not be bound.
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The state file could not be read or written.
    StateIo {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The state file is not a sandbox state.
    StateFormat {
        /// The file.
        path: PathBuf,
        /// Why.
        source: serde_json::Error,
    },
    /// The state file was written by another version of the sandbox.
    StateVersion {
        /// The file.
        path: PathBuf,
        /// The version it says.
        version: u32,
    },
    /// The API key given to [`SandboxBuilder::api_key`] could never be sent as one.
    ApiKey(InvalidToken),
    /// The HTTP client of the sender could not be built.
    Client(reqwest::Error),
}

impl fmt::Display for SandboxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Bind { addr, .. } => write!(f, "cannot listen on {addr}"),
            Self::StateIo { path, .. } => {
                write!(f, "cannot read or write the state file {}", path.display())
            }
            Self::StateFormat { path, .. } => write!(
                f,
                "the state file {} is not a sandbox state file",
                path.display()
            ),
            Self::StateVersion { path, version } => write!(
                f,
                "the state file {} has format version {version}, this sandbox reads 1",
                path.display()
            ),
            Self::ApiKey(_) => f.write_str("the API key cannot be used"),
            Self::Client(_) => f.write_str("cannot build the HTTP client"),
        }
    }
}

impl std::error::Error for SandboxError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Bind { source, .. } | Self::StateIo { source, .. } => Some(source),
            Self::StateFormat { source, .. } => Some(source),
            Self::ApiKey(e) => Some(e),
            Self::Client(e) => Some(e),
            Self::StateVersion { .. } => None,
        }
    }
}

/// Configures a [`Sandbox`]; made by [`Sandbox::builder`]. `Debug` redacts the API key.
#[derive(Clone, Default)]
#[must_use = "a builder does nothing until `bind` is called"]
pub struct SandboxBuilder {
    api_key: Option<String>,
    state_file: Option<PathBuf>,
    strict: bool,
    attempt_timeout: Option<Duration>,
    log: AttemptLog,
}

impl fmt::Debug for SandboxBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SandboxBuilder")
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("state_file", &self.state_file)
            .field("strict", &self.strict)
            .field("attempt_timeout", &self.attempt_timeout)
            .field("log", &self.log)
            .finish()
    }
}

impl SandboxBuilder {
    /// Requires this `X-Api-Key` on every call (else 401). Default: any non-empty key.
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(key.into());
        self
    }

    /// Keeps the webhooks in this JSON file (created if missing), rewritten atomically on
    /// every change, so they survive a restart. Default: in memory. The file holds the
    /// security tokens: it is created readable by its owner only.
    pub fn state_file(mut self, path: impl AsRef<Path>) -> Self {
        self.state_file = Some(path.as_ref().to_owned());
        self
    }

    /// Applies the platform's URL rules to registered webhooks (https, not localhost or
    /// loopback: [`validate_webhook_url`](knolyx_webhook_client::validate_webhook_url))
    /// instead of accepting any http(s) URL.
    pub fn strict(mut self, strict: bool) -> Self {
        self.strict = strict;
        self
    }

    /// How long a PING attempt may take (default [`DEFAULT_ATTEMPT_TIMEOUT`]); a trigger
    /// gives its own.
    pub fn attempt_timeout(mut self, timeout: Duration) -> Self {
        self.attempt_timeout = Some(timeout);
        self
    }

    /// What to print on stdout for each delivery attempt (default: nothing).
    pub fn log_attempts(mut self, log: AttemptLog) -> Self {
        self.log = log;
        self
    }

    /// Binds `addr` (port 0 picks a free port) and serves in the background until
    /// [`Sandbox::shutdown`] (or the sandbox is dropped).
    ///
    /// # Errors
    ///
    /// [`SandboxError`]: the address cannot be bound, the state file cannot be read,
    /// parsed or written, the API key is one no header could carry.
    pub async fn bind(self, addr: SocketAddr) -> Result<Sandbox, SandboxError> {
        let api_key = match self.api_key {
            Some(key) => {
                let key = SecretToken::new(key).map_err(SandboxError::ApiKey)?;
                Some(Arc::new(
                    TokenVerifier::new([key]).map_err(SandboxError::ApiKey)?,
                ))
            }
            None => None,
        };
        let state = match &self.state_file {
            Some(path) => state::State::open(path)?,
            None => state::State::in_memory(),
        };
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!(
                "knolyx-webhook-sandbox/",
                env!("CARGO_PKG_VERSION")
            ))
            .build()
            .map_err(SandboxError::Client)?;
        let shared = api::Shared {
            state,
            api_key,
            strict: self.strict,
            http,
            ping_timeout: self.attempt_timeout.unwrap_or(DEFAULT_ATTEMPT_TIMEOUT),
            log: self.log,
        };
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| SandboxError::Bind { addr, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| SandboxError::Bind { addr, source })?;
        let (stop, stopped) = oneshot::channel::<()>();
        let app = api::router(shared);
        let server = tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
            if let Err(e) = served {
                eprintln!("sandbox: the server stopped: {e}");
            }
        });
        Ok(Sandbox {
            addr,
            stop: Some(stop),
            server,
        })
    }
}

/// A running sandbox; see the [module documentation](self). Dropping it stops it.
#[derive(Debug)]
pub struct Sandbox {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<()>,
}

impl Sandbox {
    /// A builder with the defaults: any API key, in memory, any http(s) URL, quiet.
    pub fn builder() -> SandboxBuilder {
        SandboxBuilder::default()
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The API's base URL (`http://127.0.0.1:PORT`), for
    /// [`KnolyxClient`](knolyx_webhook_client::KnolyxClient) or `--api-url`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting connections, lets open requests finish for a moment, and stops.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let server = &mut self.server;
        if tokio::time::timeout(SHUTDOWN_GRACE, &mut *server)
            .await
            .is_err()
        {
            server.abort();
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.server.abort();
    }
}
