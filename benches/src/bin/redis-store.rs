//! The Redis store: round trips per delivery, counted on the wire, and the throughput of
//! claim+complete against a raw `SET key val NX PX` from the same client at the same
//! concurrency.
//!
//! ```sh
//! KNOLYX_BENCH_REDIS_URL=redis://127.0.0.1:6379/ \
//!     cargo run --release -p knolyx-webhook-benches --bin redis-store [-- --quick]
//! ```
//!
//! The URL defaults to `redis://127.0.0.1:6379/`; when nothing answers there the run says
//! so and exits 0 ("skipped"). Keys are under a prefix of their own
//! (`knolyx-bench:<pid>-<time>:`) and expire within a minute.
//!
//! # Round trips, counted
//!
//! A store connects through a tiny TCP proxy of this process that counts the RESP command
//! frames the client sends. Deliveries then run one after the other (each command awaited
//! before the next, so one command is one round trip): claim then complete, claim then
//! release, and the claim of a duplicate; the counts are divided by the deliveries. The
//! connection's setup (`HELLO`, `CLIENT SETINFO`…) and the first use of each script (an
//! `EVALSHA` answered `NOSCRIPT`, then `EVAL`, when the server has not cached it yet) come
//! before the counter is reset, and are printed apart.
//!
//! # Throughput
//!
//! Directly (no proxy), one store and its connection (one multiplexed connection), on a
//! current-thread runtime, with 1 and 16 concurrent tasks each looping on one operation:
//! raw `SET NX PX` through the store's own connection manager, a claim (one `EVALSHA`),
//! and a delivery's claim+complete. The six combinations run in rounds, each a time
//! slice per round in a rotating order, so the machine's drift hits them alike.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use knolyx_webhook_core::IdempotencyStore;
use knolyx_webhook_core::store::{ClaimOutcome, OwnerToken, SettleOutcome};
use knolyx_webhook_redis::RedisStore;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const DEFAULT_URL: &str = "redis://127.0.0.1:6379/";
const LEASE: Duration = Duration::from_secs(60);
const RETENTION: Duration = Duration::from_secs(60);
const CONCURRENCY: [usize; 2] = [1, 16];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    SetNx,
    Claim,
    ClaimComplete,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::SetNx => "SET NX PX (raw)",
            Op::Claim => "claim",
            Op::ClaimComplete => "claim+complete",
        }
    }
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let url = std::env::var("KNOLYX_BENCH_REDIS_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a Tokio runtime");
    runtime.block_on(run(&url, quick));
}

async fn connect(url: &str, prefix: &str) -> Result<RedisStore, String> {
    let connecting = RedisStore::builder()
        .key_prefix(prefix)
        .connection_timeout(Duration::from_secs(2))
        .reconnect_retries(0)
        .connect(url);
    match tokio::time::timeout(Duration::from_secs(5), connecting).await {
        Ok(Ok(store)) => Ok(store),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err("no answer within 5 s".to_owned()),
    }
}

async fn run(url: &str, quick: bool) {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    let prefix = format!("knolyx-bench:{}-{since_epoch}:", std::process::id());
    let store = match connect(url, &prefix).await {
        Ok(store) => store,
        Err(error) => {
            println!("redis-store: Redis is unreachable at {url} ({error})");
            println!(
                "summary: skipped (no Redis at {url}; set KNOLYX_BENCH_REDIS_URL to a reachable \
                 server)"
            );
            return;
        }
    };
    println!(
        "redis-store{}: {url}, keys under {prefix}",
        if quick { " --quick" } else { "" }
    );

    // ---- round trips ----
    let Some((host, port)) = host_port(url) else {
        println!("summary: skipped (cannot proxy {url}: only redis://host:port/ URLs)");
        return;
    };
    let (proxy, frames) = proxy(format!("{host}:{port}")).await;
    let proxied = proxied_url(url, proxy);
    let counted = connect(&proxied, &prefix)
        .await
        .expect("connect through the counting proxy");
    let setup = frames.swap(0, Ordering::SeqCst);
    let warm = OwnerToken::generate();
    counted.claim("warm-1", warm, LEASE).await.expect("claim");
    counted
        .complete("warm-1", warm, RETENTION)
        .await
        .expect("complete");
    counted.claim("warm-2", warm, LEASE).await.expect("claim");
    counted.release("warm-2", warm).await.expect("release");
    let first_use = frames.swap(0, Ordering::SeqCst);
    let deliveries: u64 = if quick { 200 } else { 2_000 };
    for i in 0..deliveries {
        let owner = OwnerToken::generate();
        let id = format!("rt-complete-{i}");
        assert_eq!(
            counted.claim(&id, owner, LEASE).await.expect("claim"),
            ClaimOutcome::Claimed
        );
        assert_eq!(
            counted
                .complete(&id, owner, RETENTION)
                .await
                .expect("complete"),
            SettleOutcome::Settled
        );
    }
    let per_delivery = frames.swap(0, Ordering::SeqCst) as f64 / deliveries as f64;
    for i in 0..deliveries {
        let id = format!("rt-complete-{i}");
        assert_eq!(
            counted
                .claim(&id, OwnerToken::generate(), LEASE)
                .await
                .expect("claim"),
            ClaimOutcome::Completed
        );
    }
    let per_duplicate = frames.swap(0, Ordering::SeqCst) as f64 / deliveries as f64;
    for i in 0..deliveries {
        let owner = OwnerToken::generate();
        let id = format!("rt-release-{i}");
        counted.claim(&id, owner, LEASE).await.expect("claim");
        assert_eq!(
            counted.release(&id, owner).await.expect("release"),
            SettleOutcome::Settled
        );
    }
    let per_release = frames.swap(0, Ordering::SeqCst) as f64 / deliveries as f64;
    drop(counted);
    println!();
    println!("round trips (commands sent, counted by a proxy; {deliveries} deliveries each):");
    println!("  connection setup (once)         {setup}");
    println!(
        "  first use of the scripts        {first_use} (claim, complete, claim, release: 4 \
         when the server has them cached, one more per script it has not)"
    );
    println!("  claim + complete, per delivery  {per_delivery:.2}   (target <= 2)");
    println!("  claim of a duplicate            {per_duplicate:.2}");
    println!("  claim + release (failed handler) {per_release:.2}");

    // ---- throughput ----
    let (rounds, slice) = if quick {
        (3, Duration::from_millis(500))
    } else {
        (8, Duration::from_millis(1_500))
    };
    let store = Arc::new(store);
    let next_id = Arc::new(AtomicU64::new(0));
    let combos: Vec<(Op, usize)> = CONCURRENCY
        .iter()
        .flat_map(|&c| [Op::SetNx, Op::Claim, Op::ClaimComplete].map(|op| (op, c)))
        .collect();
    let mut rates = vec![Vec::new(); combos.len()];
    // Round 0 warms up and is not recorded.
    for round in 0..=rounds {
        for k in 0..combos.len() {
            let i = (k + round) % combos.len();
            let (op, concurrency) = combos[i];
            let length = if round == 0 { slice / 2 } else { slice };
            let rate = drive(&store, &next_id, op, concurrency, length).await;
            if round > 0 {
                rates[i].push(rate);
            }
        }
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    println!();
    println!(
        "throughput ({rounds} rounds x {} ms per case, alternating; one multiplexed connection, \
         current-thread client):",
        slice.as_millis()
    );
    println!(
        "  {:<18} {:>11} {:>11} {:>14}",
        "operation", "concurrency", "ops/s", "us/op (c=1)"
    );
    let rate_of = |op: Op, c: usize| {
        let i = combos
            .iter()
            .position(|&x| x == (op, c))
            .expect("a combination");
        mean(&rates[i])
    };
    for &(op, c) in &combos {
        let rate = rate_of(op, c);
        let latency = if c == 1 {
            format!("{:.1}", 1e6 / rate)
        } else {
            String::new()
        };
        println!("  {:<18} {c:>11} {rate:>11.0} {latency:>14}", op.name());
    }
    println!();
    let mut summary = Vec::new();
    for c in CONCURRENCY {
        let raw = rate_of(Op::SetNx, c);
        let claim = rate_of(Op::Claim, c) / raw;
        let delivery = rate_of(Op::ClaimComplete, c) / raw;
        println!(
            "  concurrency {c:>2}: claim/SETNX = {claim:.2}, claim+complete/SETNX = {delivery:.2} \
             (0.5 = two commands each as cheap as one SET)"
        );
        summary.push(format!("c{c} claim+complete/SETNX={delivery:.2}"));
    }
    let met = if per_delivery <= 2.0 { "met" } else { "MISSED" };
    println!(
        "summary: round trips per delivery={per_delivery:.2} (target <= 2: {met}), \
         duplicate={per_duplicate:.2}; {}",
        summary.join(" ")
    );
}

/// Runs `op` on `concurrency` tasks for `length`; operations per second.
async fn drive(
    store: &Arc<RedisStore>,
    next_id: &Arc<AtomicU64>,
    op: Op,
    concurrency: usize,
    length: Duration,
) -> f64 {
    let start = Instant::now();
    let deadline = start + length;
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let store = Arc::clone(store);
            let next_id = Arc::clone(next_id);
            tokio::spawn(async move {
                let mut done = 0u64;
                let mut conn = store
                    .connection_manager()
                    .expect("a redis:// store")
                    .clone();
                let raw_prefix = [store.key_prefix(), b"raw:"].concat();
                while Instant::now() < deadline {
                    let n = next_id.fetch_add(1, Ordering::Relaxed);
                    match op {
                        Op::SetNx => {
                            let mut key = raw_prefix.clone();
                            key.extend_from_slice(n.to_string().as_bytes());
                            let set: Option<String> = redis::cmd("SET")
                                .arg(key)
                                .arg("1")
                                .arg("NX")
                                .arg("PX")
                                .arg(LEASE.as_millis() as u64)
                                .query_async(&mut conn)
                                .await
                                .expect("SET NX");
                            assert!(set.is_some(), "a fresh key");
                        }
                        Op::Claim => {
                            let id = format!("tp-{n}");
                            let claimed = store.claim(&id, OwnerToken::generate(), LEASE).await;
                            assert_eq!(claimed.expect("claim"), ClaimOutcome::Claimed);
                        }
                        Op::ClaimComplete => {
                            let id = format!("tp-{n}");
                            let owner = OwnerToken::generate();
                            let claimed = store.claim(&id, owner, LEASE).await;
                            assert_eq!(claimed.expect("claim"), ClaimOutcome::Claimed);
                            let settled = store.complete(&id, owner, RETENTION).await;
                            assert_eq!(settled.expect("complete"), SettleOutcome::Settled);
                        }
                    }
                    done += 1;
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

// ---- the counting proxy ----

/// `host` and `port` of a `redis://[user[:password]@]host[:port][/db]` URL.
fn host_port(url: &str) -> Option<(String, u16)> {
    let rest = url.strip_prefix("redis://")?;
    let authority = rest.split('/').next()?;
    let hostport = authority.rsplit('@').next()?;
    match hostport.rsplit_once(':') {
        Some((host, port)) if !port.ends_with(']') => Some((host.to_owned(), port.parse().ok()?)),
        _ => Some((hostport.to_owned(), 6379)),
    }
}

/// `url` with its host and port replaced by the proxy's.
fn proxied_url(url: &str, proxy: SocketAddr) -> String {
    let rest = url.strip_prefix("redis://").unwrap_or(url);
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let userinfo = authority
        .rsplit_once('@')
        .map(|(u, _)| format!("{u}@"))
        .unwrap_or_default();
    format!("redis://{userinfo}{proxy}{path}")
}

/// A proxy to `target` on `127.0.0.1:0`; counts the command frames clients send.
async fn proxy(target: String) -> (SocketAddr, Arc<AtomicU64>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the proxy");
    let addr = listener.local_addr().expect("the proxy's address");
    let frames = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&frames);
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = tokio::net::TcpStream::connect(&target).await else {
                continue;
            };
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            let (mut from_client, mut to_client) = client.into_split();
            let (mut from_server, mut to_server) = server.into_split();
            let counter = Arc::clone(&counter);
            tokio::spawn(async move {
                let mut frames = RespFrames::default();
                let mut buf = vec![0u8; 16 * 1024];
                while let Ok(n @ 1..) = from_client.read(&mut buf).await {
                    counter.fetch_add(frames.feed(&buf[..n]), Ordering::SeqCst);
                    if to_server.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut from_server, &mut to_client).await;
            });
        }
    });
    (addr, frames)
}

/// Counts complete RESP request frames (arrays of bulk strings, or inline commands) in a
/// stream cut anywhere.
#[derive(Default, Debug)]
struct RespFrames {
    pending: Vec<u8>,
}

impl RespFrames {
    fn feed(&mut self, bytes: &[u8]) -> u64 {
        self.pending.extend_from_slice(bytes);
        let mut at = 0;
        let mut count = 0;
        while let Some(len) = frame_len(&self.pending[at..]) {
            at += len;
            count += 1;
        }
        self.pending.drain(..at);
        count
    }
}

/// The length of the complete frame at the start of `buf`, if it is all there.
fn frame_len(buf: &[u8]) -> Option<usize> {
    let (&first, _) = buf.split_first()?;
    if first != b'*' {
        // An inline command: one line.
        return line_end(buf, 0);
    }
    let (items, mut at) = line_number(buf, 1)?;
    for _ in 0..items {
        if *buf.get(at)? != b'$' {
            // Not a bulk string: count the frame as it stands (never seen from a client).
            return Some(at);
        }
        let (len, next) = line_number(buf, at + 1)?;
        at = next + usize::try_from(len).ok()? + 2;
        if at > buf.len() {
            return None;
        }
    }
    Some(at)
}

/// The index just past the `\r\n` ending the line that starts at `from`.
fn line_end(buf: &[u8], from: usize) -> Option<usize> {
    let rel = buf.get(from..)?.windows(2).position(|w| w == b"\r\n")?;
    Some(from + rel + 2)
}

/// The decimal number on the line starting at `from`, and the index past its `\r\n`.
fn line_number(buf: &[u8], from: usize) -> Option<(i64, usize)> {
    let end = line_end(buf, from)?;
    let number = std::str::from_utf8(&buf[from..end - 2])
        .ok()?
        .parse()
        .ok()?;
    Some((number, end))
}
