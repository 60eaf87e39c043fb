//! `sandbox` (serve until SIGINT/SIGTERM) and `sandbox trigger` (ask a running sandbox to
//! deliver an event, print its attempts as they stream back).

use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use knolyx_webhook_client::redact_url;
use reqwest::Url;
use serde_json::value::RawValue;

use super::{AttemptLog, Sandbox, TRIGGER_PATH, TriggerLine, TriggerSummary};
use crate::cli::{SandboxArgs, SandboxCommand, SandboxServeArgs, TriggerArgs};
use crate::exit::{self, Failure};
use crate::send::{build_event, read_data_file};
use crate::webhooks::{check_api, error_chain};

/// Runs `sandbox` or `sandbox trigger`.
pub(crate) async fn run(args: SandboxArgs) -> Result<ExitCode, Failure> {
    match args.command {
        Some(SandboxCommand::Trigger(trigger)) => run_trigger(trigger).await,
        None => serve(args.serve).await,
    }
}

/// Serves until SIGINT or SIGTERM.
async fn serve(args: SandboxServeArgs) -> Result<ExitCode, Failure> {
    let mut builder = Sandbox::builder()
        .strict(args.strict)
        .attempt_timeout(args.attempt_timeout)
        .log_attempts(if args.json {
            AttemptLog::Json
        } else {
            AttemptLog::Text
        });
    if let Some(key) = &args.api_key {
        builder = builder.api_key(key.as_str());
    }
    if let Some(path) = &args.state {
        builder = builder.state_file(path);
    }
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, args.port));
    let sandbox = builder
        .bind(addr)
        .await
        .map_err(|e| Failure::usage(error_chain(&e)))?;
    let signal = terminated();
    // Notes go to stderr: stdout has one line per delivery attempt only.
    eprintln!("Knolyx sandbox listening on {}", sandbox.url());
    eprintln!(
        "  Webhook API: {}/public/api/v1/webhook (X-Api-Key: {}, X-Project-Id: any)",
        sandbox.url(),
        if args.api_key.is_some() {
            "the --api-key value"
        } else {
            "any"
        }
    );
    eprintln!(
        "  webhooks kept {}; URLs: {}",
        match &args.state {
            Some(path) => format!("in {}", path.display()),
            None => "in memory".to_owned(),
        },
        if args.strict {
            "https and not local (--strict)"
        } else {
            "any http(s), localhost included"
        }
    );
    eprintln!(
        "  trigger events with: knolyx-webhook sandbox trigger TYPE --api-url {}",
        sandbox.url()
    );
    let signal = signal.await;
    eprintln!("{signal}: stopping the sandbox");
    sandbox.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

/// Resolves on the first SIGTERM or SIGINT (Ctrl-C), with its name. The handlers are
/// installed when this is called, before the first poll: call it before saying the
/// sandbox is ready, so a signal sent right after is not missed.
fn terminated() -> impl std::future::Future<Output = &'static str> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let handlers = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        );
        async move {
            match handlers {
                (Ok(mut term), Ok(mut int)) => tokio::select! {
                    _ = term.recv() => "SIGTERM",
                    _ = int.recv() => "SIGINT",
                },
                _ => {
                    let _ = tokio::signal::ctrl_c().await;
                    "Ctrl-C"
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
            "Ctrl-C"
        }
    }
}

/// Asks the sandbox at `--api-url` to deliver the event, prints every attempt as it
/// streams back, then the summary.
async fn run_trigger(args: TriggerArgs) -> Result<ExitCode, Failure> {
    check_api(&args.api)?;
    let base = Url::parse(args.api.api_url.trim())
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
        .ok_or_else(|| {
            Failure::usage(format!(
                "--api-url `{}` is not an http(s) URL",
                redact_url(&args.api.api_url)
            ))
        })?;
    let shown = redact_url(base.as_str()).trim_end_matches('/').to_owned();
    let url = base
        .join(TRIGGER_PATH)
        .map_err(|e| Failure::usage(format!("--api-url: {e}")))?;
    let data = args.data_file.as_deref().map(read_data_file).transpose()?;
    let event = build_event(&args.event_type, args.id.as_deref(), data.as_deref())?;
    let schedule: Vec<u64> = if args.no_retry {
        Vec::new()
    } else {
        args.retry_schedule.iter().map(millis).collect()
    };
    let event_json: &RawValue = serde_json::from_slice(&event.body)
        .map_err(|e| Failure::usage(format!("cannot encode the event: {e}")))?;
    let request = serde_json::json!({
        "event": event_json,
        "retryScheduleMs": schedule,
        "duplicateRate": args.duplicate_rate,
        "attemptTimeoutMs": millis(&args.attempt_timeout),
    });

    let unreachable = |e: &reqwest::Error| Failure {
        code: exit::TRANSPORT,
        message: format!("cannot reach the sandbox at {shown}: {}", error_chain(e)),
        hint: Some("start it with `knolyx-webhook sandbox`, or give its --api-url".to_owned()),
    };
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| Failure::usage(format!("cannot build the HTTP client: {e}")))?;
    let mut key = reqwest::header::HeaderValue::from_str(args.api.api_key.trim())
        .map_err(|_| Failure::usage("the API key cannot be sent as an HTTP header value"))?;
    key.set_sensitive(true);
    let sent = http
        .post(url)
        .header("X-Api-Key", key)
        .header("X-Project-Id", args.api.project_id.trim())
        .json(&request)
        .send();
    let mut response = tokio::time::timeout(args.api.timeout, sent)
        .await
        .map_err(|_| Failure {
            code: exit::TRANSPORT,
            message: format!(
                "the sandbox at {shown} did not answer within {:?}",
                args.api.timeout
            ),
            hint: None,
        })?
        .map_err(|e| unreachable(&e))?;
    let status = response.status();
    if !status.is_success() {
        let body = response.text().await.unwrap_or_default();
        let hint = matches!(status.as_u16(), 401 | 400)
            .then(|| "check --api-key and --project-id (KNOLYX_API_KEY, KNOLYX_PROJECT_ID)");
        return Err(Failure {
            code: exit::REJECTED,
            message: format!("the sandbox refused the trigger: {status}: {}", body.trim()),
            hint: hint.map(str::to_owned),
        });
    }
    if !args.json {
        println!(
            "Triggering {} {} through {shown}",
            event.event_type, event.id
        );
    }

    let mut pending = Vec::new();
    let mut summary = None;
    while let Some(chunk) = response.chunk().await.map_err(|e| unreachable(&e))? {
        pending.extend_from_slice(&chunk);
        while let Some(end) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            if let Some(done) = show_line(&line[..end], args.json)? {
                summary = Some(done);
            }
        }
    }
    let Some(summary) = summary else {
        return Err(Failure {
            code: exit::TRANSPORT,
            message: "the sandbox stopped before every delivery was settled".to_owned(),
            hint: None,
        });
    };
    if summary.webhooks == 0 {
        eprintln!(
            "note: project {} has no webhooks in this sandbox: nothing was delivered \
             (register one with `knolyx-webhook webhooks create --allow-local …`)",
            args.api.project_id.trim()
        );
        return Ok(ExitCode::from(exit::REJECTED));
    }
    Ok(ExitCode::from(if summary.failed == 0 {
        exit::SUCCESS
    } else {
        exit::REJECTED
    }))
}

/// Prints one streamed line; returns the summary when it is the last one.
fn show_line(line: &[u8], json: bool) -> Result<Option<TriggerSummary>, Failure> {
    let parsed: TriggerLine = serde_json::from_slice(line).map_err(|e| {
        Failure::rejected(format!(
            "the sandbox sent a line that is not a trigger report: {e}"
        ))
    })?;
    if json {
        println!("{}", String::from_utf8_lossy(line));
    }
    match parsed {
        TriggerLine::Attempt(attempt) => {
            if !json {
                println!("{}", attempt.line());
            }
            Ok(None)
        }
        TriggerLine::Summary(summary) => {
            if !json {
                let plural =
                    |n: usize, one: &str| format!("{n} {one}{}", if n == 1 { "" } else { "s" });
                // Counts of zero are left out: "1 webhook, 1 delivered, 3 attempts".
                let mut parts = vec![plural(summary.webhooks, "webhook")];
                parts.extend(
                    [(summary.delivered, "delivered"), (summary.failed, "failed")]
                        .into_iter()
                        .filter(|(n, _)| *n > 0)
                        .map(|(n, what)| format!("{n} {what}")),
                );
                parts.push(plural(summary.attempts, "attempt"));
                println!(
                    "{} {}: {}",
                    summary.event_type,
                    summary.message_id,
                    parts.join(", ")
                );
            }
            Ok(Some(summary))
        }
    }
}

fn millis(duration: &Duration) -> u64 {
    duration.as_millis().try_into().unwrap_or(u64::MAX)
}
