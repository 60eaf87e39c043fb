//! Claim+complete throughput of the PostgreSQL store, directly and through PgBouncer in
//! transaction mode, with the default settings ([`Pooler::Direct`]: prepared statements)
//! and the pooler setting ([`Pooler::Transaction`]: one simple query per operation).
//!
//! ```sh
//! KNOLYX_BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test \
//!     cargo run [--release] -p knolyx-webhook-postgres --features testing \
//!     --example pooler-throughput [-- --quick]
//! ```
//!
//! The figures in BENCHMARKS.md are of a dev build (no release builds on the shared
//! machine).
//!
//! The URL defaults to `postgres://postgres@127.0.0.1:5432/test`. The pooler is a private
//! `pgbouncer` started by the run ([`PrivatePgBouncer`], as many server connections as the
//! client pool has); without PostgreSQL or `pgbouncer` the run says so and exits 0
//! ("skipped"). The rows go to a table of the run's own, dropped at the end.
//!
//! Each case is one store on one client pool of 16 connections, on a current-thread
//! runtime, with 1 and 16 tasks each looping on claim+complete of new ids; the cases run in
//! rounds, a time slice each per round in a rotating order, so that the machine's drift
//! hits them alike. Every operation's outcome is checked; failures are counted, not timed.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use knolyx_webhook_core::IdempotencyStore;
use knolyx_webhook_core::store::{ClaimOutcome, OwnerToken, SettleOutcome};
use knolyx_webhook_postgres::testing::PrivatePgBouncer;
use knolyx_webhook_postgres::{Pooler, PostgresStore};
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
const TTL: Duration = Duration::from_secs(60);
const CONCURRENCY: [usize; 2] = [1, 16];
const CONNECTIONS: u32 = 16;

/// One way to reach the database.
struct Case {
    name: &'static str,
    store: PostgresStore,
    failures: Arc<AtomicU64>,
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let url = std::env::var("KNOLYX_BENCH_DATABASE_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a Tokio runtime");
    runtime.block_on(run(&url, quick));
}

async fn pool(options: PgConnectOptions) -> Result<PgPool, sqlx::Error> {
    PgPoolOptions::new()
        .max_connections(CONNECTIONS)
        .min_connections(CONNECTIONS)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(options)
        .await
}

async fn run(url: &str, quick: bool) {
    let options: PgConnectOptions = match url.parse() {
        Ok(options) => options,
        Err(error) => {
            println!("summary: skipped (not a postgres URL: {error})");
            return;
        }
    };
    let direct = match pool(options.clone()).await {
        Ok(pool) => pool,
        Err(error) => {
            println!("summary: skipped (no PostgreSQL at {url}: {error})");
            return;
        }
    };
    let Some(bouncer) = PrivatePgBouncer::start_with_pool_size(url, CONNECTIONS).await else {
        println!("summary: skipped (pgbouncer is not installed)");
        return;
    };
    let pooled = pool(bouncer.connect_options())
        .await
        .expect("connect through pgbouncer");
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    let table = format!("knolyx_bench_{}_{since_epoch}", std::process::id());
    let store = |pool: &PgPool, pooler| {
        PostgresStore::builder(pool.clone())
            .table(&table)
            .operation_timeout(Duration::from_secs(10))
            .pooler(pooler)
            .build()
            .expect("a valid table name")
    };
    let cases = [
        ("direct, default (prepared)", store(&direct, Pooler::Direct)),
        (
            "direct, Pooler::Transaction",
            store(&direct, Pooler::Transaction),
        ),
        (
            "pgbouncer, Pooler::Transaction",
            store(&pooled, Pooler::Transaction),
        ),
        ("pgbouncer, default", store(&pooled, Pooler::Direct)),
    ]
    .map(|(name, store)| Case {
        name,
        store,
        failures: Arc::new(AtomicU64::new(0)),
    });
    cases[0].store.migrate().await.expect("migrate");
    println!(
        "pooler-throughput{}: {url} and pgbouncer on port {} (pool_mode = transaction, \
         {CONNECTIONS} server connections), table {table}",
        if quick { " --quick" } else { "" },
        bouncer.port()
    );

    let (rounds, slice) = if quick {
        (2, Duration::from_millis(400))
    } else {
        (6, Duration::from_millis(1_500))
    };
    let combos: Vec<(usize, usize)> = CONCURRENCY
        .iter()
        .flat_map(|&c| (0..cases.len()).map(move |case| (case, c)))
        .collect();
    let next_id = Arc::new(AtomicU64::new(0));
    let mut rates = vec![Vec::new(); combos.len()];
    // Round 0 warms up (and lets the default store behind the pooler switch) and is not
    // recorded.
    for round in 0..=rounds {
        for k in 0..combos.len() {
            let i = (k + round) % combos.len();
            let (case, concurrency) = combos[i];
            let length = if round == 0 { slice / 2 } else { slice };
            let rate = drive(&cases[case], &next_id, concurrency, length).await;
            if round > 0 {
                rates[i].push(rate);
            }
        }
    }

    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let rate_of = |case: usize, c: usize| {
        let i = combos
            .iter()
            .position(|&x| x == (case, c))
            .expect("a combination");
        mean(&rates[i])
    };
    println!();
    println!(
        "claim+complete ({rounds} rounds x {} ms per case, alternating; {CONNECTIONS} client \
         connections, current-thread client):",
        slice.as_millis()
    );
    println!(
        "  {:<32} {:>11} {:>11} {:>14} {:>10} {:>9}",
        "case", "concurrency", "ops/s", "us/op (c=1)", "/ direct", "failures"
    );
    for &(case, c) in &combos {
        let rate = rate_of(case, c);
        let latency = if c == 1 {
            format!("{:.0}", 1e6 / rate)
        } else {
            String::new()
        };
        println!(
            "  {:<32} {c:>11} {rate:>11.0} {latency:>14} {:>10.2} {:>9}",
            cases[case].name,
            rate / rate_of(0, c),
            if c == CONCURRENCY[0] {
                cases[case].failures.load(Ordering::Relaxed).to_string()
            } else {
                String::new()
            }
        );
    }
    println!(
        "  (failures: over every round and both concurrencies; the default store behind the \
         pooler is now {:?})",
        cases[3].store.pooler()
    );
    let mut summary = Vec::new();
    for c in CONCURRENCY {
        summary.push(format!(
            "c{c} direct-simple/direct-prepared={:.2} pgbouncer-simple/direct-prepared={:.2}",
            rate_of(1, c) / rate_of(0, c),
            rate_of(2, c) / rate_of(0, c)
        ));
    }
    let failures: u64 = cases
        .iter()
        .map(|case| case.failures.load(Ordering::Relaxed))
        .sum();
    println!("summary: {}; failures={failures}", summary.join(" "));
    sqlx::raw_sql(&format!("DROP TABLE IF EXISTS \"{table}\""))
        .execute(&direct)
        .await
        .expect("drop the bench table");
}

/// Runs claim+complete on `concurrency` tasks for `length`; deliveries per second.
async fn drive(case: &Case, next_id: &Arc<AtomicU64>, concurrency: usize, length: Duration) -> f64 {
    let start = Instant::now();
    let deadline = start + length;
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let (store, failures) = (case.store.clone(), Arc::clone(&case.failures));
            let next_id = Arc::clone(next_id);
            tokio::spawn(async move {
                let mut done = 0u64;
                while Instant::now() < deadline {
                    let id = format!("bench-{}", next_id.fetch_add(1, Ordering::Relaxed));
                    let owner = OwnerToken::generate();
                    let ok = matches!(
                        store.claim(&id, owner, TTL).await,
                        Ok(ClaimOutcome::Claimed)
                    ) && matches!(
                        store.complete(&id, owner, TTL).await,
                        Ok(SettleOutcome::Settled)
                    );
                    if ok {
                        done += 1;
                    } else {
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                }
                done
            })
        })
        .collect();
    let mut done = 0;
    for task in tasks {
        done += task.await.expect("a task panicked");
    }
    done as f64 / start.elapsed().as_secs_f64()
}
