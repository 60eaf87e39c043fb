//! The command line, as `clap` parses it.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgGroup, Args, Parser, Subcommand, ValueEnum};
use knolyx_webhook_client::redact_url;
use knolyx_webhook_core::inbox::EntryState;
use knolyx_webhook_postgres::DEFAULT_INBOX_TABLE;

/// Text shown after the top-level `--help`.
const AFTER_HELP: &str = "\
Examples:
  # Fire a realistic event at the example receiver on this machine (no tunnel needed),
  # twice with the same id: the second delivery is reported as a duplicate.
  knolyx-webhook send course-completed --url http://localhost:3000/webhooks/knolyx --token $KNOLYX_WEBHOOK_TOKEN --times 2

  # Register a public https endpoint with Knolyx; a security token is generated and printed.
  export KNOLYX_API_URL=https://knolyx.example.com KNOLYX_API_KEY=... KNOLYX_PROJECT_ID=1234
  knolyx-webhook webhooks create --name \"course events\" --url https://hooks.example.com/webhooks/knolyx
  knolyx-webhook webhooks list
  knolyx-webhook webhooks ping 42
  knolyx-webhook webhooks delete 42

  # A local Knolyx for development and CI: register http://localhost webhooks, get the
  # PING, trigger events, watch a failing handler be retried (two terminals).
  knolyx-webhook sandbox --api-key dev-key --state sandbox.json
  knolyx-webhook webhooks create --allow-local --name dev --url http://localhost:3000/webhooks/knolyx \\
    --api-url http://127.0.0.1:8900 --api-key dev-key --project-id 1
  knolyx-webhook sandbox trigger course-completed --api-url http://127.0.0.1:8900 \\
    --api-key dev-key --project-id 1

  # Operate the durable inbox: see the dead entries, replay them, purge old done ones.
  export KNOLYX_WEBHOOK_INBOX=postgres://user:password@db.example.com/app
  knolyx-webhook inbox list --state dead
  knolyx-webhook inbox retry --all-dead

  # Free a message id left in progress by a receiver that crashed mid-handler.
  export KNOLYX_WEBHOOK_STORE=redis://cache.example.com:6379/
  knolyx-webhook store show 6f1c0e9e-5d2b-4b7a-9a51-0c1d2e3f4a5b
  knolyx-webhook store release 6f1c0e9e-5d2b-4b7a-9a51-0c1d2e3f4a5b

Environment:
  KNOLYX_API_URL        base URL of the Knolyx API (webhooks commands, sandbox trigger)
  KNOLYX_API_KEY        API key, sent as X-Api-Key; never printed (webhooks commands,
                        sandbox trigger)
  KNOLYX_PROJECT_ID     project id, sent as X-Project-Id (webhooks commands, sandbox
                        trigger)
  KNOLYX_WEBHOOK_TOKEN  the receiver's security token (send, unless --token or
                        --token-file is given)
  KNOLYX_WEBHOOK_INBOX  the inbox's PostgreSQL URL (inbox commands, unless
                        --database-url is given); its password is never printed
  KNOLYX_WEBHOOK_STORE  the idempotency store's URL (store commands, unless --store
                        is given); its password is never printed

A security token can be read from a file or stdin with --token-file PATH (`-` = stdin)
instead of --token, which other users see in `ps` and your shell history. URLs are
printed without their user:password@ part.

Exit codes:
  0  success (send: every delivery answered 2xx, duplicates included; sandbox trigger:
     every webhook answered 2xx at some attempt)
  1  the server answered with an error (send: some delivery got 4xx/5xx;
     webhooks: the API answered non-2xx or with a body that could not be read;
     sandbox trigger: some webhook never answered 2xx, or the project has none)
  2  usage or configuration error (bad flag, missing setting, unknown event type,
     unreadable --data-file or --token-file, a webhook URL Knolyx would refuse, a
     security token the receiver would refuse; sandbox: cannot listen, unusable --state)
  3  transport failure: no HTTP response at all (connection refused, DNS, TLS, timeout);
     inbox, store: the database or store could not be reached";

/// Text shown after `inbox --help`.
const INBOX_AFTER_HELP: &str = "\
The inbox is the PostgreSQL table in which a receiver in inbox mode stores every event it
acknowledges, for its worker to run (knolyx_webhook_postgres::PostgresInbox). Every inbox
command needs the database's URL, from --database-url or KNOLYX_WEBHOOK_INBOX (its
password is never printed), and takes --table for another table than the default
knolyx_webhook_inbox. Bodies hold students' personal data: they are printed only by
`inbox show ID --body`.

Examples:
  knolyx-webhook inbox list                      # the oldest 100 entries, every state
  knolyx-webhook inbox list --state dead --json  # one JSON array
  knolyx-webhook inbox show 6f1c0e9e-5d2b-4b7a-9a51-0c1d2e3f4a5b
  knolyx-webhook inbox retry 6f1c0e9e-5d2b-4b7a-9a51-0c1d2e3f4a5b
  knolyx-webhook inbox retry --all-dead
  knolyx-webhook inbox purge --older-than 7d

Exit codes: 0 success; 1 no such entry (show, retry), an entry that is not dead (retry),
or the database answered with an error; 2 usage or configuration error (no database URL,
a bad table name, a table that does not exist, a bad --older-than); 3 the database could
not be reached (refused, unreachable, timeout).";

/// Text shown after `store --help`.
const STORE_AFTER_HELP: &str = "\
The idempotency store is where receivers remember which message ids are being handled
(in progress, for a lease) and which were handled (completed, for the retention window):
Redis (redis://, rediss://), a Redis Cluster (redis+cluster://host:port,host:port), a
Sentinel-monitored master (redis+sentinel://host:port,.../MASTER) or PostgreSQL
(postgres://). The URL comes from --store or KNOLYX_WEBHOOK_STORE, as for the example
receivers; its password is never printed. An in-memory store lives inside its receiver's
process: no command can reach it.

`store release ID` frees an id left in progress by a receiver that crashed mid-handler, so
that Knolyx's next retry runs the handler at once instead of being answered 503 until the
lease expires. It asks for confirmation (on a terminal) unless --yes is given; a handler
still running for the id would find its claim gone. Completed ids are never released.

Examples:
  knolyx-webhook store show 6f1c0e9e-5d2b-4b7a-9a51-0c1d2e3f4a5b
  knolyx-webhook store show 6f1c0e9e-5d2b-4b7a-9a51-0c1d2e3f4a5b --json
  knolyx-webhook store release 6f1c0e9e-5d2b-4b7a-9a51-0c1d2e3f4a5b --store redis://cache:6379/
  knolyx-webhook store release 6f1c0e9e-5d2b-4b7a-9a51-0c1d2e3f4a5b --yes

Exit codes: 0 success (show: whatever the state); 1 release: the id is not in progress, or
confirmation was declined; the store answered with an error; 2 usage or configuration
error (no store URL, the memory store, release without --yes and without a terminal, a
bad table name); 3 the store could not be reached.";

/// Text shown after `send --help`.
const SEND_AFTER_HELP: &str = "\
The event is delivered the way Knolyx delivers it: an HTTP PUT of
{\"id\":…,\"type\":…,\"data\":…} with Content-Type: application/json and the token in
X-Webhook-Security-Token. Any URL works, http://localhost included.

--times N sends N rounds one after the other; --concurrency C sends C copies at once in
each round (N × C deliveries in all), every one with the same id. A receiver that drops
retransmissions answers the first with its handler's status and the others with 200 and
the header x-knolyx-webhook-duplicate: true (or 503 while the first is still running).

The token comes from --token, from --token-file PATH (`-` = stdin, one trailing newline
stripped), or else from KNOLYX_WEBHOOK_TOKEN. A token the receiver would refuse (empty,
surrounding white space, anything but visible ASCII and inner spaces) is refused before
anything is sent.

Examples:
  knolyx-webhook send course-completed --url http://localhost:3000/webhooks/knolyx --token $KNOLYX_WEBHOOK_TOKEN --times 2
  knolyx-webhook send BUNDLE_PAYMENT_RECEIVED --url http://localhost:3000/webhooks/knolyx --concurrency 10
  knolyx-webhook send certificate-issued --data-file certificate.json --url http://localhost:3000/webhooks/knolyx
  knolyx-webhook send ping --url http://localhost:3000/webhooks/knolyx --token-file token.txt

Exit codes: 0 all deliveries answered 2xx; 1 some answered 4xx/5xx; 2 usage error;
3 some delivery got no HTTP response (connection refused, timeout, …).";

/// Text shown after `sandbox --help`.
const SANDBOX_AFTER_HELP: &str = "\
The sandbox is a local Knolyx on 127.0.0.1: the Webhook API as the vendor documents it
(POST/GET /public/api/v1/webhook, GET/DELETE /public/api/v1/webhook/ID, POST
/public/api/v1/webhook/ping, POST /public/api/v1/webhook/ID/ping; X-Api-Key and
X-Project-Id required), webhooks kept per project, and a sender. Unlike Knolyx it accepts
http://localhost URLs (--strict applies the platform's rules). It sends a PING, with the
webhook's security token, on create and on the ping endpoints.

`sandbox trigger TYPE` delivers an event to every webhook of the project (TYPE as for
`send`: course-completed, PING, …; any name with --data-file). A delivery not answered
2xx within --attempt-timeout is retransmitted after each wait of --retry-schedule
(--no-retry: once only); --duplicate-rate R retransmits a delivered message too, with
probability R, as an at-least-once sender may. Both the sandbox and trigger print one
line per attempt (--json: one JSON object a line); trigger ends with a summary once every
delivery is settled.

Walkthrough, in two terminals:
  # terminal 1: the sandbox (webhooks kept in sandbox.json across restarts)
  knolyx-webhook sandbox --api-key dev-key --state sandbox.json
  # terminal 2: a receiver whose handler fails the first 2 attempts of each event
  KNOLYX_WEBHOOK_TOKEN=dev-token KNOLYX_EXAMPLE_HANDLER_FAIL_FIRST=2 \\
    cargo run -p knolyx-webhook-examples --bin axum-receiver &
  export KNOLYX_API_URL=http://127.0.0.1:8900 KNOLYX_API_KEY=dev-key KNOLYX_PROJECT_ID=1
  knolyx-webhook webhooks create --allow-local --name dev \\
    --url http://localhost:3000/webhooks/knolyx --token dev-token
  knolyx-webhook sandbox trigger course-completed
  knolyx-webhook sandbox trigger bundle-payment-received --retry-schedule 100ms,1s --json

Exit codes (trigger): 0 every webhook answered 2xx; 1 some never did (or the project has
no webhooks, or the sandbox refused the call); 2 usage error; 3 the sandbox could not be
reached. The sandbox itself: 0 after SIGINT/SIGTERM; 2 it cannot start (port taken,
unusable --state file).";

/// Text shown after `webhooks --help`.
const WEBHOOKS_AFTER_HELP: &str = "\
Every webhooks command needs the API's base URL, an API key and a project id, from the
flags or from KNOLYX_API_URL, KNOLYX_API_KEY and KNOLYX_PROJECT_ID. The API key is never
printed.

Examples:
  knolyx-webhook webhooks create --name \"course events\" --url https://hooks.example.com/webhooks/knolyx
  knolyx-webhook webhooks create --name orders --url https://hooks.example.com/orders --token-file token.txt
  knolyx-webhook webhooks list --json
  knolyx-webhook webhooks get 42
  knolyx-webhook webhooks ping          # every webhook of the project
  knolyx-webhook webhooks ping 42       # one webhook
  knolyx-webhook webhooks delete 42

Against a local `knolyx-webhook sandbox`, `create --allow-local` registers http and
localhost URLs (Knolyx itself refuses them).

Exit codes: 0 success; 1 the API answered with an error; 2 usage or configuration error
(including a webhook URL Knolyx would refuse: http, localhost, loopback, unless
--allow-local, and a security token the receiver would refuse); 3 the API could not be
reached.";

/// Manage Knolyx webhooks and send test events to a receiver.
///
/// Parse it with [`Parser::parse`] and run it with [`crate::run`].
#[derive(Debug, Parser)]
#[command(
    name = "knolyx-webhook",
    version,
    about = "Manage Knolyx webhooks and fire realistic test events at your receiver",
    long_about = "Manage Knolyx webhooks and fire realistic test events at your receiver.\n\n\
`webhooks` registers, lists, pings and deletes the endpoints Knolyx delivers events to, \
through the Knolyx Webhook API. `send` delivers an event the way Knolyx does to any URL, \
http://localhost included, so a receiver can be tested without a tunnel. `sandbox` runs a \
local Knolyx (the Webhook API and its sender, retransmissions included) that accepts \
http://localhost webhooks. `inbox` lists, \
shows, retries and purges the entries of a receiver's durable inbox on PostgreSQL. \
`store` shows the state of a message id in a receiver's idempotency store and frees one \
stuck in progress.",
    after_help = AFTER_HELP,
    propagate_version = true
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Manage the project's webhooks through the Knolyx Webhook API.
    #[command(subcommand, after_help = WEBHOOKS_AFTER_HELP)]
    Webhooks(WebhooksCommand),
    /// Deliver a realistic event to a receiver, the way Knolyx does (no tunnel needed).
    #[command(after_help = SEND_AFTER_HELP)]
    Send(SendArgs),
    /// Operate a receiver's durable inbox on PostgreSQL: list, show, retry and purge entries.
    #[command(subcommand, after_help = INBOX_AFTER_HELP)]
    Inbox(InboxCommand),
    /// Run a local Knolyx (Webhook API and sender, http://localhost allowed), or trigger an
    /// event in a running one.
    #[command(after_help = SANDBOX_AFTER_HELP)]
    Sandbox(SandboxArgs),
    /// Operate a receiver's idempotency store: show the state of a message id, free one
    /// stuck in progress.
    #[command(subcommand, after_help = STORE_AFTER_HELP)]
    Store(StoreCommand),
}

/// `sandbox`: serve, or `sandbox trigger`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct SandboxArgs {
    /// `trigger`; without it, the sandbox is served.
    #[command(subcommand)]
    pub command: Option<SandboxCommand>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub serve: SandboxServeArgs,
}

/// `sandbox` subcommands.
#[derive(Debug, Subcommand)]
pub enum SandboxCommand {
    /// Deliver an event to every webhook of the project, through a running sandbox, with
    /// retransmissions; exits once every delivery is settled.
    #[command(after_help = SANDBOX_AFTER_HELP)]
    Trigger(TriggerArgs),
}

/// How the sandbox is served. `Debug` redacts the API key.
#[derive(Args)]
pub struct SandboxServeArgs {
    /// Port to listen on, on 127.0.0.1 (0: a free one, printed).
    #[arg(long, value_name = "PORT", default_value_t = crate::sandbox::DEFAULT_PORT)]
    pub port: u16,
    /// Require this X-Api-Key on every call (401 otherwise). Default: any non-empty key.
    #[arg(long, value_name = "KEY")]
    pub api_key: Option<String>,
    /// Keep the webhooks in this JSON file (created if missing, rewritten atomically on
    /// every change), so they survive a restart. Default: in memory.
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
    /// Apply the platform's URL rules (https, not localhost or loopback) to new webhooks.
    #[arg(long)]
    pub strict: bool,
    /// Give up on a PING after this many seconds.
    #[arg(long, value_name = "SECONDS", default_value = "5", value_parser = parse_seconds)]
    pub attempt_timeout: Duration,
    /// Print one JSON object per delivery attempt on stdout instead of text.
    #[arg(long)]
    pub json: bool,
}

impl fmt::Debug for SandboxServeArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SandboxServeArgs")
            .field("port", &self.port)
            .field("api_key", &self.api_key.as_ref().map(|_| REDACTED))
            .field("state", &self.state)
            .field("strict", &self.strict)
            .field("attempt_timeout", &self.attempt_timeout)
            .field("json", &self.json)
            .finish()
    }
}

/// `sandbox trigger`. `Debug` redacts the API key.
#[derive(Args)]
pub struct TriggerArgs {
    /// Event type, as for `send`: PING, COURSE_COMPLETED, COURSE_STARTED,
    /// COURSE_PAYMENT_RECEIVED, BUNDLE_PAYMENT_RECEIVED, in any case, with `-` or `_`. With
    /// --data-file, any type name.
    #[arg(value_name = "TYPE")]
    pub event_type: String,
    /// Use this file's JSON as the event's `data` (`-` reads stdin); allows any type name.
    #[arg(long, value_name = "PATH")]
    pub data_file: Option<PathBuf>,
    /// Message id to use (default: a new random UUID).
    #[arg(long, value_name = "ID")]
    pub id: Option<String>,
    /// The running sandbox (its base URL in --api-url, e.g. http://127.0.0.1:8900), the
    /// API key and the project whose webhooks get the event. --timeout bounds the wait for
    /// the sandbox to answer, not the deliveries.
    #[command(flatten)]
    pub api: ApiArgs,
    /// Waits before each retransmission of a delivery not answered 2xx: a comma-separated
    /// list of a number and a unit, ms, s or m.
    #[arg(long, value_name = "WAITS", default_value = "200ms,500ms,1s,2s",
          value_delimiter = ',', value_parser = parse_wait, conflicts_with = "no_retry")]
    pub retry_schedule: Vec<Duration>,
    /// Deliver once: no retransmission.
    #[arg(long)]
    pub no_retry: bool,
    /// Probability, 0.0 to 1.0, that a delivered message is retransmitted once more anyway
    /// (an at-least-once sender's duplicate).
    #[arg(long, value_name = "RATE", default_value = "0", value_parser = parse_rate)]
    pub duplicate_rate: f64,
    /// Give up on an attempt after this many seconds (then it is retransmitted).
    #[arg(long, value_name = "SECONDS", default_value = "5", value_parser = parse_seconds)]
    pub attempt_timeout: Duration,
    /// Print one JSON object a line (`{"attempt": …}`, then `{"summary": …}`) instead of
    /// text.
    #[arg(long)]
    pub json: bool,
}

impl fmt::Debug for TriggerArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TriggerArgs")
            .field("event_type", &self.event_type)
            .field("data_file", &self.data_file)
            .field("id", &self.id)
            .field("api", &self.api)
            .field("retry_schedule", &self.retry_schedule)
            .field("no_retry", &self.no_retry)
            .field("duplicate_rate", &self.duplicate_rate)
            .field("attempt_timeout", &self.attempt_timeout)
            .field("json", &self.json)
            .finish()
    }
}

/// `inbox` subcommands.
#[derive(Debug, Subcommand)]
pub enum InboxCommand {
    /// List entries, oldest first: id, type, state, attempts, when accepted, last error.
    List(InboxListArgs),
    /// Show one entry (its body only with --body).
    Show(InboxShowArgs),
    /// Put a dead entry (or every dead one, with --all-dead) back to pending, due at once,
    /// its attempts reset to 0.
    Retry(InboxRetryArgs),
    /// Delete the done entries done at least --older-than ago (a retransmission of a
    /// purged id is stored again).
    Purge(InboxPurgeArgs),
}

/// Which inbox: the database and the table. `Debug` hides the URL's password.
#[derive(Args)]
pub struct DatabaseArgs {
    /// The inbox's PostgreSQL URL (postgres://user:password@host/database; a
    /// `?pooler=transaction` parameter for a transaction pooler). Default:
    /// KNOLYX_WEBHOOK_INBOX. Its password is never printed.
    #[arg(
        long,
        env = "KNOLYX_WEBHOOK_INBOX",
        value_name = "URL",
        hide_env_values = true
    )]
    pub database_url: Option<String>,
    /// The inbox table, optionally schema-qualified (schema.table).
    #[arg(long, value_name = "TABLE", default_value = DEFAULT_INBOX_TABLE)]
    pub table: String,
}

impl fmt::Debug for DatabaseArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseArgs")
            .field(
                "database_url",
                &self.database_url.as_deref().map(redact_url),
            )
            .field("table", &self.table)
            .finish()
    }
}

/// An entry state, as `--state` takes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum StateArg {
    /// Waiting for its next run.
    Pending,
    /// Taken by a worker, under a lease.
    Running,
    /// Failed for good: kept, with its last error, until retried.
    Dead,
    /// Handled: kept for the retention window.
    Done,
}

impl From<StateArg> for EntryState {
    fn from(state: StateArg) -> Self {
        match state {
            StateArg::Pending => EntryState::Pending,
            StateArg::Running => EntryState::Running,
            StateArg::Dead => EntryState::Dead,
            StateArg::Done => EntryState::Done,
        }
    }
}

/// `inbox list`.
#[derive(Debug, Args)]
pub struct InboxListArgs {
    /// Only the entries in this state.
    #[arg(long, value_enum, value_name = "STATE")]
    pub state: Option<StateArg>,
    /// At most this many entries (the oldest).
    #[arg(long, value_name = "N", default_value_t = 100,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub limit: u32,
    /// Print one JSON array of entries on stdout instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub database: DatabaseArgs,
}

/// `inbox show`.
#[derive(Debug, Args)]
pub struct InboxShowArgs {
    /// The entry's id: the event's message id.
    #[arg(value_name = "ID")]
    pub id: String,
    /// Print the entry as one JSON object on stdout instead of text.
    #[arg(long)]
    pub json: bool,
    /// Print the event's body too (it holds students' personal data).
    #[arg(long)]
    pub body: bool,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub database: DatabaseArgs,
}

/// `inbox retry`: an id, or `--all-dead`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("which").required(true).args(["id", "all_dead"])))]
pub struct InboxRetryArgs {
    /// The dead entry to retry.
    #[arg(value_name = "ID")]
    pub id: Option<String>,
    /// Retry every dead entry.
    #[arg(long)]
    pub all_dead: bool,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub database: DatabaseArgs,
}

/// `inbox purge`.
#[derive(Debug, Args)]
pub struct InboxPurgeArgs {
    /// Purge the entries done at least this long ago: a number and a unit, s, m, h or d
    /// (0s: every done entry). Default: the retention, 72h.
    #[arg(long, value_name = "DURATION", default_value = "72h", value_parser = parse_age)]
    pub older_than: Duration,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub database: DatabaseArgs,
}

/// `webhooks` subcommands.
#[derive(Debug, Subcommand)]
pub enum WebhooksCommand {
    /// Register a webhook (Knolyx then sends it a PING); generates its security token
    /// unless --token or --token-file is given.
    Create(CreateArgs),
    /// List the project's webhooks.
    List(ListArgs),
    /// Show one webhook.
    Get(IdArgs),
    /// Delete a webhook.
    Delete(IdArgs),
    /// Ask Knolyx to send a PING: to every webhook, or to the one whose id is given.
    Ping(PingArgs),
}

/// How to reach the Knolyx Webhook API. `Debug` redacts the API key.
#[derive(Args)]
pub struct ApiArgs {
    // Not `required` for clap: a missing one is reported by the command, naming both the
    // flag and the variable (an empty value stands for "not set"). `hide_env_values`:
    // `--help` shows `[env: NAME]`, never `[env: NAME=]` as if set to nothing.
    /// Base URL of the Knolyx API, in front of /public/api/v1/webhook.
    #[arg(
        long,
        env = "KNOLYX_API_URL",
        value_name = "URL",
        default_value = "",
        hide_default_value = true,
        hide_env_values = true
    )]
    pub api_url: String,
    /// API key of the project, sent as X-Api-Key (never printed).
    #[arg(
        long,
        env = "KNOLYX_API_KEY",
        value_name = "KEY",
        default_value = "",
        hide_default_value = true,
        hide_env_values = true
    )]
    pub api_key: String,
    /// Id of the project, sent as X-Project-Id.
    #[arg(
        long,
        env = "KNOLYX_PROJECT_ID",
        value_name = "ID",
        default_value = "",
        hide_default_value = true,
        hide_env_values = true
    )]
    pub project_id: String,
    /// Give up on an API call after this many seconds.
    #[arg(long, value_name = "SECONDS", default_value = "30", value_parser = parse_seconds)]
    pub timeout: Duration,
}

impl fmt::Debug for ApiArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiArgs")
            .field("api_url", &redact_url(&self.api_url))
            .field("api_key", &REDACTED)
            .field("project_id", &self.project_id)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Stands in for a secret in `Debug` output.
const REDACTED: Redacted = Redacted;

struct Redacted;

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Output format of the `webhooks` commands.
#[derive(Debug, Args)]
pub struct OutputArgs {
    /// Print JSON on stdout instead of text (for scripts); notes go to stderr.
    #[arg(long)]
    pub json: bool,
}

/// `webhooks create`. `Debug` redacts the token.
#[derive(Args)]
pub struct CreateArgs {
    /// A name for the webhook.
    #[arg(long, value_name = "NAME")]
    pub name: String,
    /// The https URL Knolyx will PUT events to (not http, not localhost or loopback).
    #[arg(long, value_name = "URL")]
    pub url: String,
    /// The security token Knolyx will send. Default: a new random 256-bit token, printed
    /// once.
    #[command(flatten)]
    pub token: TokenArgs,
    /// Send a URL Knolyx would refuse (http, localhost, loopback): for a local
    /// `knolyx-webhook sandbox`, which accepts them.
    #[arg(long)]
    pub allow_local: bool,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub api: ApiArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub output: OutputArgs,
}

impl fmt::Debug for CreateArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CreateArgs")
            .field("name", &self.name)
            .field("url", &redact_url(&self.url))
            .field("token", &self.token)
            .field("allow_local", &self.allow_local)
            .field("api", &self.api)
            .field("output", &self.output)
            .finish()
    }
}

/// `webhooks list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub api: ApiArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub output: OutputArgs,
}

/// `webhooks get` and `webhooks delete`.
#[derive(Debug, Args)]
pub struct IdArgs {
    /// The webhook's id (as `list` shows it).
    #[arg(value_name = "ID")]
    pub id: String,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub api: ApiArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub output: OutputArgs,
}

/// `webhooks ping`.
#[derive(Debug, Args)]
pub struct PingArgs {
    /// The webhook to ping; without it, every webhook of the project is pinged.
    #[arg(value_name = "ID")]
    pub id: Option<String>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub api: ApiArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub output: OutputArgs,
}

/// `send`. `Debug` redacts the token.
#[derive(Args)]
pub struct SendArgs {
    /// Event type: PING, COURSE_COMPLETED, COURSE_STARTED, COURSE_PAYMENT_RECEIVED,
    /// BUNDLE_PAYMENT_RECEIVED, in any case, with `-` or `_` (course-completed). With
    /// --data-file, any type name.
    #[arg(value_name = "EVENT_TYPE")]
    pub event_type: String,
    /// The receiver's URL; any URL, http://localhost included.
    #[arg(long, value_name = "URL")]
    pub url: String,
    /// The receiver's security token. Default: KNOLYX_WEBHOOK_TOKEN.
    #[command(flatten)]
    pub token: TokenArgs,
    /// Message id to use (default: a new random UUID). Reuse an id to send a
    /// retransmission.
    #[arg(long, value_name = "ID")]
    pub id: Option<String>,
    /// Deliver the event N times, one after the other, with the same id.
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub times: u32,
    /// Deliver N copies at once (in each of the --times rounds), with the same id.
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=1_000))]
    pub concurrency: u32,
    /// Use this file's JSON as the event's `data` (`-` reads stdin); allows any type name.
    #[arg(long, value_name = "PATH")]
    pub data_file: Option<PathBuf>,
    /// Give up on a delivery after this many seconds.
    #[arg(long, value_name = "SECONDS", default_value = "30", value_parser = parse_seconds)]
    pub timeout: Duration,
    /// Print the JSON body before sending it.
    #[arg(long)]
    pub show_body: bool,
    /// Print one JSON report on stdout instead of text (for scripts).
    #[arg(long)]
    pub json: bool,
}

impl fmt::Debug for SendArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendArgs")
            .field("event_type", &self.event_type)
            .field("url", &redact_url(&self.url))
            .field("token", &self.token)
            .field("id", &self.id)
            .field("times", &self.times)
            .field("concurrency", &self.concurrency)
            .field("data_file", &self.data_file)
            .field("timeout", &self.timeout)
            .field("show_body", &self.show_body)
            .field("json", &self.json)
            .finish()
    }
}

/// Where a webhook security token comes from: `--token` or `--token-file` (exclusive).
/// `Debug` redacts the token.
#[derive(Args)]
pub struct TokenArgs {
    /// The webhook security token, sent in X-Webhook-Security-Token; never printed.
    ///
    /// Other users can see it in `ps`, and it stays in your shell history: prefer
    /// --token-file. A token the receiver would refuse (empty, surrounding white space,
    /// anything but visible ASCII and inner spaces) is refused before anything is sent.
    #[arg(long, value_name = "TOKEN", conflicts_with = "token_file")]
    pub token: Option<String>,
    /// Read the security token from the file at PATH, or from stdin if PATH is `-`.
    ///
    /// One trailing newline is stripped; any other white space is refused, as the
    /// receiver would refuse it.
    #[arg(long, value_name = "PATH")]
    pub token_file: Option<PathBuf>,
}

impl fmt::Debug for TokenArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenArgs")
            .field("token", &self.token.as_ref().map(|_| REDACTED))
            .field("token_file", &self.token_file)
            .finish()
    }
}

/// Parses a positive number of seconds (fractions allowed).
fn parse_seconds(text: &str) -> Result<Duration, String> {
    let seconds: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a number of seconds"))?;
    if !(seconds.is_finite() && seconds > 0.0 && seconds <= 86_400.0) {
        return Err("must be more than 0 and at most 86400 seconds".to_owned());
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// Parses a wait of a retry schedule: a whole number and a unit, `ms`, `s` or `m`
/// (`200ms`, `1s`), at most [`MAX_WAIT`](crate::sandbox::MAX_WAIT).
fn parse_wait(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let unit_ms: u64 = match unit {
        "ms" => 1,
        "s" => 1000,
        "m" => 60_000,
        _ => {
            return Err(format!(
                "`{text}` is not a wait: give a number and a unit, ms, s or m (200ms, 1s)"
            ));
        }
    };
    let max = crate::sandbox::MAX_WAIT;
    number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(unit_ms))
        .map(Duration::from_millis)
        .filter(|wait| *wait <= max)
        .ok_or_else(|| format!("`{text}`: give a number, up to {}s", max.as_secs()))
}

/// Parses a probability from 0.0 to 1.0.
fn parse_rate(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(rate) if (0.0..=1.0).contains(&rate) => Ok(rate),
        _ => Err(format!("`{text}` is not a rate from 0.0 to 1.0")),
    }
}

/// Parses an age: a whole number and a unit, `s`, `m`, `h` or `d` (`72h`, `0s`).
fn parse_age(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let unit_secs: u64 = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => {
            return Err(format!(
                "`{text}` is not a duration: give a number and a unit, s, m, h or d (72h, 0s)"
            ));
        }
    };
    number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(unit_secs))
        .map(Duration::from_secs)
        .ok_or_else(|| format!("`{text}` is not a duration: the number is missing or too large"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn debug_output_redacts_secrets() {
        let cli = Cli::try_parse_from([
            "knolyx-webhook",
            "webhooks",
            "list",
            "--api-url",
            "https://k.example",
            "--api-key",
            "key-s3cret",
            "--project-id",
            "1",
        ])
        .unwrap();
        assert!(!format!("{cli:?}").contains("key-s3cret"));
        let cli = Cli::try_parse_from([
            "knolyx-webhook",
            "send",
            "ping",
            "--url",
            "http://127.0.0.1:1/",
            "--token",
            "tok-s3cret",
        ])
        .unwrap();
        assert!(!format!("{cli:?}").contains("tok-s3cret"));
    }

    /// The `Debug` of the command line `args`, checked to show no `…-user:…-pa55` part.
    fn shown_without_credentials(args: &[&str]) -> String {
        let cli = Cli::try_parse_from(args).unwrap();
        let shown = format!("{cli:?}");
        assert!(
            !shown.contains("pa55") && !shown.contains("-user"),
            "{shown}"
        );
        shown
    }

    #[test]
    fn debug_output_hides_url_credentials() {
        let shown = shown_without_credentials(&[
            "knolyx-webhook",
            "webhooks",
            "create",
            "--api-url",
            "https://api-user:api-pa55@k.example",
            "--api-key",
            "k",
            "--project-id",
            "1",
            "--name",
            "n",
            "--url",
            "https://hook-user:hook-pa55@hooks.example.com/k",
        ]);
        assert!(shown.contains("https://***@hooks.example.com/k"), "{shown}");
        shown_without_credentials(&[
            "knolyx-webhook",
            "send",
            "ping",
            "--url",
            "http://hook-user:hook-pa55@127.0.0.1:1/",
            "--token",
            "t",
        ]);
        let shown = shown_without_credentials(&[
            "knolyx-webhook",
            "inbox",
            "list",
            "--database-url",
            "postgres://db-user:db-pa55@db.example.com/app",
        ]);
        assert!(
            shown.contains("postgres://***@db.example.com/app"),
            "{shown}"
        );
    }

    #[test]
    fn ages_parse() {
        assert_eq!(parse_age("72h"), Ok(Duration::from_secs(72 * 3600)));
        assert_eq!(parse_age("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_age("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse_age("90m"), Ok(Duration::from_secs(5400)));
        for bad in ["", "h", "72", "1.5h", "-1s", "3w", "99999999999999999999d"] {
            assert!(parse_age(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn waits_and_rates_parse() {
        assert_eq!(parse_wait("200ms"), Ok(Duration::from_millis(200)));
        assert_eq!(parse_wait("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_wait("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_wait("0ms"), Ok(Duration::ZERO));
        for bad in ["", "200", "1.5s", "-1s", "1h", "11m", "ms"] {
            assert!(parse_wait(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_rate("0.25"), Ok(0.25));
        assert_eq!(parse_rate("1"), Ok(1.0));
        for bad in ["1.5", "-0.1", "x", "NaN"] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn seconds_parse() {
        assert_eq!(parse_seconds("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_seconds("0").is_err());
        assert!(parse_seconds("x").is_err());
    }
}

/// `store` subcommands.
#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Show the state of a message id: absent, in progress (with the lease left) or
    /// completed (with the retention left).
    Show(StoreShowArgs),
    /// Free a message id stuck in progress (its receiver crashed), whoever holds it, so
    /// that its next delivery runs the handler at once. Asks for confirmation unless --yes.
    Release(StoreReleaseArgs),
}

/// Which store. `Debug` hides the URL's password.
#[derive(Args)]
pub struct StoreArgs {
    /// The store's URL: redis://, rediss://, redis+cluster://, redis+sentinel:// or
    /// postgres:// (a `?pooler=transaction` parameter for a transaction pooler). Default:
    /// KNOLYX_WEBHOOK_STORE. Its password is never printed.
    #[arg(
        long = "store",
        env = "KNOLYX_WEBHOOK_STORE",
        value_name = "URL",
        hide_env_values = true
    )]
    pub url: Option<String>,
    /// PostgreSQL: the deliveries table, optionally schema-qualified (schema.table).
    #[arg(long, value_name = "TABLE", default_value = knolyx_webhook_postgres::DEFAULT_TABLE)]
    pub table: String,
    /// Redis: the key prefix the receivers use.
    #[arg(long, value_name = "PREFIX", default_value = knolyx_webhook_redis::DEFAULT_KEY_PREFIX)]
    pub key_prefix: String,
}

impl fmt::Debug for StoreArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreArgs")
            .field("url", &self.url.as_deref().map(redact_url))
            .field("table", &self.table)
            .field("key_prefix", &self.key_prefix)
            .finish()
    }
}

/// `store show`.
#[derive(Debug, Args)]
pub struct StoreShowArgs {
    /// The message id.
    #[arg(value_name = "ID")]
    pub id: String,
    /// Print one JSON object on stdout instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub store: StoreArgs,
}

/// `store release`.
#[derive(Debug, Args)]
pub struct StoreReleaseArgs {
    /// The message id stuck in progress.
    #[arg(value_name = "ID")]
    pub id: String,
    /// Release without asking (required when stdin is not a terminal).
    #[arg(long, short = 'y')]
    pub yes: bool,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub store: StoreArgs,
}
