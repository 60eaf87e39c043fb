//! The examples contract, checked on both receiver binaries by one script: configuration
//! from the environment, refusal to start without a usable one, logs on stderr, one JSON
//! line per handled event on stdout, a graceful stop on Ctrl-C — and the same output from
//! both for the same deliveries.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use knolyx_webhook_core::testing::{FIXTURES, TestEvent};

const TOKEN: &str = "examples-binaries-token";
const WAIT: Duration = Duration::from_secs(30);
const BINARIES: [&str; 2] = [
    env!("CARGO_BIN_EXE_axum-receiver"),
    env!("CARGO_BIN_EXE_actix-receiver"),
];

/// A receiver binary with exactly these environment variables.
fn binary(path: &str, env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(path);
    command
        .env_remove("KNOLYX_WEBHOOK_TOKEN")
        .env_remove("KNOLYX_WEBHOOK_STORE")
        .env_remove("PORT")
        .env("RUST_LOG", "info")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

#[test]
fn both_refuse_to_start_without_a_usable_configuration() {
    type Env<'a> = &'a [(&'a str, &'a str)];
    let cases: [(&str, Env<'_>, &str); 5] = [
        ("no token", &[], "KNOLYX_WEBHOOK_TOKEN"),
        (
            "empty token",
            &[("KNOLYX_WEBHOOK_TOKEN", "")],
            "KNOLYX_WEBHOOK_TOKEN",
        ),
        (
            "unsupported store",
            &[
                ("KNOLYX_WEBHOOK_TOKEN", TOKEN),
                ("KNOLYX_WEBHOOK_STORE", "mongodb://x"),
            ],
            "KNOLYX_WEBHOOK_STORE",
        ),
        (
            "unreachable redis",
            &[
                ("KNOLYX_WEBHOOK_TOKEN", TOKEN),
                ("KNOLYX_WEBHOOK_STORE", "redis://127.0.0.1:1/"),
            ],
            "KNOLYX_WEBHOOK_STORE",
        ),
        (
            "bad port",
            &[("KNOLYX_WEBHOOK_TOKEN", TOKEN), ("PORT", "http")],
            "PORT",
        ),
    ];
    for path in BINARIES {
        for (case, env, mentions) in cases {
            let output = binary(path, env).output().unwrap();
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(!output.status.success(), "{path}, {case}: {stderr}");
            assert!(stderr.contains(mentions), "{path}, {case}: {stderr}");
            assert!(output.stdout.is_empty(), "{path}, {case}");
        }
    }
}

/// A receiver binary serving on a free port; killed if the test fails before it stops.
struct Served {
    child: Child,
    url: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(path: &str) -> Served {
    let mut child = binary(path, &[("KNOLYX_WEBHOOK_TOKEN", TOKEN), ("PORT", "0")])
        .spawn()
        .unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    // Read stderr until the URL, then keep draining it so the child never blocks on it.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in stderr.lines() {
            let Ok(line) = line else { break };
            if let Some(url) = line.strip_prefix("listening on ")
                && let Some(tx) = tx.take()
            {
                let _ = tx.send(url.to_owned());
            }
        }
    });
    let url = rx.recv_timeout(WAIT).expect("the receiver printed its URL");
    assert!(
        url.starts_with("http://127.0.0.1:") && url.ends_with("/webhooks/knolyx"),
        "{url}"
    );
    Served { child, url }
}

/// Stops with Ctrl-C; returns the exit status and all of stdout.
fn stop(mut served: Served) -> (std::process::ExitStatus, String) {
    let pid = served.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success()
    );
    let mut stdout = served.child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut out = String::new();
        let _ = stdout.read_to_string(&mut out);
        let _ = tx.send(out);
    });
    let out = rx
        .recv_timeout(WAIT)
        .expect("the receiver stopped on Ctrl-C");
    let status = served.child.wait().unwrap();
    (status, out)
}

/// The same deliveries, with the same ids, for every binary.
fn deliveries() -> Vec<(&'static str, String, Vec<u8>)> {
    let mut list: Vec<(&'static str, String, Vec<u8>)> = FIXTURES
        .iter()
        .map(|(name, body)| (*name, TOKEN.to_owned(), body.to_vec()))
        .collect();
    let (_, payment) = FIXTURES[3];
    list.push(("retransmission", TOKEN.to_owned(), payment.to_vec()));
    list.push(("wrong token", "nope".to_owned(), FIXTURES[1].1.to_vec()));
    list.push(("malformed", TOKEN.to_owned(), b"{\"id\":".to_vec()));
    let unknown = TestEvent::unknown("QUIZ_PASSED", r#"{"score":92}"#)
        .unwrap()
        .id("bin-unknown-1");
    list.push(("unknown type", TOKEN.to_owned(), unknown.to_body().to_vec()));
    let string_data = br#"{"id":"bin-string-data","type":"COURSE_STARTED","data":"{\"user\":{\"id\":5,\"name\":\"N\",\"email\":\"e@x\"},\"course\":{\"id\":6,\"name\":\"C\"}}"}"#;
    list.push((
        "data as a JSON string",
        TOKEN.to_owned(),
        string_data.to_vec(),
    ));
    list
}

async fn play(url: &str) -> Vec<(String, u16, bool)> {
    let client = reqwest::Client::new();
    let mut out = Vec::new();
    for (name, token, body) in deliveries() {
        let (status, duplicate) = crate::support::deliver(&client, url, &token, body).await;
        out.push((name.to_owned(), status, duplicate));
    }
    out
}

#[tokio::test]
async fn both_print_the_same_lines_for_the_same_deliveries_and_stop_on_ctrl_c() {
    let mut results = Vec::new();
    for path in BINARIES {
        let served = serve(path);
        let statuses = play(&served.url).await;
        let (status, stdout) = stop(served);
        assert!(status.success(), "{path}: {status}");
        results.push((path, statuses, stdout));
    }
    let (_, axum_statuses, axum_out) = &results[0];
    let (_, actix_statuses, actix_out) = &results[1];
    assert_eq!(axum_statuses, actix_statuses);
    assert_eq!(
        axum_out, actix_out,
        "the two receivers printed different lines"
    );

    let expected_status: Vec<(u16, bool)> = vec![
        (200, false),
        (200, false),
        (200, false),
        (200, false),
        (200, false),
        (200, true),
        (401, false),
        (400, false),
        (200, false),
        (200, false),
    ];
    let got: Vec<(u16, bool)> = axum_statuses.iter().map(|(_, s, d)| (*s, *d)).collect();
    assert_eq!(got, expected_status, "{axum_statuses:?}");

    // One line per handled event: the four typed fixtures, the unknown type and the string
    // data; not the PING, the retransmission or the rejections. Each line is the event.
    let lines: Vec<serde_json::Value> = axum_out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 6, "{axum_out}");
    for (line, (_, body)) in lines.iter().zip(&FIXTURES[1..]) {
        let sent: serde_json::Value = serde_json::from_slice(body).unwrap();
        assert_eq!(line, &sent);
    }
    assert_eq!(lines[4]["type"], "QUIZ_PASSED");
    assert_eq!(
        lines[5]["data"]["course"]["id"], 6,
        "string data is printed as an object"
    );
    for line in &lines {
        let keys: Vec<&String> = line.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["data", "id", "type"]);
    }
}

#[test]
fn the_custom_store_example_passes_the_conformance_suite_and_survives_a_restart() {
    let journal = std::env::temp_dir().join(format!(
        "knolyx-custom-store-test-{}.log",
        std::process::id()
    ));
    let output = Command::new(env!("CARGO_BIN_EXE_custom-store"))
        .arg(&journal)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&journal);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("conformance suite passed"), "{stdout}");
    assert!(
        stdout.contains("the duplicate survived the restart"),
        "{stdout}"
    );
}
