//! The Grafana dashboard (`ops/grafana/knolyx-webhook.json`) and the Prometheus alert rules
//! (`ops/prometheus/alerts.yml`): their structure, and every `knolyx_webhook_*` metric and
//! label value they use is one the code emits (the names of
//! `knolyx_webhook_core::metrics`). With `promtool` on the PATH (or `KNOLYX_PROMTOOL`),
//! the rules also pass `promtool check rules`; Grafana ships no offline validator.

use std::collections::BTreeSet;
use std::path::PathBuf;

use knolyx_webhook_core::inbox::EntryState;
use knolyx_webhook_core::metrics as names;
use serde_json::Value;

fn ops(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../ops")
        .join(path)
}

/// Every series name the code emits, as Prometheus sees them.
fn emitted() -> BTreeSet<String> {
    let mut all: BTreeSet<String> = names::COUNTERS
        .iter()
        .chain(names::GAUGES)
        .map(|n| (*n).to_owned())
        .collect();
    for histogram in names::HISTOGRAMS {
        for suffix in ["_bucket", "_sum", "_count"] {
            all.insert(format!("{histogram}{suffix}"));
        }
    }
    all
}

/// The values a label of the code's may take (`le` is the histograms' own).
fn label_values(label: &str) -> Option<Vec<&'static str>> {
    Some(match label {
        "outcome" => names::OUTCOMES.to_vec(),
        "event_type" => names::EVENT_TYPES.to_vec(),
        "operation" => names::STORE_OPERATIONS.to_vec(),
        "result" => names::ATTEMPT_RESULTS.to_vec(),
        "state" => [
            EntryState::Pending,
            EntryState::Running,
            EntryState::Dead,
            EntryState::Done,
        ]
        .map(EntryState::as_str)
        .to_vec(),
        _ => return None,
    })
}

/// Checks a PromQL expression: each `knolyx_webhook_*` name is emitted, and each matcher
/// `label="v"` or `label=~"a|b"` on a label of the code's names values it takes. Returns the
/// names used.
fn check_expr(expr: &str, context: &str) -> BTreeSet<String> {
    let emitted = emitted();
    let bytes = expr.as_bytes();
    let mut used = BTreeSet::new();
    let mut at = 0;
    while let Some(found) = expr[at..].find("knolyx_webhook_") {
        let start = at + found;
        let end = expr[start..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .map_or(expr.len(), |n| start + n);
        let name = &expr[start..end];
        assert!(
            emitted.contains(name),
            "{context}: {name} is not a metric the code emits ({emitted:?})"
        );
        used.insert(name.to_owned());
        at = end;
    }
    // Matchers: `label="…"` and `label=~"…"`.
    let mut i = 0;
    let matcher = |from: usize| {
        let plain = expr[from..].find("=\"");
        let regex = expr[from..].find("=~\"");
        plain.into_iter().chain(regex).min().map(|n| from + n)
    };
    while let Some(eq) = matcher(i) {
        let regex = bytes.get(eq + 1) == Some(&b'~');
        let open = if regex { eq + 2 } else { eq + 1 };
        let close = open + 1 + expr[open + 1..].find('"').expect("a closing quote");
        let label_start = expr[..eq]
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .map_or(0, |n| n + 1);
        let label = &expr[label_start..eq];
        let value = &expr[open + 1..close];
        if let Some(allowed) = label_values(label) {
            let values: Vec<&str> = if regex {
                value.split('|').collect()
            } else {
                vec![value]
            };
            for v in values {
                assert!(
                    allowed.contains(&v),
                    "{context}: {label}={v:?} is not a value the code emits ({allowed:?})"
                );
            }
        }
        i = close + 1;
    }
    used
}

fn duration(text: &str) -> bool {
    let digits = text.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &text[digits.len()..];
    !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && ["ms", "s", "m", "h", "d", "w", "y"].contains(&unit)
}

#[test]
fn the_alert_rules_use_only_emitted_metrics_and_cover_the_issues() {
    let text = std::fs::read_to_string(ops("prometheus/alerts.yml")).unwrap();
    let rules: serde_norway::Value = serde_norway::from_str(&text).unwrap();
    let groups = rules["groups"].as_sequence().expect("groups: a list");
    assert!(!groups.is_empty());
    let mut alerts = BTreeSet::new();
    let mut exprs = Vec::new();
    for group in groups {
        assert!(group["name"].as_str().is_some_and(|n| !n.is_empty()));
        for rule in group["rules"].as_sequence().expect("rules: a list") {
            let alert = rule["alert"].as_str().expect("alert: a name");
            assert!(alerts.insert(alert.to_owned()), "{alert} twice");
            let expr = rule["expr"].as_str().expect("expr");
            check_expr(expr, alert);
            assert!(duration(rule["for"].as_str().expect("for")), "{alert}: for");
            let severity = rule["labels"]["severity"].as_str();
            assert!(
                matches!(severity, Some("warning" | "critical")),
                "{alert}: severity"
            );
            for annotation in ["summary", "description"] {
                assert!(
                    rule["annotations"][annotation]
                        .as_str()
                        .is_some_and(|t| !t.trim().is_empty()),
                    "{alert}: {annotation}"
                );
            }
            let mapping = rule.as_mapping().unwrap();
            for key in mapping.keys() {
                let key = key.as_str().unwrap();
                assert!(
                    ["alert", "expr", "for", "labels", "annotations"].contains(&key),
                    "{alert}: unknown field {key}"
                );
            }
            exprs.push(expr.to_owned());
        }
    }
    // What the issue asks to alert on: token rejections, 503s, handler failures, inbox
    // backlog age, dead entries.
    for needed in [
        r#"outcome="unauthorized""#,
        r#"outcome="store_unavailable""#,
        r#"outcome="handler_failed""#,
        names::INBOX_OLDEST_PENDING_SECONDS,
        r#"knolyx_webhook_inbox_entries{state="dead"}"#,
    ] {
        assert!(
            exprs.iter().any(|e| e.contains(needed)),
            "no alert on {needed}"
        );
    }
    promtool(&[
        "check",
        "rules",
        ops("prometheus/alerts.yml").to_str().unwrap(),
    ]);
}

/// Runs `promtool` when installed (`KNOLYX_PROMTOOL`, else `promtool` on the PATH).
fn promtool(args: &[&str]) {
    let program = std::env::var("KNOLYX_PROMTOOL").unwrap_or_else(|_| "promtool".to_owned());
    match std::process::Command::new(&program).args(args).output() {
        Ok(output) => assert!(
            output.status.success(),
            "promtool {args:?}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
        Err(e) if std::env::var_os("KNOLYX_PROMTOOL").is_some() => {
            panic!("KNOLYX_PROMTOOL={program} cannot run: {e}")
        }
        Err(_) => {
            eprintln!("promtool is not installed: the rules were checked by their schema only")
        }
    }
}

#[test]
fn the_dashboard_uses_only_emitted_metrics_and_every_panel_has_a_query() {
    let text = std::fs::read_to_string(ops("grafana/knolyx-webhook.json")).unwrap();
    let dashboard: Value = serde_json::from_str(&text).unwrap();
    for field in ["uid", "title"] {
        assert!(
            dashboard[field].as_str().is_some_and(|t| !t.is_empty()),
            "{field}"
        );
    }
    assert!(dashboard["schemaVersion"].as_u64().is_some());
    let variables = dashboard["templating"]["list"].as_array().unwrap();
    assert!(
        variables
            .iter()
            .any(|v| v["type"] == "datasource" && v["query"] == "prometheus"),
        "a Prometheus data source variable"
    );
    let panels = dashboard["panels"].as_array().expect("panels");
    let mut ids = BTreeSet::new();
    let mut used = BTreeSet::new();
    for panel in panels {
        let title = panel["title"].as_str().expect("a title");
        assert!(
            ids.insert(panel["id"].as_u64().expect("an id")),
            "{title}: id twice"
        );
        assert!(panel["type"].as_str().is_some(), "{title}: type");
        for g in ["h", "w", "x", "y"] {
            assert!(
                panel["gridPos"][g].as_u64().is_some(),
                "{title}: gridPos.{g}"
            );
        }
        assert!(
            panel["gridPos"]["x"].as_u64().unwrap() + panel["gridPos"]["w"].as_u64().unwrap() <= 24
        );
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{title}: no query");
        for target in targets {
            assert!(target["refId"].as_str().is_some(), "{title}: refId");
            let expr = target["expr"].as_str().expect("expr");
            used.extend(check_expr(expr, title));
        }
    }
    // Every metric the code emits is on the dashboard.
    for name in names::COUNTERS.iter().chain(names::GAUGES) {
        assert!(used.contains(*name), "{name} is on no panel");
    }
    for name in names::HISTOGRAMS {
        assert!(
            used.contains(&format!("{name}_bucket")),
            "{name} is on no panel"
        );
    }
}

#[test]
fn the_checks_refuse_a_metric_or_a_value_the_code_does_not_emit() {
    for bad in [
        "rate(knolyx_webhook_deliveries[5m])",
        r#"rate(knolyx_webhook_deliveries_total{outcome="rejected"}[5m])"#,
        r#"knolyx_webhook_inbox_entries{state=~"dead|failed"}"#,
        r#"knolyx_webhook_inbox_attempts_total{result=~"done|x"} + knolyx_webhook_inbox_entries{state="dead"}"#,
    ] {
        assert!(
            std::panic::catch_unwind(|| check_expr(bad, "bad")).is_err(),
            "{bad}"
        );
    }
    check_expr(
        r#"sum by (le) (rate(knolyx_webhook_store_duration_seconds_bucket{operation="claim"}[5m]))"#,
        "good",
    );
}
