//! `webhooks create|list|get|delete|ping`: calls of the Knolyx Webhook API.

use std::fmt::Write as _;
use std::process::ExitCode;

use knolyx_webhook_client::{CreateWebhook, Error, KnolyxClient, Webhook, WebhookId, redact_url};
use serde_json::{Value, json};

use crate::cli::{ApiArgs, WebhooksCommand};
use crate::exit::{self, Failure};
use crate::token;

/// Runs a `webhooks` subcommand.
pub(crate) async fn run(command: WebhooksCommand) -> Result<ExitCode, Failure> {
    match command {
        WebhooksCommand::Create(args) => {
            let token = token::given(&args.token)?;
            let client = client(&args.api, args.allow_local)?;
            let generated = token.is_none();
            let request = match token {
                Some(token) => CreateWebhook::new(args.name, args.url, token.expose_secret()),
                None => CreateWebhook::with_generated_token(args.name, args.url),
            };
            let webhook = shown(client.create(&request).await.map_err(api_failure)?);
            let token = generated.then(|| request.security_token());
            if args.output.json {
                print_json(&json!({ "webhook": webhook, "securityToken": token }));
                if generated {
                    eprintln!("{}", keep_token_note());
                }
            } else {
                print!("{}", render_created(&webhook, token));
            }
        }
        WebhooksCommand::List(args) => {
            let webhooks = client(&args.api, false)?
                .list()
                .await
                .map_err(api_failure)?;
            let webhooks: Vec<Webhook> = webhooks.into_iter().map(shown).collect();
            if args.output.json {
                print_json(&json!(webhooks));
            } else {
                print!("{}", render_table(&webhooks));
            }
        }
        WebhooksCommand::Get(args) => {
            let id = webhook_id(&args.id)?;
            let webhook = shown(
                client(&args.api, false)?
                    .get(&id)
                    .await
                    .map_err(api_failure)?,
            );
            if args.output.json {
                print_json(&json!(webhook));
            } else {
                print!("{}", render_webhook(&webhook));
            }
        }
        WebhooksCommand::Delete(args) => {
            let id = webhook_id(&args.id)?;
            client(&args.api, false)?
                .delete(&id)
                .await
                .map_err(api_failure)?;
            if args.output.json {
                print_json(&json!({ "deleted": id }));
            } else {
                println!("Deleted webhook {id}.");
            }
        }
        WebhooksCommand::Ping(args) => {
            let client = client(&args.api, false)?;
            match args.id {
                Some(id) => {
                    let id = webhook_id(&id)?;
                    client.ping(&id).await.map_err(api_failure)?;
                    if args.output.json {
                        print_json(&json!({ "pinged": id }));
                    } else {
                        println!("Knolyx will send a PING to webhook {id}.");
                    }
                }
                None => {
                    client.ping_all().await.map_err(api_failure)?;
                    if args.output.json {
                        print_json(&json!({ "pinged": "all" }));
                    } else {
                        println!("Knolyx will send a PING to every webhook of the project.");
                    }
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Builds the API client from the flags (or their environment variables); `allow_local`
/// lets `create` send URLs Knolyx refuses (for the sandbox).
fn client(api: &ApiArgs, allow_local: bool) -> Result<KnolyxClient, Failure> {
    check_api(api)?;
    KnolyxClient::builder(&api.api_url, api.api_key.as_str(), api.project_id.as_str())
        .timeout(api.timeout)
        .allow_local_webhook_urls(allow_local)
        .build()
        .map_err(api_failure)
}

/// Refuses a missing (or empty) API URL, API key or project id, naming every one missing
/// with its flag and its environment variable.
pub(crate) fn check_api(api: &ApiArgs) -> Result<(), Failure> {
    let missing: Vec<&str> = [
        (&api.api_url, "the API URL (--api-url or KNOLYX_API_URL)"),
        (&api.api_key, "the API key (--api-key or KNOLYX_API_KEY)"),
        (
            &api.project_id,
            "the project id (--project-id or KNOLYX_PROJECT_ID)",
        ),
    ]
    .into_iter()
    .filter(|(value, _)| value.trim().is_empty())
    .map(|(_, what)| what)
    .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(Failure::usage(format!("missing {}", missing.join(", "))))
}

/// A webhook id from the command line.
fn webhook_id(text: &str) -> Result<WebhookId, Failure> {
    let text = text.trim();
    if text.is_empty() {
        return Err(Failure::usage("the webhook id is empty"));
    }
    Ok(WebhookId::from(text))
}

/// Maps a client error to its exit code and message. The client's messages never contain
/// the API key.
fn api_failure(error: Error) -> Failure {
    let (code, hint) = match &error {
        Error::InvalidWebhookUrl(_) => (
            exit::USAGE,
            Some(
                "Knolyx only delivers to public https URLs. To try a receiver on this \
                 machine, use `knolyx-webhook send` (no tunnel needed) or a local \
                 `knolyx-webhook sandbox` (with `create --allow-local`), or expose it \
                 through a tunnel and register the tunnel's https URL.",
            ),
        ),
        Error::InvalidSecurityToken(_)
        | Error::InvalidBaseUrl { .. }
        | Error::InvalidWebhookId { .. }
        | Error::InvalidHeader { .. }
        | Error::ClientBuild(_) => (exit::USAGE, None),
        Error::Transport { .. } => (
            exit::TRANSPORT,
            Some("check --api-url / KNOLYX_API_URL and your network"),
        ),
        Error::Status { status, .. } if matches!(status.as_u16(), 401 | 403) => (
            exit::REJECTED,
            Some("check the API key and project id (KNOLYX_API_KEY, KNOLYX_PROJECT_ID)"),
        ),
        _ => (exit::REJECTED, None),
    };
    Failure {
        code,
        message: error_chain(&error),
        hint: hint.map(str::to_owned),
    }
}

/// An error and its sources, on one line.
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            let _ = write!(text, ": {cause_text}");
        }
        source = cause.source();
    }
    text
}

/// A webhook as it may be printed: its URL without credentials.
fn shown(mut webhook: Webhook) -> Webhook {
    webhook.url = webhook.url.map(|url| redact_url(&url).into_owned());
    webhook
}

/// Prints a JSON value on one line of stdout.
fn print_json(value: &Value) {
    println!("{value}");
}

/// The note printed with a generated token.
fn keep_token_note() -> &'static str {
    "Keep this security token secret: it is shown only once. Set it as \
     KNOLYX_WEBHOOK_TOKEN in your receiver; Knolyx sends it in the \
     X-Webhook-Security-Token header of every event."
}

/// Text output of `create`.
fn render_created(webhook: &Webhook, generated_token: Option<&str>) -> String {
    let mut out = String::new();
    match &webhook.id {
        Some(id) => {
            let _ = writeln!(out, "Created webhook {id}.");
        }
        None => out.push_str("Created the webhook (the API returned no id).\n"),
    }
    out.push_str(&render_fields(webhook, "  "));
    if let Some(token) = generated_token {
        out.push('\n');
        out.push_str("Security token:\n");
        let _ = writeln!(out, "  {token}");
        let _ = writeln!(out, "{}", keep_token_note());
    }
    out.push_str("Knolyx sends a PING to the URL now to check the connection.\n");
    out
}

/// Text output of `get`.
fn render_webhook(webhook: &Webhook) -> String {
    render_fields(webhook, "")
}

/// `label: value` lines of a webhook, extra fields included.
fn render_fields(webhook: &Webhook, indent: &str) -> String {
    let mut rows: Vec<(String, String)> = vec![
        ("id".into(), display_id(webhook)),
        ("name".into(), or_dash(webhook.name.as_deref())),
        ("url".into(), or_dash(webhook.url.as_deref())),
    ];
    for (key, value) in &webhook.extra {
        if key == "securityToken" {
            continue;
        }
        let value = match value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        rows.push((key.clone(), value));
    }
    let width = rows
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for (key, value) in rows {
        let _ = writeln!(
            out,
            "{indent}{:<width$}  {value}",
            format!("{key}:"),
            width = width + 1
        );
    }
    out
}

/// Text output of `list`: an aligned table.
fn render_table(webhooks: &[Webhook]) -> String {
    if webhooks.is_empty() {
        return "No webhooks.\n".to_owned();
    }
    let rows: Vec<[String; 3]> = webhooks
        .iter()
        .map(|w| {
            [
                display_id(w),
                or_dash(w.name.as_deref()),
                or_dash(w.url.as_deref()),
            ]
        })
        .collect();
    let header = ["ID", "NAME", "URL"];
    let mut widths = header.map(|h| h.chars().count());
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: [&str; 3]| {
        let text = format!(
            "{:<w0$}  {:<w1$}  {}",
            cells[0],
            cells[1],
            cells[2],
            w0 = widths[0],
            w1 = widths[1]
        );
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(header);
    for row in &rows {
        line([&row[0], &row[1], &row[2]]);
    }
    out
}

fn display_id(webhook: &Webhook) -> String {
    webhook
        .id
        .as_ref()
        .map_or_else(|| "-".to_owned(), ToString::to_string)
}

fn or_dash(value: Option<&str>) -> String {
    match value {
        Some(v) if !v.is_empty() => v.to_owned(),
        _ => "-".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn webhook(value: Value) -> Webhook {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn the_table_is_aligned() {
        let table = render_table(&[
            webhook(json!({"id": 7, "name": "orders", "url": "https://a.example/x"})),
            webhook(json!({"id": "abc-1234", "url": "https://b.example/y"})),
        ]);
        assert_eq!(
            table,
            "ID        NAME    URL\n\
             7         orders  https://a.example/x\n\
             abc-1234  -       https://b.example/y\n"
        );
        assert_eq!(render_table(&[]), "No webhooks.\n");
    }

    #[test]
    fn fields_include_extra_ones_but_never_the_token() {
        let text = render_webhook(&webhook(json!({
            "id": 7, "name": "orders", "url": "https://a.example/x",
            "active": true, "securityToken": "s3cret"
        })));
        assert_eq!(
            text,
            "id:      7\nname:    orders\nurl:     https://a.example/x\nactive:  true\n"
        );
    }
}
