//! Soak: 1,000,000 deliveries, 10% of them retransmissions of recent ids, through the axum
//! example receiver (`knolyx_webhook_examples::axum_receiver`, in-process) over loopback
//! HTTP/1.1 keep-alive connections, on a [`MemoryStore`] held at its capacity limit so that
//! eviction runs for most of the soak.
//!
//! Every `--report-every` deliveries it prints the throughput (over the last interval and
//! overall), the process's current and peak RSS (`VmRSS`, `VmHWM` from
//! `/proc/self/status`), the ids the store holds, and the counts: handled, duplicates
//! dropped, duplicates missed.
//!
//! A retransmission targets one of the last `capacity` completed ids. Those among the last
//! `capacity / 2` completions are *guaranteed* to be remembered (the store holds `capacity`
//! ids, and evicts the oldest completed first, per shard; half the capacity leaves room for
//! the shards' unevenness): each of them must be dropped as a duplicate, and one that ran
//! the handler again is a **missed duplicate**. Older targets may legitimately have been
//! evicted by capacity (the memory store's documented trade-off): they are counted apart,
//! dropped or re-run.
//!
//! It exits non-zero if any guaranteed duplicate ran the handler, if any delivery failed
//! (transport error, or a status other than 200), if the handler's run count disagrees with
//! the responses, if the capacity was never reached, or if the RSS grew by more than 10%
//! between the report where the store first held 95% of its capacity and the end.
//!
//! ```sh
//! cargo run --release -p knolyx-webhook-benches --bin soak [-- --quick | --deliveries N]
//!     [--capacity N] [--connections N] [--report-every N]
//! ```
//!
//! Defaults: 1,000,000 deliveries (`--quick`: 100,000), capacity a tenth of the deliveries,
//! 8 connections, a report every twentieth of the deliveries. Client and server share one
//! Tokio runtime of 2 worker threads, so the figures are those of the whole loop.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use http::Request;
use http::header::{CONTENT_TYPE, HOST};
use http_body_util::{BodyExt, Full};
use knolyx_webhook_benches::{FreshIds, TOKEN, connect};
use knolyx_webhook_core::store::MemoryStore;
use knolyx_webhook_core::testing::FIXTURES;
use knolyx_webhook_core::{DUPLICATE_HEADER, TOKEN_HEADER, WebhookReceiver};
use knolyx_webhook_examples::{EventHandler, ROUTE, axum_receiver};

/// Most growth of the RSS allowed between capacity and the end.
const MAX_GROWTH: f64 = 0.10;
/// The store counts as at capacity once it holds this share of it.
const AT_CAPACITY: f64 = 0.95;

struct Options {
    deliveries: u64,
    capacity: usize,
    connections: usize,
    report_every: u64,
}

fn options() -> Options {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |name: &str| -> Option<u64> {
        let at = args.iter().position(|a| a == name)?;
        let v = args
            .get(at + 1)
            .unwrap_or_else(|| panic!("{name} needs a value"));
        Some(
            v.replace('_', "")
                .parse()
                .unwrap_or_else(|_| panic!("{name}: not a number: {v}")),
        )
    };
    let quick = args.iter().any(|a| a == "--quick");
    let deliveries = value("--deliveries").unwrap_or(if quick { 100_000 } else { 1_000_000 });
    let capacity = value("--capacity").map_or((deliveries / 10).max(100) as usize, |c| c as usize);
    Options {
        deliveries,
        capacity,
        connections: value("--connections").unwrap_or(8).max(1) as usize,
        report_every: value("--report-every")
            .unwrap_or((deliveries / 20).max(1))
            .max(1),
    }
}

/// `VmRSS` and `VmHWM` of this process, in KiB.
fn rss_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// The last `capacity` completed ids (as numbers), in completion order.
struct Completions {
    ring: Vec<u64>,
    done: u64,
}

#[derive(Default)]
struct Counters {
    started: AtomicU64,
    finished: AtomicU64,
    /// First deliveries that ran the handler.
    handled: AtomicU64,
    /// Retransmissions of guaranteed-present ids, dropped as duplicates.
    dup_dropped: AtomicU64,
    /// Retransmissions of guaranteed-present ids that ran the handler again: must be 0.
    dup_missed: AtomicU64,
    /// Retransmissions of older ids (perhaps evicted), dropped.
    old_dropped: AtomicU64,
    /// Retransmissions of older ids that ran the handler again: evicted, legitimately.
    old_rerun: AtomicU64,
    /// First deliveries answered as duplicates (impossible: ids are fresh).
    fresh_as_duplicate: AtomicU64,
    /// Transport errors and statuses other than 200.
    failed: AtomicU64,
}

struct Reporter {
    start: Instant,
    last: (Instant, u64),
    /// (deliveries, RSS KiB, handled) when the store first held 95% of its capacity.
    at_capacity: Option<(u64, u64, u64)>,
    /// (deliveries, RSS KiB) once `capacity` more ids were handled after that: every
    /// remembered id has been evicted and replaced once (steady state).
    turned_over: Option<(u64, u64)>,
}

struct Soak {
    options: Options,
    bodies: FreshIds,
    fresh: AtomicU64,
    completions: Mutex<Completions>,
    counters: Counters,
    store: Arc<MemoryStore>,
    runs: Arc<AtomicU64>,
    reporter: Mutex<Reporter>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Fresh,
    Guaranteed,
    Old,
}

impl Soak {
    /// What to send next: 1 in 10 a retransmission of a recent completion.
    fn pick(&self, rng: &mut u64) -> (Kind, u64) {
        let r = xorshift(rng);
        if r.is_multiple_of(10) {
            let c = self.completions.lock().unwrap();
            let window = c.done.min(self.options.capacity as u64);
            if window > 0 {
                let back = 1 + (r / 10) % window; // 1 = the latest completion
                let n = c.ring[((c.done - back) % c.ring.len() as u64) as usize];
                let kind = if back <= self.options.capacity as u64 / 2 {
                    Kind::Guaranteed
                } else {
                    Kind::Old
                };
                return (kind, n);
            }
        }
        (Kind::Fresh, self.fresh.fetch_add(1, Ordering::Relaxed))
    }

    fn completed(&self, n: u64) {
        let mut c = self.completions.lock().unwrap();
        let slot = (c.done % c.ring.len() as u64) as usize;
        c.ring[slot] = n;
        c.done += 1;
    }

    fn count(&self, kind: Kind, n: u64, status: Option<u16>, duplicate: bool) {
        let c = &self.counters;
        let counter = match (kind, status, duplicate) {
            (_, None, _) => &c.failed,
            (_, Some(status), _) if status != 200 => &c.failed,
            (Kind::Fresh, _, false) => {
                self.completed(n);
                &c.handled
            }
            (Kind::Fresh, _, true) => &c.fresh_as_duplicate,
            (Kind::Guaranteed, _, true) => &c.dup_dropped,
            (Kind::Guaranteed, _, false) => &c.dup_missed,
            (Kind::Old, _, true) => &c.old_dropped,
            (Kind::Old, _, false) => &c.old_rerun,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let done = c.finished.fetch_add(1, Ordering::Relaxed) + 1;
        if done.is_multiple_of(self.options.report_every) || done == self.options.deliveries {
            self.report(done);
        }
    }

    fn report(&self, done: u64) {
        let mut r = self.reporter.lock().unwrap();
        let now = Instant::now();
        let (rss, hwm) = rss_kib();
        let held = self.store.len();
        let interval = (done - r.last.1) as f64 / (now - r.last.0).as_secs_f64();
        let overall = done as f64 / (now - r.start).as_secs_f64();
        r.last = (now, done);
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut note = "";
        match (r.at_capacity, r.turned_over) {
            (None, _) if held as f64 >= self.options.capacity as f64 * AT_CAPACITY => {
                r.at_capacity = Some((done, rss, get(&c.handled)));
                note = "  <- capacity reached (RSS baseline)";
            }
            (Some((_, _, handled)), None)
                if get(&c.handled) >= handled + self.options.capacity as u64 =>
            {
                r.turned_over = Some((done, rss));
                note = "  <- store turned over once (steady-state baseline)";
            }
            _ => {}
        }
        println!(
            "{:>6.1}s {done:>9} deliveries  {interval:>8.0}/s (overall {overall:>6.0}/s)  \
             RSS {:>6.1} MiB  peak {:>6.1} MiB  store {held:>7}/{}  handled {:>8}  \
             dup dropped {:>7}  dup missed {}  (older: dropped {}, re-run {})  failed {}{note}",
            (now - r.start).as_secs_f64(),
            mib(rss),
            mib(hwm),
            self.options.capacity,
            get(&c.handled),
            get(&c.dup_dropped),
            get(&c.dup_missed),
            get(&c.old_dropped),
            get(&c.old_rerun),
            get(&c.failed),
        );
    }
}

fn xorshift(state: &mut u64) -> u64 {
    let mut x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    x
}

/// One keep-alive connection, one delivery at a time, until the deliveries run out.
async fn connection_loop(soak: Arc<Soak>, addr: SocketAddr, seed: u64) {
    let mut sender = connect(addr).await;
    let mut rng = seed | 1;
    while soak.counters.started.fetch_add(1, Ordering::Relaxed) < soak.options.deliveries {
        let (kind, n) = soak.pick(&mut rng);
        if sender.ready().await.is_err() {
            sender = connect(addr).await;
        }
        let request = Request::put(ROUTE)
            .header(HOST, "127.0.0.1")
            .header(TOKEN_HEADER, TOKEN)
            .header(CONTENT_TYPE, "application/json")
            .body(Full::new(soak.bodies.body_for(n)))
            .expect("a valid request");
        let (status, duplicate) = match sender.send_request(request).await {
            Ok(response) => {
                let status = response.status().as_u16();
                let duplicate = response
                    .headers()
                    .get(DUPLICATE_HEADER)
                    .is_some_and(|v| v == "true");
                match response.into_body().collect().await {
                    Ok(_) => (Some(status), duplicate),
                    Err(_) => (None, false),
                }
            }
            Err(_) => (None, false),
        };
        soak.count(kind, n, status, duplicate);
    }
}

fn main() {
    let options = options();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a Tokio runtime");
    let code = runtime.block_on(run(options));
    std::process::exit(code);
}

async fn run(options: Options) -> i32 {
    let store = Arc::new(MemoryStore::builder().capacity(options.capacity).build());
    let receiver = WebhookReceiver::builder()
        .token(TOKEN)
        .shared_store(store.clone())
        .build()
        .expect("a valid receiver");
    let runs = Arc::new(AtomicU64::new(0));
    let handler: EventHandler = {
        let runs = Arc::clone(&runs);
        Arc::new(move |_event| {
            runs.fetch_add(1, Ordering::Relaxed);
            Box::pin(async { Ok(()) })
        })
    };
    let running = axum_receiver::spawn(receiver, handler, SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("the axum receiver starts");
    let (_, payment) = FIXTURES
        .iter()
        .find(|(name, _)| *name == "COURSE_PAYMENT_RECEIVED")
        .expect("the fixture");
    println!(
        "soak: {} deliveries (10% retransmissions of the last {} completions; those of the last \
         {} must be dropped) through the axum example receiver over loopback HTTP/1.1, {} \
         keep-alive connections, one 2-thread runtime; MemoryStore capacity {}",
        options.deliveries,
        options.capacity,
        options.capacity / 2,
        options.connections,
        options.capacity
    );
    let start = Instant::now();
    let soak = Arc::new(Soak {
        bodies: FreshIds::new(payment),
        fresh: AtomicU64::new(1),
        completions: Mutex::new(Completions {
            ring: vec![0; options.capacity.max(1)],
            done: 0,
        }),
        counters: Counters::default(),
        store,
        runs: Arc::clone(&runs),
        reporter: Mutex::new(Reporter {
            start,
            last: (start, 0),
            at_capacity: None,
            turned_over: None,
        }),
        options,
    });
    let tasks: Vec<_> = (0..soak.options.connections)
        .map(|i| {
            tokio::spawn(connection_loop(
                Arc::clone(&soak),
                running.addr(),
                0x9E37_79B9_7F4A_7C15u64.wrapping_mul(i as u64 + 1),
            ))
        })
        .collect();
    for task in tasks {
        task.await.expect("a connection task panicked");
    }
    let elapsed = start.elapsed();
    running.stop().await;

    let c = &soak.counters;
    let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let (rss, hwm) = rss_kib();
    let mut failures = Vec::new();
    let missed = get(&c.dup_missed);
    if missed > 0 {
        failures.push(format!("{missed} guaranteed duplicates ran the handler"));
    }
    if get(&c.failed) > 0 {
        failures.push(format!("{} deliveries failed", get(&c.failed)));
    }
    if get(&c.fresh_as_duplicate) > 0 {
        failures.push(format!(
            "{} fresh ids answered as duplicates",
            get(&c.fresh_as_duplicate)
        ));
    }
    let ran = soak.runs.load(Ordering::Relaxed);
    let ran_by_responses = get(&c.handled) + missed + get(&c.old_rerun);
    if ran != ran_by_responses {
        failures.push(format!(
            "the handler ran {ran} times, the responses say {ran_by_responses}"
        ));
    }
    let (at_capacity, turned_over) = {
        let r = soak.reporter.lock().unwrap();
        (r.at_capacity, r.turned_over)
    };
    if let Some((at, base)) = turned_over {
        println!(
            "memory, steady state: RSS {:.1} MiB once the store had turned over (after {at} \
             deliveries), {:.1} MiB at the end: {:+.1}%",
            mib(base),
            mib(rss),
            (rss as f64 - base as f64) / base as f64 * 100.0
        );
    }
    let growth = match at_capacity {
        Some((at, base, _)) => {
            let growth = (rss as f64 - base as f64) / base as f64;
            println!(
                "memory: RSS {:.1} MiB when the store reached capacity (after {at} deliveries), \
                 {:.1} MiB at the end: {:+.1}% (limit +{:.0}%); peak {:.1} MiB",
                mib(base),
                mib(rss),
                growth * 100.0,
                MAX_GROWTH * 100.0,
                mib(hwm)
            );
            if growth > MAX_GROWTH {
                failures.push(format!("RSS grew {:+.1}% after capacity", growth * 100.0));
            }
            format!("{:+.1}%", growth * 100.0)
        }
        None => {
            failures.push("the store never reached its capacity".into());
            "n/a".into()
        }
    };
    let verdict = if failures.is_empty() {
        "OK".to_owned()
    } else {
        format!("FAIL ({})", failures.join("; "))
    };
    println!(
        "summary: {verdict}: {} deliveries in {:.1}s ({:.0}/s), handled {}, duplicates dropped {} \
         (+{} older), missed {}, older re-run after eviction {}, RSS growth after capacity {growth}, \
         peak RSS {:.1} MiB",
        get(&c.finished),
        elapsed.as_secs_f64(),
        get(&c.finished) as f64 / elapsed.as_secs_f64(),
        get(&c.handled),
        get(&c.dup_dropped),
        get(&c.old_dropped),
        missed,
        get(&c.old_rerun),
        mib(hwm),
    );
    if failures.is_empty() { 0 } else { 1 }
}
