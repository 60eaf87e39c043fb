//! `KNOLYX_METRICS_PORT` on both receiver binaries: a scripted sequence of deliveries of
//! every outcome, over real HTTP (and a raw TCP socket for a body cut short), on a private
//! Redis killed for the store outage; then the inbox mode's `queued`. The counters scraped
//! from `/metrics` (Prometheus text format, a listener of its own) must equal the script
//! exactly.

use std::collections::BTreeMap;
use std::time::Duration;

use knolyx_webhook_core::metrics::{DELIVERIES_TOTAL, HISTOGRAMS};
use knolyx_webhook_core::testing::{TestEvent, service_url};
use knolyx_webhook_redis::testing::{PrivateRedis, redis_server_installed};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::deploy::{BINARIES, Replica, TOKEN, key};

const WAIT: Duration = Duration::from_secs(20);

/// The series of `name` in a Prometheus text rendering: labels (sorted `k=v`, joined by
/// `,`) to value.
fn parse(text: &str, name: &str) -> BTreeMap<String, f64> {
    let mut found = BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        let (labels, value) = match rest.strip_prefix('{') {
            Some(rest) => {
                let (labels, value) = rest.split_once("} ").expect("a series line");
                (labels, value)
            }
            None => match rest.strip_prefix(' ') {
                Some(value) => ("", value),
                None => continue, // another metric sharing the prefix
            },
        };
        let mut labels: Vec<String> = labels
            .split(',')
            .filter(|l| !l.is_empty())
            .map(|l| l.replace('"', ""))
            .collect();
        labels.sort();
        found.insert(labels.join(","), value.trim().parse::<f64>().unwrap());
    }
    found
}

async fn scrape(url: &str) -> String {
    let response = reqwest::get(url).await.unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    response.text().await.unwrap()
}

/// Scrapes until the deliveries counted equal `expected` (the last answers may still be
/// being counted when their response arrives), then asserts they do.
async fn assert_counted(replica: &Replica, expected: &BTreeMap<String, f64>) -> String {
    let url = replica.metrics_url.as_deref().expect("the metrics URL");
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let text = scrape(url).await;
        let counted = parse(&text, DELIVERIES_TOTAL);
        if &counted == expected || tokio::time::Instant::now() > deadline {
            assert_eq!(&counted, expected, "{url}");
            return text;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn put(url: &str, token: &str, body: impl Into<reqwest::Body>) -> reqwest::RequestBuilder {
    reqwest::Client::new()
        .put(url)
        .header("x-webhook-security-token", token)
        .body(body)
}

async fn status(request: reqwest::RequestBuilder) -> u16 {
    request.send().await.unwrap().status().as_u16()
}

/// A delivery whose body is cut short: the head promises 100 bytes, 10 come, the
/// connection closes.
async fn cut_mid_body(url: &str) {
    let addr = url
        .strip_prefix("http://")
        .and_then(|rest| rest.split('/').next())
        .unwrap();
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "PUT /webhooks/knolyx HTTP/1.1\r\nHost: {addr}\r\nx-webhook-security-token: {TOKEN}\r\n\
         content-type: application/json\r\ncontent-length: 100\r\n\r\n{{\"id\":\"cu"
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    socket.shutdown().await.unwrap();
    // Whatever the server answers (if anything) before closing.
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(WAIT, socket.read_to_end(&mut rest)).await;
}

fn counts(pairs: &[(&str, &str, f64)]) -> BTreeMap<String, f64> {
    pairs
        .iter()
        .map(|(outcome, event_type, n)| (format!("event_type={event_type},outcome={outcome}"), *n))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server and redis-cli (README: Running the store tests)"]
async fn the_counters_match_a_scripted_sequence_of_every_outcome_on_both_receivers() {
    if !redis_server_installed() {
        return;
    }
    for path in BINARIES {
        let mut redis = PrivateRedis::start().await;
        let store = redis.url();
        let replica = Replica::start_with(
            path,
            &[
                ("KNOLYX_WEBHOOK_STORE", &store),
                ("KNOLYX_METRICS_PORT", "0"),
                // Every id's first attempt fails; each handler run takes 300 ms.
                ("KNOLYX_EXAMPLE_HANDLER_FAIL_FIRST", "1"),
                ("KNOLYX_EXAMPLE_HANDLER_DELAY_MS", "300"),
            ],
        );
        let url = replica.url.clone();
        let metrics_url = replica.metrics_url.clone().expect("metrics on …");
        assert!(
            metrics_url.starts_with("http://127.0.0.1:") && metrics_url.ends_with("/metrics"),
            "{metrics_url}"
        );
        assert!(
            !metrics_url.starts_with(url.trim_end_matches("/webhooks/knolyx")),
            "a port of its own"
        );
        // Nothing counted before the first delivery.
        assert_counted(&replica, &BTreeMap::new()).await;

        let started = TestEvent::course_started();
        assert_eq!(
            status(put(&url, TOKEN, started.to_body())).await,
            500,
            "{path}"
        );
        assert_eq!(
            status(put(&url, TOKEN, started.to_body())).await,
            200,
            "{path}"
        );
        let duplicate = put(&url, TOKEN, started.to_body()).send().await.unwrap();
        assert!(
            duplicate
                .headers()
                .contains_key("x-knolyx-webhook-duplicate")
        );
        assert_eq!(
            status(put(&url, TOKEN, TestEvent::ping().to_body())).await,
            200
        );

        // In flight: a copy while the second attempt runs (its claim is in Redis).
        let completed = TestEvent::course_completed();
        let id = completed.message_id().to_owned();
        assert_eq!(status(put(&url, TOKEN, completed.to_body())).await, 500);
        let first = tokio::spawn(put(&url, TOKEN, completed.to_body()).send());
        let deadline = tokio::time::Instant::now() + WAIT;
        while !key(&redis, &id).await.is_some_and(|v| v.starts_with("p:")) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the claim was never taken"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(status(put(&url, TOKEN, completed.to_body())).await, 503);
        assert_eq!(first.await.unwrap().unwrap().status(), 200);

        assert_eq!(
            status(put(&url, "wrong-token", started.to_body())).await,
            401
        );
        let get = reqwest::Client::new().get(&url).send().await.unwrap();
        assert_eq!(get.status(), 405);
        assert_eq!(status(put(&url, TOKEN, vec![b' '; 65 * 1024])).await, 413);
        assert_eq!(status(put(&url, TOKEN, "{")).await, 400);
        let invalid = r#"{"id":"m-invalid","type":"COURSE_STARTED","data":{"user":"x"}}"#;
        assert_eq!(status(put(&url, TOKEN, invalid)).await, 422);
        let novel = TestEvent::unknown("SOMETHING_NEW", "{}").unwrap();
        assert_eq!(status(put(&url, TOKEN, novel.to_body())).await, 500);
        cut_mid_body(&url).await;

        redis.kill();
        let paid = TestEvent::course_payment_received();
        assert_eq!(status(put(&url, TOKEN, paid.to_body())).await, 503);

        let text = assert_counted(
            &replica,
            &counts(&[
                ("handler_failed", "COURSE_STARTED", 1.0),
                ("handled", "COURSE_STARTED", 1.0),
                ("duplicate", "COURSE_STARTED", 1.0),
                ("ping", "PING", 1.0),
                ("handler_failed", "COURSE_COMPLETED", 1.0),
                ("handled", "COURSE_COMPLETED", 1.0),
                ("in_flight", "COURSE_COMPLETED", 1.0),
                ("unauthorized", "none", 1.0),
                ("method_not_allowed", "none", 1.0),
                ("payload_too_large", "none", 1.0),
                ("malformed_payload", "none", 1.0),
                ("invalid_event_data", "COURSE_STARTED", 1.0),
                ("handler_failed", "unknown", 1.0),
                ("body_read_failed", "none", 1.0),
                ("store_unavailable", "COURSE_PAYMENT_RECEIVED", 1.0),
            ]),
        )
        .await;
        // The histograms are exported as Prometheus histograms, and the handler ran 5 times.
        for name in HISTOGRAMS {
            assert!(text.contains(&format!("# TYPE {name} histogram")), "{text}");
        }
        let runs: f64 = parse(&text, "knolyx_webhook_handler_duration_seconds_count")
            .values()
            .sum();
        assert_eq!(runs, 5.0, "{path}");
        assert!(
            !text.contains(&id) && !text.contains(TOKEN),
            "labels are bounded"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs KNOLYX_TEST_DATABASE_URL (README: Running the store tests)"]
async fn inbox_mode_counts_queued_and_the_worker_attempts_on_both_receivers() {
    let Some(database) = service_url("KNOLYX_TEST_DATABASE_URL") else {
        return;
    };
    // The receivers' default inbox table, in a schema of this test's own.
    let schema = format!(
        "knolyx_test_metrics_{}",
        knolyx_webhook_core::store::OwnerToken::generate()
    );
    let pool = knolyx_webhook_postgres::sqlx::PgPool::connect(&database)
        .await
        .unwrap();
    knolyx_webhook_postgres::sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&pool)
        .await
        .unwrap();
    let separator = if database.contains('?') { '&' } else { '?' };
    let inbox = format!("{database}{separator}options[search_path]={schema}");
    for path in BINARIES {
        let replica = Replica::start_with(
            path,
            &[
                ("KNOLYX_WEBHOOK_INBOX", &inbox),
                ("KNOLYX_METRICS_PORT", "0"),
                ("KNOLYX_EXAMPLE_HANDLER_FAIL_FIRST", "1"),
                ("KNOLYX_INBOX_FIRST_RETRY_MS", "20"),
            ],
        );
        let event = TestEvent::bundle_payment_received();
        assert_eq!(status(put(&replica.url, TOKEN, event.to_body())).await, 200);
        assert_eq!(status(put(&replica.url, TOKEN, event.to_body())).await, 200);
        assert_eq!(status(put(&replica.url, TOKEN, "{")).await, 400);
        replica.wait_for_line("inbox entry handled");
        let text = assert_counted(
            &replica,
            &counts(&[
                ("queued", "BUNDLE_PAYMENT_RECEIVED", 1.0),
                ("duplicate", "BUNDLE_PAYMENT_RECEIVED", 1.0),
                ("malformed_payload", "none", 1.0),
            ]),
        )
        .await;
        let attempts = parse(&text, "knolyx_webhook_inbox_attempts_total");
        assert_eq!(
            attempts,
            [
                ("result=done".to_owned(), 1.0),
                ("result=retry".to_owned(), 1.0)
            ]
            .into(),
            "{path}"
        );
    }
    knolyx_webhook_postgres::sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
        .execute(&pool)
        .await
        .unwrap();
}
