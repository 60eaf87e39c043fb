//! The PostgreSQL inbox: what storing before acknowledging costs, how soon the worker runs
//! an acknowledged event, and how fast a worker drains a backlog.
//!
//! ```sh
//! KNOLYX_BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test \
//!     cargo run --release -p knolyx-webhook-benches --features servers --bin inbox [-- --quick]
//! ```
//!
//! The URL defaults to `postgres://postgres@127.0.0.1:5432/test`; when nothing answers there
//! the run says so and exits 0 ("skipped"). Its tables are its own (`knolyx_bench_*_<token>`)
//! and dropped at the end.
//!
//! 1. **Acknowledgements per second**: [`Inbox::accept`] of new events (the insert with
//!    `ON CONFLICT DO NOTHING` and the `NOTIFY`) against a bare single-row
//!    `INSERT INTO t (id, body) VALUES ($1, $2)` on the same pool of 16 connections, with 1
//!    and 16 concurrent tasks, in alternating rounds (medians). Then the same acceptance
//!    through the axum receiver in inbox mode over loopback HTTP (16 keep-alive
//!    connections): the whole request, parse and token included.
//! 2. **From 2xx to handler start**: deliveries one after another over HTTP while a worker
//!    runs; for each, the time from the client reading the `200 queued` to the handler
//!    starting (p50, p99, max), with the worker woken by `LISTEN/NOTIFY`, then polling
//!    only (its 1 s default). A negative time is a handler that started before the client
//!    read the answer.
//! 3. **Worker throughput**: a backlog of accepted entries drained by one worker with a
//!    handler that does nothing (16 at once, batches of 16; then 64 and 64).
//!
//! Client, server, worker and PostgreSQL share the machine's cores.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use http::header::{CONTENT_TYPE, HOST};
use http_body_util::{BodyExt, Full};
use knolyx_webhook_benches::{FreshIds, Sender, TOKEN, connect};
use knolyx_webhook_core::inbox::{Inbox, Worker};
use knolyx_webhook_core::store::OwnerToken;
use knolyx_webhook_core::testing::FIXTURES;
use knolyx_webhook_core::{TOKEN_HEADER, WebhookEvent, WebhookReceiver};
use knolyx_webhook_examples::{EventHandler, ROUTE, axum_receiver};
use knolyx_webhook_postgres::PostgresInbox;
use knolyx_webhook_postgres::sqlx;

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let url = std::env::var("KNOLYX_BENCH_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a Tokio runtime");
    runtime.block_on(run(&url, quick));
}

/// Bodies with fresh ids, shared by every task: `next()` never repeats an id.
#[derive(Clone)]
struct Bodies {
    ids: Arc<FreshIds>,
    next: Arc<AtomicU64>,
}

impl Bodies {
    fn new(salt: u64) -> Self {
        let fixture = FIXTURES
            .iter()
            .find(|(name, _)| *name == "COURSE_PAYMENT_RECEIVED")
            .map_or(FIXTURES[0].1, |(_, body)| *body);
        Self {
            ids: Arc::new(FreshIds::new(fixture)),
            next: Arc::new(AtomicU64::new(salt << 40)),
        }
    }

    fn next(&self) -> Bytes {
        self.ids.body_for(self.next.fetch_add(1, Ordering::Relaxed))
    }
}

async fn run(url: &str, quick: bool) {
    let pool = match sqlx::postgres::PgPoolOptions::new()
        .max_connections(16)
        .min_connections(16)
        .acquire_timeout(Duration::from_secs(5))
        .connect(url)
        .await
    {
        Ok(pool) => pool,
        Err(e) => {
            println!("skipped: PostgreSQL is not reachable at the bench URL ({e})");
            return;
        }
    };
    let token = OwnerToken::generate();
    let table = format!("knolyx_bench_inbox_{token}");
    let bare = format!("knolyx_bench_insert_{token}");
    let inbox = PostgresInbox::builder(pool.clone())
        .table(&table)
        .build()
        .expect("a valid table name");
    inbox.migrate().await.expect("create the inbox table");
    sqlx::raw_sql(&format!(
        "CREATE TABLE {bare} (id TEXT PRIMARY KEY, body BYTEA NOT NULL)"
    ))
    .execute(&pool)
    .await
    .expect("create the bare table");
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "inbox bench{}: load average {}",
        if quick { " --quick" } else { "" },
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    let bodies = Bodies::new(u64::from(std::process::id()));
    let inbox = Arc::new(inbox);

    // 1. Acknowledgements per second, library level.
    let (rounds, slice) = if quick {
        (2, Duration::from_millis(500))
    } else {
        (6, Duration::from_millis(1500))
    };
    println!(
        "\n1. acceptance vs a bare INSERT, same pool (medians of {rounds} rounds of {slice:?})"
    );
    println!("| tasks | inbox accept | bare INSERT | ratio |");
    println!("|---|---|---|---|");
    let mut ratios = Vec::new();
    for tasks in [1, 16] {
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        for round in 0..rounds {
            for case in [round % 2, 1 - round % 2] {
                let rate = if case == 0 {
                    let inbox = Arc::clone(&inbox);
                    rate(tasks, slice, &bodies, move |body| {
                        let inbox = Arc::clone(&inbox);
                        async move {
                            let event = WebhookEvent::from_bytes(body).expect("a valid body");
                            inbox.accept(&event).await.is_ok()
                        }
                    })
                    .await
                } else {
                    let (pool, sql) = (
                        pool.clone(),
                        Arc::new(format!("INSERT INTO {bare} (id, body) VALUES ($1, $2)")),
                    );
                    rate(tasks, slice, &bodies, move |body| {
                        let (pool, sql) = (pool.clone(), Arc::clone(&sql));
                        async move {
                            let event = WebhookEvent::from_bytes(body).expect("a valid body");
                            sqlx::query(&sql)
                                .bind(event.id())
                                .bind(event.raw().as_ref())
                                .execute(&pool)
                                .await
                                .is_ok()
                        }
                    })
                    .await
                };
                if case == 0 { &mut ours } else { &mut theirs }.push(rate);
            }
        }
        let (ours, theirs) = (median(&mut ours), median(&mut theirs));
        ratios.push(ours / theirs);
        println!(
            "| {tasks} | {ours:.0}/s | {theirs:.0}/s | {:.2} |",
            ours / theirs
        );
    }

    // … and through the axum receiver over HTTP.
    let receiver = WebhookReceiver::builder()
        .token(TOKEN)
        .inbox(Arc::clone(&inbox) as Arc<dyn Inbox>)
        .build()
        .expect("a valid receiver");
    let route: EventHandler = Arc::new(|_| Box::pin(async { Ok(()) }));
    let running = axum_receiver::spawn(receiver, route, SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("serve the receiver");
    let addr = running.addr();
    let http = http_rate(addr, 16, slice * 2, &bodies).await;
    println!("| 16 connections, HTTP (axum receiver, inbox mode) | {http:.0}/s | | |");

    // 2. From 2xx to handler start, on an empty inbox (the acceptance runs left a backlog).
    let empty = format!("TRUNCATE {table}");
    sqlx::raw_sql(&empty)
        .execute(&pool)
        .await
        .expect("truncate");
    let deliveries = if quick { 100 } else { 500 };
    println!(
        "\n2. from the client reading 200 queued to the handler starting ({deliveries} deliveries, one at a time)"
    );
    println!("| worker woken by | p50 | p99 | max |");
    println!("|---|---|---|---|");
    let waker = Arc::new(tokio::sync::Notify::new());
    let _listening = inbox
        .wake_on_notify(Arc::clone(&waker))
        .await
        .expect("LISTEN");
    let mut notify_p50 = 0.0;
    for notify in [true, false] {
        let n = if notify { deliveries } else { deliveries / 5 };
        let lags = lags(&inbox, addr, &bodies, n, notify.then(|| Arc::clone(&waker))).await;
        let (p50, p99, max) = (
            percentile(&lags, 0.50),
            percentile(&lags, 0.99),
            percentile(&lags, 1.0),
        );
        if notify {
            notify_p50 = p50;
        }
        println!(
            "| {} | {p50:.1} ms | {p99:.1} ms | {max:.1} ms |",
            if notify {
                "LISTEN/NOTIFY"
            } else {
                "polling only (every 1 s)"
            }
        );
    }
    running.stop().await;

    // 3. Worker throughput over a backlog.
    let backlog = if quick { 1_000 } else { 5_000 };
    println!(
        "\n3. one worker draining a backlog of {backlog} entries (a handler that does nothing)"
    );
    println!("| concurrency / batch | entries/s |");
    println!("|---|---|");
    let mut drained = Vec::new();
    for width in [16, 64] {
        sqlx::raw_sql(&empty)
            .execute(&pool)
            .await
            .expect("truncate");
        let per_second = drain(&inbox, &bodies, backlog, width).await;
        drained.push(per_second);
        println!("| {width} / {width} | {per_second:.0} |");
    }

    for t in [&table, &bare] {
        let _ = sqlx::raw_sql(&format!("DROP TABLE IF EXISTS {t}"))
            .execute(&pool)
            .await;
    }
    println!(
        "\nsummary: accept/INSERT {:.2} (1 task), {:.2} (16 tasks), target >= 0.5; HTTP {http:.0} acks/s; \
         2xx to handler p50 {notify_p50:.1} ms with NOTIFY, target <= 20 ms; worker {:.0} entries/s",
        ratios[0], ratios[1], drained[0]
    );
}

/// Operations per second: `tasks` tasks each looping on `op` (one fresh body each) for
/// `slice`.
async fn rate<F, Fut>(tasks: usize, slice: Duration, bodies: &Bodies, op: F) -> f64
where
    F: Fn(Bytes) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = bool> + Send,
{
    let done = Arc::new(AtomicU64::new(0));
    let until = Instant::now() + slice;
    let started = Instant::now();
    let running: Vec<_> = (0..tasks)
        .map(|_| {
            let (op, bodies, done) = (op.clone(), bodies.clone(), Arc::clone(&done));
            tokio::spawn(async move {
                while Instant::now() < until {
                    assert!(op(bodies.next()).await, "an operation failed");
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for task in running {
        task.await.expect("a benchmark task");
    }
    done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

/// One delivery; panics unless it is answered `200 queued`.
async fn deliver(sender: &mut Sender, body: Bytes) {
    sender.ready().await.expect("the connection is open");
    let request = Request::put(ROUTE)
        .header(HOST, "127.0.0.1")
        .header(TOKEN_HEADER, TOKEN)
        .header(CONTENT_TYPE, "application/json")
        .body(Full::new(body))
        .expect("a valid request");
    let response = sender.send_request(request).await.expect("an answer");
    let status = response.status();
    let text = response
        .into_body()
        .collect()
        .await
        .expect("a body")
        .to_bytes();
    assert!(
        status == 200 && text.as_ref() == b"queued",
        "answered {status} {text:?}"
    );
}

/// Acknowledgements per second over `connections` keep-alive connections for `slice`.
async fn http_rate(addr: SocketAddr, connections: usize, slice: Duration, bodies: &Bodies) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let until = Instant::now() + slice;
    let started = Instant::now();
    let running: Vec<_> = (0..connections)
        .map(|_| {
            let (bodies, done) = (bodies.clone(), Arc::clone(&done));
            tokio::spawn(async move {
                let mut sender = connect(addr).await;
                while Instant::now() < until {
                    deliver(&mut sender, bodies.next()).await;
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for task in running {
        task.await.expect("a connection task");
    }
    done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

/// For `n` deliveries one after another, the milliseconds from the client reading the 2xx
/// to the worker's handler starting; the worker woken by `waker`, or polling every second.
async fn lags(
    inbox: &Arc<PostgresInbox>,
    addr: SocketAddr,
    bodies: &Bodies,
    n: usize,
    waker: Option<Arc<tokio::sync::Notify>>,
) -> Vec<f64> {
    let started: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let seen = Arc::clone(&started);
    let mut worker = Worker::builder(Arc::clone(inbox) as Arc<dyn Inbox>, move |event| {
        let at = Instant::now();
        seen.lock().unwrap().insert(event.id().to_owned(), at);
        let _ = tx.send(());
        async { Ok::<(), String>(()) }
    })
    .without_purge();
    if let Some(waker) = waker {
        worker = worker.wake_on(waker);
    }
    let worker = worker.build().spawn();
    let mut sender = connect(addr).await;
    let mut acked = Vec::with_capacity(n);
    for _ in 0..n {
        let body = bodies.next();
        let id = WebhookEvent::from_bytes(body.clone())
            .expect("a valid body")
            .id()
            .to_owned();
        deliver(&mut sender, body).await;
        acked.push((id, Instant::now()));
        // One at a time: the next delivery once this one's handler started.
        tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("the handler started")
            .expect("the worker is alive");
    }
    worker.shutdown(Duration::from_secs(10)).await;
    let started = started.lock().unwrap();
    let mut lags: Vec<f64> = acked
        .iter()
        .map(|(id, at)| {
            let start = started[id];
            match start.checked_duration_since(*at) {
                Some(after) => after.as_secs_f64() * 1e3,
                None => -(at.duration_since(start).as_secs_f64() * 1e3),
            }
        })
        .collect();
    lags.sort_by(f64::total_cmp);
    lags
}

/// Entries per second: `backlog` entries accepted first, then one worker (`width` at once,
/// batches of `width`) runs them all to done.
async fn drain(inbox: &Arc<PostgresInbox>, bodies: &Bodies, backlog: usize, width: usize) -> f64 {
    let accepting: Vec<_> = (0..16)
        .map(|t| {
            let (inbox, bodies) = (Arc::clone(inbox), bodies.clone());
            tokio::spawn(async move {
                for _ in (t..backlog).step_by(16) {
                    let event = WebhookEvent::from_bytes(bodies.next()).expect("a valid body");
                    inbox.accept(&event).await.expect("accept");
                }
            })
        })
        .collect();
    for task in accepting {
        task.await.expect("an accepting task");
    }
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let started = Instant::now();
    let worker = Worker::builder(Arc::clone(inbox) as Arc<dyn Inbox>, move |_event| {
        let _ = tx.send(());
        async { Ok::<(), String>(()) }
    })
    .concurrency(width)
    .batch(width)
    .without_purge()
    .build()
    .spawn();
    for _ in 0..backlog {
        tokio::time::timeout(Duration::from_secs(60), rx.recv())
            .await
            .expect("the worker drains the backlog")
            .expect("the worker is alive");
    }
    // The last completions follow the last handlers: the shutdown waits for them.
    worker.shutdown(Duration::from_secs(60)).await;
    backlog as f64 / started.elapsed().as_secs_f64()
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The `q` quantile (0.0 to 1.0) of sorted `values`.
fn percentile(values: &[f64], q: f64) -> f64 {
    let at = ((values.len() as f64 - 1.0) * q).round() as usize;
    values[at.min(values.len() - 1)]
}
