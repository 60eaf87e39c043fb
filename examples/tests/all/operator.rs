//! What an operator reads, on both receiver binaries, from their real stderr at the default
//! level: the start-up line (store, inbox; no password), a line per PING, duplicate and
//! handled delivery (with the handler's status and duration), the field path of a 422, no
//! outcome repeated on a line, no `relation … already exists` notice; start-up errors that
//! name the address they tried and keep their cause once; and, over real sockets,
//! connections that send half a request head (or nothing) closed by the header-read timeout.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use knolyx_webhook_core::testing::{TestEvent, random_id, service_url};

use crate::deploy::{BINARIES, Replica, TOKEN};

/// Generous bound for the failure path only.
const WAIT: Duration = Duration::from_secs(30);

async fn put(url: &str, body: impl Into<Vec<u8>>) -> u16 {
    crate::axum::put(url, TOKEN, body.into())
        .await
        .status()
        .as_u16()
}

/// The delivery lines of one run, checked on a PostgreSQL store (the table exists after the
/// first binary: the second would print the notice, had migrate not silenced it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs KNOLYX_TEST_DATABASE_URL (README: Running the store tests)"]
async fn default_logs_tell_an_operator_what_happened() {
    let Some(database) = service_url("KNOLYX_TEST_DATABASE_URL") else {
        return;
    };
    // A password the trust-auth test server ignores: it must not be printed.
    let password = format!("pw{}", random_id().replace('-', ""));
    let host = database
        .trim_start_matches("postgres://")
        .rsplit('@')
        .next()
        .unwrap();
    let store = format!("postgres://postgres:{password}@{host}");
    for path in BINARIES {
        let replica = Replica::start_with(path, &[("KNOLYX_WEBHOOK_STORE", &store)]);
        let startup = replica.startup.join("\n");
        assert!(
            startup.contains(&format!("store: postgres at {host}, inbox: off")),
            "{path}: {startup}"
        );
        assert!(!startup.contains(&password), "{path}: {startup}");
        assert!(!startup.contains("already exists"), "{path}: {startup}");

        // PING: the operator's "did Knolyx reach me?".
        let ping = TestEvent::ping().id(random_id());
        assert_eq!(put(&replica.url, ping.to_body().to_vec()).await, 200);
        let line = replica.wait_for_line("PING answered");
        assert!(
            line.contains(&ping.clone().build().id().to_owned()),
            "{line}"
        );

        // Handled: the handler's status and duration; the outcome once.
        let event = TestEvent::course_completed().id(random_id());
        let id = event.clone().build().id().to_owned();
        assert_eq!(put(&replica.url, event.to_body().to_vec()).await, 200);
        let line = replica.wait_for_line(": handled");
        assert!(line.contains(&id), "{line}");
        assert!(line.contains("status=200"), "{line}");
        assert!(line.contains("duration_ms="), "{line}");
        assert_eq!(
            line.matches("handled").count(),
            2,
            "span field + message: {line}"
        );
        assert_eq!(line.matches("outcome=").count(), 1, "{line}");

        // Its retransmission: dropped, and said so.
        assert_eq!(put(&replica.url, event.to_body().to_vec()).await, 200);
        let line = replica.wait_for_line("duplicate of a handled delivery");
        assert!(line.contains(&id), "{line}");
        assert_eq!(line.matches("outcome=").count(), 1, "{line}");

        // 422: which field did not fit, never its value.
        let secret = format!("value{}", random_id().replace('-', ""));
        let bad_id = random_id();
        let body = format!(
            r#"{{"id":"{bad_id}","type":"COURSE_COMPLETED","data":{{"user":{{"id":"{secret}","name":"n","email":"e@x"}},"course":{{"id":1,"name":"c"}}}}}}"#
        );
        assert_eq!(put(&replica.url, body).await, 422);
        let line = replica.wait_for_line("data does not fit its type");
        assert!(line.contains(&bad_id), "{line}");
        assert!(line.contains("data.user.id"), "{line}");
        assert!(!line.contains(&secret), "{line}");
        assert_eq!(line.matches("outcome=").count(), 1, "{line}");

        replica.terminate();
        let (status, _) = replica.exit();
        assert!(status.success(), "{path}");
    }
}

/// A loopback port nothing listens on (bound, then released).
fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn start_up_errors_name_the_address_and_keep_the_cause_once() {
    let port = closed_port();
    let password = format!("pw{}", random_id().replace('-', ""));
    let redis = format!("redis://:{password}@127.0.0.1:{port}/");
    let postgres = format!("postgres://postgres:{password}@127.0.0.1:{port}/test");
    let cases = [
        ("KNOLYX_WEBHOOK_STORE", redis.as_str(), "redis at 127.0.0.1"),
        (
            "KNOLYX_WEBHOOK_STORE",
            postgres.as_str(),
            "postgres at 127.0.0.1",
        ),
        (
            "KNOLYX_WEBHOOK_INBOX",
            postgres.as_str(),
            "postgres at 127.0.0.1",
        ),
    ];
    for path in BINARIES {
        for (variable, url, shown) in cases {
            let output = Command::new(path)
                .env("KNOLYX_WEBHOOK_TOKEN", TOKEN)
                .env("PORT", "0")
                .env_remove("KNOLYX_WEBHOOK_STORE")
                .env_remove("KNOLYX_WEBHOOK_INBOX")
                .env(variable, url)
                .stdin(Stdio::null())
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert_eq!(output.status.code(), Some(2), "{path} {variable}: {stderr}");
            assert!(
                stderr.contains(&format!("{variable} ({shown}:{port}")),
                "{path}: names what it tried: {stderr}"
            );
            assert!(
                stderr.to_lowercase().contains("refused"),
                "{path}: the root cause: {stderr}"
            );
            assert_eq!(
                stderr.matches("Connection refused (os error").count(),
                1,
                "{path}: the cause once: {stderr}"
            );
            assert!(!stderr.contains(&password), "{path}: {stderr}");
            assert!(!stderr.contains("pool timed out"), "{path}: {stderr}");
        }
    }
}

/// Reads until the server closes the connection (0 or a reset), within `limit`.
fn closed_within(stream: &mut TcpStream, limit: Duration) -> bool {
    stream.set_read_timeout(Some(limit)).unwrap();
    let mut buf = [0u8; 512];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            // A response (an error page) may come before the close: read on.
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return true,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return false;
            }
            Err(e) => panic!("unexpected read error: {e}"),
        }
    }
}

/// 200 connections that send half a request head, 50 that send nothing, and one idle
/// after a request: all closed by the server, on both binaries (the axum receiver with a
/// 300 ms header-read timeout; actix-web by its own 5 s defaults).
#[test]
fn half_open_and_idle_connections_are_closed() {
    for path in BINARIES {
        let replica = Replica::start_with(path, &[("KNOLYX_HEADER_READ_TIMEOUT_MS", "300")]);
        let addr: SocketAddr = replica
            .url
            .trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let mut half: Vec<TcpStream> = (0..200)
            .map(|_| {
                let mut s = TcpStream::connect(addr).unwrap();
                s.write_all(b"PUT /webhooks/knolyx HTTP/1.1\r\nHost: x\r\nContent-Le")
                    .unwrap();
                s
            })
            .collect();
        let mut silent: Vec<TcpStream> =
            (0..50).map(|_| TcpStream::connect(addr).unwrap()).collect();
        let mut idle = TcpStream::connect(addr).unwrap();
        idle.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut response = [0u8; 64];
        let n = idle.read(&mut response).unwrap();
        assert!(
            response[..n].starts_with(b"HTTP/1.1 200"),
            "{path}: the server answers a whole request"
        );

        let deadline = Instant::now() + WAIT;
        for (what, stream) in half
            .iter_mut()
            .map(|s| ("half a head", s))
            .chain(silent.iter_mut().map(|s| ("nothing", s)))
            .chain(std::iter::once(("idle after a request", &mut idle)))
        {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                closed_within(stream, left.max(Duration::from_millis(1))),
                "{path}: a connection that sent {what} is still open"
            );
        }
        // Still serving new connections after closing those.
        let mut fresh = TcpStream::connect(addr).unwrap();
        fresh
            .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut text = String::new();
        fresh.read_to_string(&mut text).unwrap();
        assert!(text.starts_with("HTTP/1.1 200"), "{path}: {text}");
        replica.terminate();
        assert!(replica.exit().0.success(), "{path}");
    }
}

/// `HOST` picks the address bound (here another loopback address than 127.0.0.1).
#[test]
fn host_selects_the_bound_address() {
    for path in BINARIES {
        let replica = Replica::start_with(path, &[("HOST", "127.0.0.2")]);
        assert!(
            replica.url.starts_with("http://127.0.0.2:"),
            "{path}: {}",
            replica.url
        );
        replica.terminate();
        assert!(replica.exit().0.success(), "{path}");
    }
}
