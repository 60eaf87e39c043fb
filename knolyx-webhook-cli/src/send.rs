//! `send`: deliver a realistic event to a receiver the way Knolyx does.

use std::fmt::Write as _;
use std::io::Read as _;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use knolyx_webhook_client::redact_url;
use knolyx_webhook_core::testing::{TestEvent, random_id};
use knolyx_webhook_core::{DUPLICATE_HEADER, TOKEN_HEADER};
use reqwest::header::{CONTENT_TYPE, HeaderValue};
use reqwest::{StatusCode, Url};
use serde::Serialize;
use serde_json::value::RawValue;
use tokio::sync::Barrier;
use tokio::task::JoinSet;

use crate::cli::SendArgs;
use crate::exit::{self, Failure};
use crate::token;

/// The route the example receivers (and the README) serve, for the 404 hint.
const RECEIVER_ROUTE: &str = "/webhooks/knolyx";

/// Longest response body excerpt printed per delivery, in characters.
const BODY_EXCERPT_CHARS: usize = 120;

/// An event ready to deliver: its id, its type name and the JSON body.
#[derive(Debug, Clone)]
pub(crate) struct Outgoing {
    pub(crate) id: String,
    pub(crate) event_type: String,
    pub(crate) body: Bytes,
}

/// A type name as Knolyx writes them: `course-completed` → `COURSE_COMPLETED`, for known
/// and custom names alike.
fn normalize_type(name: &str) -> String {
    name.trim().to_ascii_uppercase().replace('-', "_")
}

/// The documented type name `name` stands for (`course-completed` → `COURSE_COMPLETED`).
fn known_type(name: &str) -> Option<&'static str> {
    let normalized = normalize_type(name);
    TestEvent::known_types()
        .into_iter()
        .find(|known| *known == normalized)
}

/// Refuses an id the receiver would refuse (400): empty, over 255 bytes, or with a control
/// character, by the receiver's own rule.
fn check_id(id: &str) -> Result<(), Failure> {
    use knolyx_webhook_core::{Event, PingData, WebhookEvent};
    WebhookEvent::new(id, Event::Ping(PingData::default()))
        .map(drop)
        .map_err(|e| {
            Failure::usage(format!(
                "--id: {e}; the receiver would refuse it (400), so nothing was sent"
            ))
        })
}

/// Builds the event: a realistic one of a documented type, or, with `data`, the envelope
/// `{"id","type","data"}` around that JSON for any type name.
pub(crate) fn build_event(
    event_type: &str,
    id: Option<&str>,
    data: Option<&str>,
) -> Result<Outgoing, Failure> {
    let id = id.map_or_else(random_id, str::to_owned);
    check_id(&id)?;
    match data {
        None => {
            let Some(event) = TestEvent::of_type(event_type) else {
                return Err(Failure::usage(format!(
                    "unknown event type `{event_type}`; valid types: {}",
                    TestEvent::known_types().join(", ")
                ))
                .with_hint(
                    "names are accepted in any case, with - or _ (course-completed); to send \
                     another type, give its data with --data-file",
                ));
            };
            let event = event.id(id);
            let event_type = known_type(event_type).unwrap_or(event_type).to_owned();
            Ok(Outgoing {
                id: event.message_id().to_owned(),
                event_type,
                body: event.to_body(),
            })
        }
        Some(data) => {
            let data: &RawValue = serde_json::from_str(data).map_err(|e| {
                Failure::usage(format!("the --data-file content is not valid JSON: {e}"))
            })?;
            let event_type = normalize_type(event_type);
            if event_type.is_empty() {
                return Err(Failure::usage("the event type is empty"));
            }
            if !event_type
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
            {
                eprintln!(
                    "warning: `{event_type}` is not a type name as Knolyx writes them \
                     (letters, digits and _): sent as it is"
                );
            }
            #[derive(Serialize)]
            struct Envelope<'a> {
                id: &'a str,
                #[serde(rename = "type")]
                event_type: &'a str,
                data: &'a RawValue,
            }
            let body = serde_json::to_vec(&Envelope {
                id: &id,
                event_type: &event_type,
                data,
            })
            .map_err(|e| Failure::usage(format!("cannot encode the event: {e}")))?;
            Ok(Outgoing {
                id,
                event_type,
                body: Bytes::from(body),
            })
        }
    }
}

/// Reads `--data-file` (`-` is stdin).
pub(crate) fn read_data_file(path: &Path) -> Result<String, Failure> {
    let result = if path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).map(|_| text)
    } else {
        std::fs::read_to_string(path)
    };
    result.map_err(|e| Failure::usage(format!("cannot read --data-file {}: {e}", path.display())))
}

/// What one delivery got.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Report {
    /// 1-based number of the delivery.
    n: u32,
    /// HTTP status, when there was a response.
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<u16>,
    /// Whether the response was 2xx.
    accepted: bool,
    /// Whether the receiver marked it a duplicate.
    duplicate: bool,
    /// Response body excerpt.
    #[serde(skip_serializing_if = "Option::is_none")]
    body: Option<String>,
    /// Why there was no response.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    /// What kind of failure that was, for the hint.
    #[serde(skip)]
    cause: Option<Cause>,
    /// Milliseconds from sending the request to reading the whole response, to a tenth
    /// (as every duration of the report).
    ms: f64,
}

/// Why a delivery got no response, as far as the hint goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cause {
    /// No response within `--timeout`: the connection was taken, nothing answered.
    Timeout,
    /// The host name did not resolve.
    Dns,
    /// Nothing listens at that port.
    Refused,
    /// `https://` to a server that answered in plain HTTP.
    NotTls,
    /// Anything else.
    Other,
}

impl Report {
    fn failed(&self) -> bool {
        self.error.is_some()
    }

    fn rejected(&self) -> bool {
        self.status.is_some() && !self.accepted
    }

    /// One line of text output.
    fn line(&self, total: u32) -> String {
        let width = total.to_string().len();
        let n = format!("[{:>width$}/{total}]", self.n);
        match (&self.error, self.status) {
            (Some(error), _) => format!("{n} failed     no response: {error} ({:.1} ms)", self.ms),
            (None, Some(status)) => {
                let status = StatusCode::from_u16(status).map_or_else(
                    |_| status.to_string(),
                    |s| format!("{} {}", s.as_u16(), s.canonical_reason().unwrap_or("")),
                );
                let verdict = match (self.accepted, self.duplicate) {
                    (true, true) => "duplicate",
                    (true, false) => "accepted ",
                    (false, _) => "rejected ",
                };
                format!(
                    "{n} {verdict}  {}  duplicate: {:<3}  {:>6.1} ms  body: {}",
                    status.trim_end(),
                    if self.duplicate { "yes" } else { "no" },
                    self.ms,
                    self.body.as_deref().unwrap_or("(empty)")
                )
            }
            (None, None) => format!("{n} unknown"),
        }
    }
}

/// Totals over every delivery.
#[derive(Debug, Default, Clone, Copy, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Summary {
    deliveries: u32,
    accepted: u32,
    duplicates: u32,
    rejected: u32,
    failed: u32,
}

impl Summary {
    fn add(&mut self, report: &Report) {
        self.deliveries += 1;
        if report.failed() {
            self.failed += 1;
        } else if report.rejected() {
            self.rejected += 1;
        } else {
            self.accepted += 1;
            if report.duplicate {
                self.duplicates += 1;
            }
        }
    }

    /// The exit code: transport failures first, then rejections.
    pub(crate) fn exit_code(&self) -> u8 {
        if self.failed > 0 {
            exit::TRANSPORT
        } else if self.rejected > 0 {
            exit::REJECTED
        } else {
            exit::SUCCESS
        }
    }
}

/// Sends one request and times it until the whole response has been read.
async fn deliver(
    client: reqwest::Client,
    url: Url,
    token: HeaderValue,
    body: Bytes,
    n: u32,
) -> Report {
    let started = Instant::now();
    let result = async {
        let response = client
            .put(url)
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .header(TOKEN_HEADER, token)
            .body(body)
            .send()
            .await?;
        let status = response.status();
        let duplicate = response
            .headers()
            .get(DUPLICATE_HEADER)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| !v.trim().eq_ignore_ascii_case("false"));
        let body = response.bytes().await?;
        Ok::<_, reqwest::Error>((status, duplicate, body))
    }
    .await;
    let ms = ms(started.elapsed());
    match result {
        Ok((status, duplicate, body)) => Report {
            n,
            status: Some(status.as_u16()),
            accepted: status.is_success(),
            duplicate,
            body: excerpt(&body),
            error: None,
            cause: None,
            ms,
        },
        Err(e) => Report {
            n,
            status: None,
            accepted: false,
            duplicate: false,
            body: None,
            error: Some(transport_error(&e)),
            cause: Some(cause(&e)),
            ms,
        },
    }
}

/// Which failure `error` is, from its kind and its chain of causes.
fn cause(error: &reqwest::Error) -> Cause {
    if error.is_timeout() {
        return Cause::Timeout;
    }
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::ConnectionRefused
        {
            return Cause::Refused;
        }
        let text = cause.to_string();
        if text.starts_with("dns error") {
            return Cause::Dns;
        }
        // rustls, reading an HTTP response where a TLS record should be.
        if text.contains("InvalidContentType") {
            return Cause::NotTls;
        }
        source = cause.source();
    }
    Cause::Other
}

/// A transport error, said plainly.
fn transport_error(error: &reqwest::Error) -> String {
    let what = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    // reqwest's own message names the URL, already printed: keep the causes only.
    let mut causes = String::new();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let text = cause.to_string();
        if !causes.contains(&text) {
            let _ = write!(causes, ": {text}");
        }
        source = cause.source();
    }
    format!("{what}{causes}")
}

/// The response body on one short line; `None` when empty.
fn excerpt(body: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(body);
    let text: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.is_empty() {
        return None;
    }
    let mut chars = text.char_indices();
    Some(match chars.nth(BODY_EXCERPT_CHARS) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text,
    })
}

/// Runs `send`.
pub(crate) async fn run(args: SendArgs) -> Result<ExitCode, Failure> {
    let given = args.url.trim();
    // `localhost:3000/…` parses with the scheme `localhost`; `127.0.0.1:3000/…` not at all.
    let with_scheme = || {
        format!(
            "add the scheme: --url http://{}",
            redact_url(&format!("http://{given}")).trim_start_matches("http://")
        )
    };
    let url = Url::parse(given).map_err(|e| {
        let failure = Failure::usage(format!("--url `{}` is not a URL: {e}", redact_url(given)));
        if given.contains("://") {
            failure
        } else {
            failure.with_hint(with_scheme())
        }
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        let failure = Failure::usage(format!(
            "--url must be http or https, not `{}`",
            url.scheme()
        ));
        return Err(if given.contains("://") {
            failure
        } else {
            failure.with_hint(with_scheme())
        });
    }
    // The URL as it is printed: without its credentials (still sent, as basic auth).
    let shown_url = redact_url(url.as_str()).into_owned();
    if args.token.token_file.as_deref() == Some(Path::new("-"))
        && args.data_file.as_deref() == Some(Path::new("-"))
    {
        return Err(Failure::usage(
            "--token-file - and --data-file - cannot both read stdin",
        ));
    }
    let token = token::given_or_env(&args.token)?;
    let mut token = HeaderValue::from_str(token.expose_secret())
        .map_err(|_| Failure::usage("the token cannot be sent as an HTTP header value"))?;
    token.set_sensitive(true);

    let data = args.data_file.as_deref().map(read_data_file).transpose()?;
    let event = build_event(&args.event_type, args.id.as_deref(), data.as_deref())?;

    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(args.timeout)
        .user_agent(concat!("knolyx-webhook/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| Failure::usage(format!("cannot build the HTTP client: {e}")))?;

    let total = args.times.saturating_mul(args.concurrency);
    let note = |text: &str| {
        if args.json {
            eprintln!("{text}");
        } else {
            println!("{text}");
        }
    };
    let shape = match (args.times, args.concurrency) {
        (1, 1) => "1 delivery".to_owned(),
        (times, 1) => format!("{times} deliveries, one after the other"),
        (1, c) => format!("{c} deliveries at once"),
        (times, c) => format!("{total} deliveries: {times} rounds of {c} at once"),
    };
    note(&format!(
        "Sending {} {} to {shown_url} ({shape})",
        event.event_type, event.id
    ));
    if args.show_body {
        note(&String::from_utf8_lossy(&event.body));
    }

    let started = Instant::now();
    let mut summary = Summary::default();
    let mut reports = Vec::with_capacity(total as usize);
    let mut n = 0;
    for _ in 0..args.times {
        let mut round = JoinSet::new();
        let barrier = Arc::new(Barrier::new(args.concurrency as usize));
        for _ in 0..args.concurrency {
            n += 1;
            let (client, url, token, body, barrier) = (
                client.clone(),
                url.clone(),
                token.clone(),
                event.body.clone(),
                Arc::clone(&barrier),
            );
            round.spawn(async move {
                barrier.wait().await;
                deliver(client, url, token, body, n).await
            });
        }
        while let Some(joined) = round.join_next().await {
            let report = joined.unwrap_or_else(|e| Report {
                n: 0,
                status: None,
                accepted: false,
                duplicate: false,
                body: None,
                error: Some(format!("delivery task failed: {e}")),
                cause: Some(Cause::Other),
                ms: 0.0,
            });
            summary.add(&report);
            if !args.json {
                println!("{}", report.line(total));
            }
            reports.push(report);
        }
    }
    let elapsed = started.elapsed();
    let code = summary.exit_code();

    if args.json {
        reports.sort_by_key(|r| r.n);
        let report = serde_json::json!({
            "id": event.id,
            "type": event.event_type,
            "url": shown_url,
            "deliveries": reports,
            "summary": summary,
            "ms": ms(elapsed),
            "exitCode": code,
        });
        println!("{report}");
    } else {
        println!("{}", summary_line(&summary, elapsed));
    }
    if let Some(hint) = hint(&reports, &url, args.timeout) {
        eprintln!("hint: {hint}");
    }
    Ok(ExitCode::from(code))
}

/// The hint that fits the first failure, if any: no response (by its cause), then 401 and
/// 404.
fn hint(reports: &[Report], url: &Url, timeout: Duration) -> Option<String> {
    let host = url.host_str().unwrap_or_default();
    let at = match url.port_or_known_default() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    };
    let route = RECEIVER_ROUTE;
    let mut on_route = url.clone();
    on_route.set_path(route);
    on_route.set_query(None);
    let on_route = redact_url(on_route.as_str()).into_owned();
    if let Some(cause) = reports.iter().find_map(|r| r.cause) {
        return Some(match cause {
            Cause::Timeout => format!(
                "no response within {}s (--timeout): something at {at} took the connection \
                 but did not answer: a receiver stuck in its handler, or another program on \
                 that port",
                timeout.as_secs_f64()
            ),
            Cause::Dns => format!(
                "the host `{host}` could not be resolved (DNS): check --url's host; a receiver \
                 on this machine is at 127.0.0.1 or localhost"
            ),
            Cause::Refused => {
                format!("nothing listens at {at}: is the receiver running, on that port?")
            }
            Cause::NotTls => {
                let mut plain = url.clone();
                let _ = plain.set_scheme("http");
                format!(
                    "the server at {at} answered in plain HTTP, not TLS: use http:// \
                     (--url {})",
                    redact_url(plain.as_str())
                )
            }
            Cause::Other => {
                format!(
                    "is the receiver running and listening at {}?",
                    redact_url(url.as_str())
                )
            }
        });
    }
    if reports.iter().any(|r| r.status == Some(401)) {
        return Some(
            "401 means the receiver refused the token: give it the same token \
             (KNOLYX_WEBHOOK_TOKEN) as --token"
                .to_owned(),
        );
    }
    if reports.iter().any(|r| r.status == Some(404)) {
        return Some(if url.path() == route {
            format!(
                "404: the server at {at} serves nothing at {route}: check your receiver's route"
            )
        } else {
            format!(
                "404: nothing is served at {}; the example receivers serve {route} \
                 (--url {on_route})",
                url.path()
            )
        });
    }
    None
}

/// Milliseconds, to a tenth: the one format of every duration `send` prints.
fn ms(duration: Duration) -> f64 {
    (duration.as_secs_f64() * 1000.0 * 10.0).round() / 10.0
}

/// The closing line of text output: only the counts that are not zero.
fn summary_line(summary: &Summary, elapsed: Duration) -> String {
    let plural = |n: u32, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    let mut parts = Vec::new();
    if summary.accepted > 0 {
        parts.push(match summary.duplicates {
            0 => format!("{} accepted", summary.accepted),
            d => format!(
                "{} accepted ({})",
                summary.accepted,
                plural(d, "duplicate", "duplicates")
            ),
        });
    }
    if summary.rejected > 0 {
        parts.push(format!("{} rejected", summary.rejected));
    }
    if summary.failed > 0 {
        parts.push(format!("{} failed", summary.failed));
    }
    format!(
        "{}: {}, in {:.1} ms",
        plural(summary.deliveries, "delivery", "deliveries"),
        parts.join(", "),
        ms(elapsed)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_type_builds_in_either_spelling() {
        for name in TestEvent::known_types() {
            let kebab = name.to_ascii_lowercase().replace('_', "-");
            for spelling in [name.to_owned(), kebab] {
                let event = build_event(&spelling, Some("m-1"), None).unwrap();
                assert_eq!(event.event_type, name);
                assert_eq!(event.id, "m-1");
                let json: serde_json::Value = serde_json::from_slice(&event.body).unwrap();
                assert_eq!(json["id"], "m-1");
                assert_eq!(json["type"], name);
            }
        }
    }

    #[test]
    fn unknown_types_need_data() {
        let failure = build_event("CERTIFICATE_ISSUED", None, None).unwrap_err();
        assert_eq!(failure.code, exit::USAGE);
        assert!(failure.message.contains("COURSE_PAYMENT_RECEIVED"));

        let event = build_event("CERTIFICATE_ISSUED", Some("c-1"), Some(r#"{"n": 1}"#)).unwrap();
        assert_eq!(
            &event.body[..],
            br#"{"id":"c-1","type":"CERTIFICATE_ISSUED","data":{"n": 1}}"#
        );
        let event = build_event("course-started", None, Some("{}")).unwrap();
        assert_eq!(event.event_type, "COURSE_STARTED");
        assert!(build_event("X", None, Some("{nope")).is_err());
        // Custom names are normalised like the known ones.
        let event = build_event(" certificate-issued", Some("c-2"), Some("{}")).unwrap();
        assert_eq!(event.event_type, "CERTIFICATE_ISSUED");
    }

    #[test]
    fn ids_the_receiver_would_refuse_are_refused() {
        let long = "x".repeat(256);
        for id in ["", long.as_str(), "a\nb"] {
            let failure = build_event("ping", Some(id), None).unwrap_err();
            assert_eq!(failure.code, exit::USAGE, "{id:?}");
            assert!(failure.message.starts_with("--id: "), "{}", failure.message);
        }
        assert!(build_event("ping", Some(&"x".repeat(255)), None).is_ok());
    }

    #[test]
    fn excerpts_are_short_single_lines() {
        assert_eq!(excerpt(b""), None);
        assert_eq!(excerpt(b" a\n b "), Some("a b".to_owned()));
        let long = "x".repeat(500);
        assert_eq!(
            excerpt(long.as_bytes()).unwrap().chars().count(),
            BODY_EXCERPT_CHARS + 1
        );
    }

    #[test]
    fn summary_decides_the_exit_code() {
        let ok = Report {
            n: 1,
            status: Some(200),
            accepted: true,
            duplicate: false,
            body: None,
            error: None,
            cause: None,
            ms: 1.0,
        };
        let rejected = Report {
            status: Some(503),
            accepted: false,
            ..ok.clone()
        };
        let failed = Report {
            status: None,
            error: Some("x".into()),
            accepted: false,
            ..ok.clone()
        };
        let mut s = Summary::default();
        s.add(&ok);
        assert_eq!(s.exit_code(), exit::SUCCESS);
        s.add(&rejected);
        assert_eq!(s.exit_code(), exit::REJECTED);
        s.add(&failed);
        assert_eq!(s.exit_code(), exit::TRANSPORT);
        assert_eq!(
            summary_line(&s, Duration::from_millis(2)),
            "3 deliveries: 1 accepted, 1 rejected, 1 failed, in 2.0 ms"
        );
        let mut only_ok = Summary::default();
        only_ok.add(&ok);
        only_ok.add(&Report {
            duplicate: true,
            ..ok.clone()
        });
        assert_eq!(
            summary_line(&only_ok, Duration::from_millis(3)),
            "2 deliveries: 2 accepted (1 duplicate), in 3.0 ms"
        );
    }
}
