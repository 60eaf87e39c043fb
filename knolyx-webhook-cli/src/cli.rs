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

  # Operate the durable inbox: see the dead entries, replay them, purge old done ones.
  export KNOLYX_WEBHOOK_INBOX=postgres://user:password@db.example.com/app
  knolyx-webhook inbox list --state dead
  knolyx-webhook inbox retry --all-dead

  # Free a message id left in progress by a receiver that crashed mid-handler.
  export KNOLYX_WEBHOOK_STORE=redis://cache.example.com:6379/
  knolyx-webhook store show 6f1c0e9e-5d2b-4b7a-9a51-0c1d2e3f4a5b
  knolyx-webhook store release 6f1c0e9e-5d2b-4b7a-9a51-0c1d2e3f4a5b

Environment:
  KNOLYX_API_URL        base URL of the Knolyx API (webhooks commands)
  KNOLYX_API_KEY        API key, sent as X-Api-Key; never printed (webhooks commands)
  KNOLYX_PROJECT_ID     project id, sent as X-Project-Id (webhooks commands)
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
  0  success (send: every delivery answered 2xx, duplicates included)
  1  the server answered with an error (send: some delivery got 4xx/5xx;
     webhooks: the API answered non-2xx or with a body that could not be read)
  2  usage or configuration error (bad flag, missing setting, unknown event type,
     unreadable --data-file or --token-file, a webhook URL Knolyx would refuse, a
     security token the receiver would refuse)
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

Exit codes: 0 success; 1 the API answered with an error; 2 usage or configuration error
(including a webhook URL Knolyx would refuse: http, localhost, loopback, and a security
token the receiver would refuse); 3 the API could not be reached.";

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
http://localhost included, so a receiver can be tested without a tunnel. `inbox` lists, \
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
    /// Operate a receiver's idempotency store: show the state of a message id, free one
    /// stuck in progress.
    #[command(subcommand, after_help = STORE_AFTER_HELP)]
    Store(StoreCommand),
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
    /// Base URL of the Knolyx API, in front of /public/api/v1/webhook.
    #[arg(long, env = "KNOLYX_API_URL", value_name = "URL")]
    pub api_url: String,
    /// API key of the project, sent as X-Api-Key (never printed).
    #[arg(
        long,
        env = "KNOLYX_API_KEY",
        value_name = "KEY",
        hide_env_values = true
    )]
    pub api_key: String,
    /// Id of the project, sent as X-Project-Id.
    #[arg(long, env = "KNOLYX_PROJECT_ID", value_name = "ID")]
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
