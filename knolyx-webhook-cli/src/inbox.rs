//! `inbox list|show|retry|purge`: the operator's side of the durable inbox, through
//! [`PostgresInbox`] (the same calls as the library's [`Inbox`] trait).

use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use knolyx_webhook_client::redact_url;
use knolyx_webhook_core::inbox::{Entry, Inbox, ListFilter};
use knolyx_webhook_core::store::{StoreError, StoreErrorKind};
use knolyx_webhook_postgres::{PostgresInbox, PostgresStore, sqlx};
use serde_json::{Value, json};

use crate::cli::{DatabaseArgs, InboxCommand};
use crate::exit::{self, Failure};
use crate::webhooks::error_chain;

/// The environment variable the inbox commands read the database URL from.
const INBOX_ENV: &str = "KNOLYX_WEBHOOK_INBOX";

/// The longest last error a text line shows, in characters.
const MAX_ERROR_CHARS: usize = 80;

/// Runs an `inbox` subcommand.
pub(crate) async fn run(command: InboxCommand) -> Result<ExitCode, Failure> {
    match command {
        InboxCommand::List(args) => {
            let (inbox, _) = open(&args.database).await?;
            let mut filter = ListFilter::all().limit(args.limit as usize);
            if let Some(state) = args.state {
                filter = filter.state(state.into());
            }
            let entries = inbox
                .list(filter)
                .await
                .map_err(|e| args.database.failure(e))?;
            if args.json {
                let entries: Vec<Value> = entries.iter().map(|e| entry_json(e, false)).collect();
                println!("{}", Value::Array(entries));
            } else {
                print!("{}", render_list(&entries));
            }
        }
        InboxCommand::Show(args) => {
            let (inbox, table) = open(&args.database).await?;
            let entry = inbox
                .show(&args.id)
                .await
                .map_err(|e| args.database.failure(e))?
                .ok_or_else(|| not_found(&args.id, &table))?;
            if args.json {
                println!("{}", entry_json(&entry, args.body));
            } else {
                print!("{}", render_entry(&entry, args.body));
            }
        }
        InboxCommand::Retry(args) => {
            let (inbox, table) = open(&args.database).await?;
            let failure = |e| args.database.failure(e);
            match args.id {
                Some(id) => {
                    if !inbox.retry(&id).await.map_err(failure)? {
                        let message = match inbox.show(&id).await.map_err(failure)? {
                            Some(entry) => format!(
                                "entry {} is {}, not dead: only dead entries are retried",
                                printable(&id),
                                entry.state()
                            ),
                            None => format!(
                                "no entry {} in {table}, so it is not dead: nothing to retry",
                                printable(&id)
                            ),
                        };
                        return Err(Failure::rejected(message));
                    }
                    println!("Entry {} is pending again, due now.", printable(&id));
                }
                None => {
                    let count = inbox.retry_all_dead().await.map_err(failure)?;
                    println!(
                        "Retried {}: pending again, due now.",
                        entries(count, "dead entry", "dead entries")
                    );
                }
            }
        }
        InboxCommand::Purge(args) => {
            let (inbox, _) = open(&args.database).await?;
            let count = inbox
                .purge_done(args.older_than)
                .await
                .map_err(|e| args.database.failure(e))?;
            println!(
                "Purged {} done at least {} ago.",
                entries(count, "done entry", "done entries"),
                age(args.older_than)
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Connects to the inbox's database: the inbox, and its table as messages name it.
///
/// The connection is opened at once (through [`PostgresStore::connect`], which learns why
/// when it cannot be opened); the store's own table is never touched.
async fn open(database: &DatabaseArgs) -> Result<(PostgresInbox, String), Failure> {
    let url = database.url()?;
    let store = PostgresStore::connect(url)
        .await
        .map_err(|e| database.failure(e))?;
    let inbox = PostgresInbox::builder(store.pool().clone())
        .table(&database.table)
        .pooler(store.pooler())
        .build()
        .map_err(|e| Failure::usage(format!("--table: {}", error_chain(&e))))?;
    let table = inbox.table().to_string();
    Ok((inbox, table))
}

impl DatabaseArgs {
    /// The database URL, from the flag or [`INBOX_ENV`].
    fn url(&self) -> Result<&str, Failure> {
        match self.database_url.as_deref() {
            Some(url) if !url.trim().is_empty() => Ok(url),
            _ => Err(Failure::usage(format!(
                "no inbox database: give --database-url URL or set {INBOX_ENV}"
            ))),
        }
    }

    /// Maps a store error to its exit code and message: its cause chain, without the
    /// URL's password.
    fn failure(&self, error: StoreError) -> Failure {
        let url = self.database_url.as_deref().unwrap_or_default();
        let misconfigured = format!(
            "check the database of {} and --table {} (a receiver in inbox mode creates the \
             table when it starts)",
            redact_url(url),
            self.table
        );
        failure_for(
            error,
            &Setting {
                url,
                name: &format!("--database-url / {INBOX_ENV}"),
                form: "postgres://user:password@host/database",
                service: "PostgreSQL",
            },
            misconfigured,
        )
    }
}

/// Where a store's URL came from, for the hints of [`failure_for`].
pub(crate) struct Setting<'a> {
    /// The URL given.
    pub(crate) url: &'a str,
    /// The flag and variable it comes from.
    pub(crate) name: &'a str,
    /// The form it must have.
    pub(crate) form: &'a str,
    /// What should be running there.
    pub(crate) service: &'a str,
}

/// Maps a store error to its exit code and message (its cause chain, without the URL's
/// password) and a hint; `misconfigured` is the hint for a misconfiguration.
pub(crate) fn failure_for(
    error: StoreError,
    setting: &Setting<'_>,
    misconfigured: String,
) -> Failure {
    let shown = redact_url(setting.url);
    let name = setting.name;
    let not_a_url = std::error::Error::source(&error)
        .and_then(|s| s.downcast_ref::<sqlx::Error>())
        .is_some_and(|e| matches!(e, sqlx::Error::Configuration(_)));
    let (code, hint) = match error.kind() {
        _ if not_a_url => (exit::USAGE, format!("{name} must be {}", setting.form)),
        StoreErrorKind::Refused | StoreErrorKind::Unavailable | StoreErrorKind::Timeout => (
            exit::TRANSPORT,
            format!("is {} running at {shown}? check {name}", setting.service),
        ),
        StoreErrorKind::Misconfigured => (exit::USAGE, misconfigured),
        StoreErrorKind::Auth => (
            exit::REJECTED,
            format!("check the user and password of {name}"),
        ),
        // Full, Backend, and kinds to come.
        _ => (exit::REJECTED, format!("the store at {shown} failed")),
    };
    Failure {
        code,
        message: without_password(&error_chain(&error), setting.url),
        hint: Some(hint),
    }
}

/// `text` with the password of `url` (as given, and percent-decoded) replaced by `***`:
/// whatever a driver's message quotes, the password is not printed.
pub(crate) fn without_password(text: &str, url: &str) -> String {
    let Some(password) = url_password(url) else {
        return text.to_owned();
    };
    let mut text = text.replace(&password, "***");
    let decoded = percent_decoded(&password);
    if !decoded.is_empty() && decoded != password {
        text = text.replace(&decoded, "***");
    }
    text
}

/// The password of `url`, also when it names several hosts (`redis+cluster://:pw@a:1,b:2`),
/// which the URL parser refuses: what stands between the userinfo's first `:` and the last
/// `@` before the path.
fn url_password(url: &str) -> Option<String> {
    if let Ok(parsed) = reqwest::Url::parse(url) {
        return parsed.password().map(str::to_owned);
    }
    let rest = &url[url.find("://")? + 3..];
    let authority = &rest[..rest.find('/').unwrap_or(rest.len())];
    let userinfo = &authority[..authority.rfind('@')?];
    let (_, password) = userinfo.split_once(':')?;
    (!password.is_empty()).then(|| password.to_owned())
}

/// `text` with its `%XX` escapes decoded (as a driver decodes a URL's password).
fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// An id the inbox does not hold.
fn not_found(id: &str, table: &str) -> Failure {
    Failure::rejected(format!("no entry {} in {table}", printable(id)))
}

/// "1 dead entry", "3 dead entries".
fn entries(count: u64, one: &str, many: &str) -> String {
    format!("{count} {}", if count == 1 { one } else { many })
}

/// An age as `--older-than` takes it, in its largest whole unit.
fn age(age: Duration) -> String {
    let secs = age.as_secs();
    match secs {
        0 => "0s".to_owned(),
        _ if secs.is_multiple_of(86_400) => format!("{}d", secs / 86_400),
        _ if secs.is_multiple_of(3600) => format!("{}h", secs / 3600),
        _ if secs.is_multiple_of(60) => format!("{}m", secs / 60),
        _ => format!("{secs}s"),
    }
}

/// An entry as JSON: `id`, `type`, `state`, `attempts`, `last_error`, the times (RFC 3339,
/// UTC, or `null`), and the body's JSON when asked.
fn entry_json(entry: &Entry, with_body: bool) -> Value {
    let time = |t: Option<SystemTime>| t.map_or(Value::Null, |t| Value::String(rfc3339(t)));
    let mut value = json!({
        "id": entry.id(),
        "type": entry.event_type(),
        "state": entry.state().as_str(),
        "attempts": entry.attempts(),
        "last_error": entry.last_error(),
        "created_at": rfc3339(entry.created_at()),
        "updated_at": rfc3339(entry.updated_at()),
        "next_run_at": time(entry.next_run_at()),
        "lease_until": time(entry.lease_until()),
        "done_at": time(entry.done_at()),
    });
    if with_body {
        // The body parsed when it was accepted; as text if it was altered since.
        value["body"] = serde_json::from_slice(entry.body())
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(entry.body()).into_owned()));
    }
    value
}

/// Text output of `show`: `label: value` lines, then the body when asked.
fn render_entry(entry: &Entry, with_body: bool) -> String {
    let time = |t: Option<SystemTime>| t.map_or_else(|| "-".to_owned(), rfc3339);
    let rows = [
        ("id", printable(entry.id())),
        ("type", printable(entry.event_type())),
        ("state", entry.state().to_string()),
        ("attempts", entry.attempts().to_string()),
        (
            "last_error",
            entry.last_error().map_or_else(|| "-".to_owned(), printable),
        ),
        ("created_at", rfc3339(entry.created_at())),
        ("updated_at", rfc3339(entry.updated_at())),
        ("next_run_at", time(entry.next_run_at())),
        ("lease_until", time(entry.lease_until())),
        ("done_at", time(entry.done_at())),
    ];
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 1;
    let mut out = String::new();
    for (key, value) in rows {
        let _ = writeln!(out, "{:<width$}  {value}", format!("{key}:"));
    }
    if with_body {
        let _ = writeln!(out, "body:\n{}", String::from_utf8_lossy(entry.body()));
    }
    out
}

/// Text output of `list`: a header and one aligned line per entry, never the body.
fn render_list(entries: &[Entry]) -> String {
    if entries.is_empty() {
        return "No entries.\n".to_owned();
    }
    let header = ["ID", "TYPE", "STATE", "ATTEMPTS", "CREATED", "LAST_ERROR"];
    let rows: Vec<[String; 6]> = entries
        .iter()
        .map(|e| {
            [
                printable(e.id()),
                printable(e.event_type()),
                e.state().to_string(),
                e.attempts().to_string(),
                rfc3339(e.created_at()),
                e.last_error()
                    .map_or_else(|| "-".to_owned(), |m| shortened(&printable(m))),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: [&str; 6]| {
        let mut text = String::new();
        for (cell, width) in cells.iter().zip(widths) {
            let _ = write!(text, "{cell:<width$}  ");
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(header);
    for row in &rows {
        line(row.each_ref().map(String::as_str));
    }
    out
}

/// `text` on one line: control characters (line breaks included) shown as spaces.
pub(crate) fn printable(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// `text`, cut to [`MAX_ERROR_CHARS`] with `…`.
fn shortened(text: &str) -> String {
    if text.chars().count() <= MAX_ERROR_CHARS {
        return text.to_owned();
    }
    let mut short: String = text.chars().take(MAX_ERROR_CHARS - 1).collect();
    short.push('…');
    short
}

/// `time` as RFC 3339 in UTC, to the millisecond: `2025-01-31T08:05:09.123Z`.
fn rfc3339(time: SystemTime) -> String {
    let ms: i128 = match time.duration_since(UNIX_EPOCH) {
        Ok(after) => after.as_millis() as i128,
        Err(before) => -(before.duration().as_millis() as i128),
    };
    let (days, ms_of_day) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i128::from(month <= 2);
    let secs = ms_of_day / 1000;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        ms_of_day % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use knolyx_webhook_core::inbox::EntryState;

    #[test]
    fn times_are_rfc3339_utc() {
        let at = |ms: u64| UNIX_EPOCH + Duration::from_millis(ms);
        assert_eq!(rfc3339(at(0)), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(at(951_782_400_000)), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339(at(1_738_310_709_123)), "2025-01-31T08:05:09.123Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH - Duration::from_millis(1)),
            "1969-12-31T23:59:59.999Z"
        );
    }

    #[test]
    fn the_list_is_aligned_on_one_line_per_entry() {
        let at = UNIX_EPOCH + Duration::from_secs(86_400);
        let entries = [
            Entry::new("m-1", "COURSE_STARTED", "{}", EntryState::Dead, at)
                .with_attempts(20)
                .with_last_error(Some("boom\nat line 2".into())),
            Entry::new("much-longer-id", "PING", "{}", EntryState::Pending, at),
        ];
        assert_eq!(
            render_list(&entries),
            "ID              TYPE            STATE    ATTEMPTS  CREATED                   LAST_ERROR\n\
             m-1             COURSE_STARTED  dead     20        1970-01-02T00:00:00.000Z  boom at line 2\n\
             much-longer-id  PING            pending  0         1970-01-02T00:00:00.000Z  -\n"
        );
        assert_eq!(render_list(&[]), "No entries.\n");
        let long = "x".repeat(200);
        assert_eq!(shortened(&long).chars().count(), MAX_ERROR_CHARS);
    }

    #[test]
    fn passwords_are_taken_out_of_messages() {
        let url = "postgres://u:p%40ss@h/db";
        assert_eq!(
            without_password("auth failed for p%40ss and p@ss", url),
            "auth failed for *** and ***"
        );
        assert_eq!(
            without_password("no password", "postgres://h/db"),
            "no password"
        );
        assert_eq!(without_password("x", "not a url"), "x");
    }

    #[test]
    fn ages_print_as_given() {
        assert_eq!(age(Duration::from_secs(72 * 3600)), "3d");
        assert_eq!(age(Duration::from_secs(90 * 60)), "90m");
        assert_eq!(age(Duration::ZERO), "0s");
        assert_eq!(age(Duration::from_secs(61)), "61s");
    }
}
