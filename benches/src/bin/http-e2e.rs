//! End to end over loopback HTTP: one load generator drives six servers of this process in
//! alternation, and compares our adapters with a server that does nothing and with a
//! hand-written handler doing the same work naively.
//!
//! ```sh
//! cargo run --release -p knolyx-webhook-benches --bin http-e2e [-- --quick]
//!     [--connections N] [--rounds R] [--slice-ms MS] [--warmup-ms MS]
//! ```
//!
//! The servers, each on `127.0.0.1:0`:
//!
//! - **axum noop**: a handler that takes the body as `Bytes` and returns 200 (it does take
//!   the body: actix-web closes a keep-alive connection whose request body was left unread,
//!   so a handler skipping it would measure reconnections; both noops take it alike);
//! - **axum naive**: `Json<serde_json::Value>`, a string compare of the token header and a
//!   `Mutex<HashSet<String>>` of ids (a duplicate is answered 200, flagged, without work);
//! - **axum ours**: [`KnolyxWebhookLayer`] (memory store) and the [`KnolyxEvent`] extractor;
//! - **actix noop / naive / ours**: the same three on actix-web 4, ours with
//!   [`knolyx_webhook_actix::KnolyxEvent`] and [`KnolyxWebhookMiddleware`].
//!
//! # Setup, and fairness on a small machine
//!
//! Every server runs on **one thread** (axum: a current-thread Tokio runtime on its own
//! thread; actix-web: one worker), and the load generator on **one thread** of its own (a
//! current-thread runtime in `main`). Only one server is driven at a time, the others
//! sleep in `epoll`, so on two cores the client and the server under test each get a core,
//! whichever server it is. The client is hyper's HTTP/1.1 connection API: N keep-alive
//! connections per server (32 by default), opened once, each driven by a task that keeps
//! exactly one request in flight (N concurrent requests).
//!
//! Each request is a `PUT` with the token header and `Content-Type: application/json`, its
//! body one of the five fixtures in turn with a fresh unique id (one counter for the whole
//! run, so no server ever sees an id twice by accident); every tenth request of a
//! connection is instead a retransmission of that connection's previous first delivery
//! (whose answer has arrived, so it is a duplicate of a *completed* delivery).
//!
//! After a warm-up slice per server (measured for nothing but correctness), each round
//! gives every server one time slice, in an order that rotates from round to round, so a
//! drift of the machine (other builds, thermal) hits all servers alike. Requests per second
//! are the requests answered over the slices' total time; latencies (p50, p99) are those of
//! every request of the measured slices, from sending to the end of the response body.
//!
//! On two cores the client is the bottleneck (it spends about as much CPU per request as
//! the server), which narrows the throughput ratios. So the run also reads the CPU time
//! (user + system, from `/proc/<pid>/task/<tid>/stat`) of each server's threads and of the
//! client's over the measured slices, and prints it per request: the ratios of those
//! (noop/ours, naive/ours) are what the throughput ratios would be with a server-bound load.
//!
//! Every response is checked: 200 always, and `x-knolyx-webhook-duplicate: true` exactly on
//! the retransmissions (except of a `PING`, which our pipeline answers without claiming)
//! for ours and the naive handler. Anything else is counted and printed, and makes the run
//! fail (exit 1) after its summary, so a broken server cannot look fast.

use std::collections::HashSet;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::any;
use bytes::Bytes;
use http::Request;
use http::header::{CONTENT_TYPE, HOST};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use knolyx_webhook_actix::KnolyxWebhookMiddleware;
use knolyx_webhook_benches::{FreshIds, TOKEN, fixtures};
use knolyx_webhook_core::store::MemoryStore;
use knolyx_webhook_core::{DUPLICATE_HEADER, TOKEN_HEADER, WebhookReceiver};
use knolyx_webhook_tower::{KnolyxEvent, KnolyxWebhookLayer};
use serde_json::Value;

const ROUTE: &str = "/webhooks/knolyx";
/// Every `RETRANSMIT_EVERY`-th request of a connection is a retransmission (10%).
const RETRANSMIT_EVERY: u64 = 10;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Framework {
    Axum,
    Actix,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Noop,
    Naive,
    Ours,
}

#[derive(Debug)]
struct Server {
    name: &'static str,
    framework: Framework,
    kind: Kind,
    addr: SocketAddr,
    /// The `/proc/…/task/…/stat` of the threads the server runs on.
    threads: Threads,
}

/// The `stat` files (`/proc/<pid>/task/<tid>/stat`) of some threads.
type Threads = Arc<Mutex<Vec<PathBuf>>>;

/// Adds the calling thread to `threads`.
fn record_thread(threads: &Threads) {
    if let Ok(link) = std::fs::read_link("/proc/thread-self") {
        let path = Path::new("/proc").join(link).join("stat");
        threads.lock().unwrap().push(path);
    }
}

/// The CPU time (user + system) the threads have used, in clock ticks (10 ms on Linux,
/// where `CLK_TCK` is 100); 0 where `/proc` is not there.
fn cpu_ticks(threads: &Threads) -> u64 {
    let paths = threads.lock().unwrap().clone();
    paths
        .iter()
        .filter_map(|path| {
            let stat = std::fs::read_to_string(path).ok()?;
            // Fields after the command's `)`: state is the 3rd field, utime the 14th.
            let mut fields = stat
                .get(stat.rfind(')')? + 1..)?
                .split_whitespace()
                .skip(11);
            let utime: u64 = fields.next()?.parse().ok()?;
            let stime: u64 = fields.next()?.parse().ok()?;
            Some(utime + stime)
        })
        .sum()
}

/// Microseconds per clock tick of `/proc/…/stat`.
const TICK_US: f64 = 10_000.0;

/// Counters of one server (or one slice of it).
#[derive(Default, Debug)]
struct Stats {
    requests: u64,
    retransmissions: u64,
    non_2xx: u64,
    wrong_duplicate_flag: u64,
    errors: u64,
    reconnects: u64,
    latencies_us: Vec<u32>,
    server_ticks: u64,
    client_ticks: u64,
}

impl Stats {
    fn add(&mut self, other: Stats, measured: bool) {
        self.non_2xx += other.non_2xx;
        self.wrong_duplicate_flag += other.wrong_duplicate_flag;
        self.errors += other.errors;
        self.reconnects += other.reconnects;
        if measured {
            self.requests += other.requests;
            self.retransmissions += other.retransmissions;
            self.latencies_us.extend(other.latencies_us);
            self.server_ticks += other.server_ticks;
            self.client_ticks += other.client_ticks;
        }
    }

    fn bad(&self) -> u64 {
        self.non_2xx + self.wrong_duplicate_flag + self.errors
    }
}

#[derive(Debug)]
struct Options {
    quick: bool,
    connections: usize,
    rounds: usize,
    slice: Duration,
    warmup: Duration,
}

fn options() -> Options {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    let value = |flag: &str| -> Option<u64> {
        let at = args.iter().position(|a| a == flag)?;
        let value = args.get(at + 1).and_then(|v| v.parse().ok());
        Some(value.unwrap_or_else(|| panic!("{flag} takes a number")))
    };
    let (rounds, slice_ms, warmup_ms) = if quick {
        (4, 800, 300)
    } else {
        (10, 1_500, 1_000)
    };
    Options {
        quick,
        connections: value("--connections").unwrap_or(32) as usize,
        rounds: value("--rounds").unwrap_or(rounds) as usize,
        slice: Duration::from_millis(value("--slice-ms").unwrap_or(slice_ms)),
        warmup: Duration::from_millis(value("--warmup-ms").unwrap_or(warmup_ms)),
    }
}

fn main() {
    let options = options();
    let servers: Vec<Server> = [
        ("axum noop", Framework::Axum, Kind::Noop),
        ("axum naive", Framework::Axum, Kind::Naive),
        ("axum ours", Framework::Axum, Kind::Ours),
        ("actix noop", Framework::Actix, Kind::Noop),
        ("actix naive", Framework::Actix, Kind::Naive),
        ("actix ours", Framework::Actix, Kind::Ours),
    ]
    .into_iter()
    .map(|(name, framework, kind)| {
        let threads = Threads::default();
        Server {
            name,
            framework,
            kind,
            addr: match framework {
                Framework::Axum => start_axum(kind, Arc::clone(&threads)),
                Framework::Actix => start_actix(kind, Arc::clone(&threads)),
            },
            threads,
        }
    })
    .collect();

    println!(
        "http-e2e{}: {} keep-alive HTTP/1.1 connections per server, one request in flight \
         each, from one client thread; each server on one thread; {} rounds x {} ms per \
         server in rotating order, after {} ms of warm-up each; 1 in {RETRANSMIT_EVERY} \
         requests a retransmission",
        if options.quick { " --quick" } else { "" },
        options.connections,
        options.rounds,
        options.slice.as_millis(),
        options.warmup.as_millis(),
    );

    let client = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a Tokio runtime");
    let (totals, per_round) = client.block_on(drive_all(&servers, &options));
    report(&servers, &totals, &per_round, &options);
}

/// The load: per server, its connections, then the warm-up and the rounds. Returns the
/// totals per server and the requests per second of each server in each round.
async fn drive_all(servers: &[Server], options: &Options) -> (Vec<Stats>, Vec<Vec<f64>>) {
    let load = Arc::new(Load::new());
    let client = Threads::default();
    record_thread(&client);
    let mut connections = Vec::new();
    for server in servers {
        let mut conns = Vec::new();
        for _ in 0..options.connections {
            conns.push(connect(server.addr).await.expect("connect to the server"));
        }
        connections.push(conns);
    }
    let mut totals: Vec<Stats> = servers.iter().map(|_| Stats::default()).collect();
    let mut per_round = vec![Vec::new(); servers.len()];
    for (i, server) in servers.iter().enumerate() {
        let conns = std::mem::take(&mut connections[i]);
        let (conns, stats, _) = slice(server, conns, &load, options.warmup, &client).await;
        connections[i] = conns;
        totals[i].add(stats, false);
    }
    for round in 0..options.rounds {
        for k in 0..servers.len() {
            let i = (k + round) % servers.len();
            let conns = std::mem::take(&mut connections[i]);
            let (conns, stats, elapsed) =
                slice(&servers[i], conns, &load, options.slice, &client).await;
            connections[i] = conns;
            per_round[i].push(stats.requests as f64 / elapsed.as_secs_f64());
            totals[i].add(stats, true);
        }
    }
    (totals, per_round)
}

/// What the connections share: the bodies and the id counter.
#[derive(Debug)]
struct Load {
    templates: Vec<(bool, FreshIds)>,
    next_id: AtomicU64,
}

impl Load {
    fn new() -> Self {
        Self {
            templates: fixtures()
                .map(|(name, body)| (name == "PING", FreshIds::new(body)))
                .collect(),
            next_id: AtomicU64::new(1),
        }
    }

    /// A first delivery: `(is a PING, body)`.
    fn fresh(&self) -> (bool, Bytes) {
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (ping, ids) = &self.templates[(n % self.templates.len() as u64) as usize];
        (*ping, ids.body_for(n))
    }
}

type Sender = SendRequest<Full<Bytes>>;

async fn connect(addr: SocketAddr) -> Result<Sender, Box<dyn std::error::Error + Send + Sync>> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

/// Drives `server` through all its connections for `length`; gives the connections back
/// with the slice's counters and its actual length.
async fn slice(
    server: &Server,
    conns: Vec<Sender>,
    load: &Arc<Load>,
    length: Duration,
    client: &Threads,
) -> (Vec<Sender>, Stats, Duration) {
    let (server_before, client_before) = (cpu_ticks(&server.threads), cpu_ticks(client));
    let start = Instant::now();
    let deadline = start + length;
    let tasks: Vec<_> = conns
        .into_iter()
        .enumerate()
        .map(|(n, sender)| {
            tokio::spawn(connection_loop(
                sender,
                server.addr,
                server.kind,
                Arc::clone(load),
                deadline,
                n as u64,
            ))
        })
        .collect();
    let mut conns = Vec::with_capacity(tasks.len());
    let mut stats = Stats::default();
    for task in tasks {
        let (sender, task_stats) = task.await.expect("a connection task panicked");
        conns.push(sender);
        stats.add(task_stats, true);
    }
    let elapsed = start.elapsed();
    stats.server_ticks = cpu_ticks(&server.threads) - server_before;
    stats.client_ticks = cpu_ticks(client) - client_before;
    (conns, stats, elapsed)
}

/// One connection: one request at a time until `deadline`, each response checked.
async fn connection_loop(
    mut sender: Sender,
    addr: SocketAddr,
    kind: Kind,
    load: Arc<Load>,
    deadline: Instant,
    offset: u64,
) -> (Sender, Stats) {
    let mut stats = Stats::default();
    let mut last: Option<(bool, Bytes)> = None;
    // Offset per connection, so the retransmissions do not all come in the same instant.
    let mut n = offset;
    while Instant::now() < deadline {
        n += 1;
        let (retransmission, ping, body) = match &last {
            Some((ping, body)) if n.is_multiple_of(RETRANSMIT_EVERY) => (true, *ping, body.clone()),
            _ => {
                let (ping, body) = load.fresh();
                (false, ping, body)
            }
        };
        if sender.ready().await.is_err() {
            // The server closed the idle connection (an idle timeout): open another.
            stats.reconnects += 1;
            match connect(addr).await {
                Ok(new) => sender = new,
                Err(_) => {
                    stats.errors += 1;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            }
        }
        let request = Request::put(ROUTE)
            .header(HOST, "127.0.0.1")
            .header(TOKEN_HEADER, TOKEN)
            .header(CONTENT_TYPE, "application/json")
            .body(Full::new(body.clone()))
            .expect("a valid request");
        let sent = Instant::now();
        let response = match sender.send_request(request).await {
            Ok(response) => response,
            Err(_) => {
                stats.errors += 1;
                continue;
            }
        };
        let status = response.status();
        let flagged = response
            .headers()
            .get(DUPLICATE_HEADER)
            .is_some_and(|v| v == "true");
        if response.into_body().collect().await.is_err() {
            stats.errors += 1;
            continue;
        }
        let micros = sent.elapsed().as_micros();
        stats.requests += 1;
        stats
            .latencies_us
            .push(u32::try_from(micros).unwrap_or(u32::MAX));
        if status != StatusCode::OK {
            stats.non_2xx += u64::from(!status.is_success());
            stats.wrong_duplicate_flag += u64::from(status.is_success());
            continue;
        }
        let expect_flag = match kind {
            Kind::Noop => None,
            Kind::Naive => Some(retransmission),
            Kind::Ours => Some(retransmission && !ping),
        };
        if expect_flag.is_some_and(|expected| expected != flagged) {
            stats.wrong_duplicate_flag += 1;
        }
        if retransmission {
            stats.retransmissions += 1;
        } else {
            last = Some((ping, body));
        }
    }
    (sender, stats)
}

// ---- the servers ----

/// The naive handler's state: the token, compared as a string, and every id seen.
#[derive(Debug)]
struct Naive {
    token: String,
    seen: Mutex<HashSet<String>>,
}

impl Naive {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            token: TOKEN.to_owned(),
            seen: Mutex::new(HashSet::new()),
        })
    }

    /// 401, 400, a duplicate, or a first delivery (`None`: the handler's work, none here).
    fn check(&self, token: Option<&str>, value: &Value) -> Option<(u16, bool)> {
        if token != Some(self.token.as_str()) {
            return Some((401, false));
        }
        let Some(id) = value.get("id").and_then(Value::as_str) else {
            return Some((400, false));
        };
        if !self.seen.lock().unwrap().insert(id.to_owned()) {
            return Some((200, true));
        }
        None
    }
}

fn receiver() -> WebhookReceiver {
    WebhookReceiver::builder()
        .token(TOKEN)
        .store(MemoryStore::new())
        .build()
        .expect("valid configuration")
}

fn bind() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("a local address");
    (listener, addr)
}

/// An axum server on its own thread and current-thread runtime.
fn start_axum(kind: Kind, threads: Threads) -> SocketAddr {
    let (listener, addr) = bind();
    listener.set_nonblocking(true).expect("non-blocking");
    let app = match kind {
        Kind::Noop => Router::new().route(ROUTE, any(|_body: Bytes| async { StatusCode::OK })),
        Kind::Naive => Router::new()
            .route(ROUTE, any(naive_axum))
            .with_state(Naive::new()),
        Kind::Ours => Router::new()
            .route(ROUTE, any(ours_axum))
            .route_layer(KnolyxWebhookLayer::new(receiver())),
    };
    std::thread::Builder::new()
        .name(format!("axum-{kind:?}"))
        .spawn(move || {
            record_thread(&threads);
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a Tokio runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("a listener");
                axum::serve(listener, app).await.expect("axum serves");
            });
        })
        .expect("a server thread");
    addr
}

async fn naive_axum(
    State(naive): State<Arc<Naive>>,
    headers: HeaderMap,
    axum::Json(value): axum::Json<Value>,
) -> (StatusCode, HeaderMap) {
    let token = headers.get(TOKEN_HEADER).and_then(|v| v.to_str().ok());
    let mut answer = HeaderMap::new();
    match naive.check(token, &value) {
        Some((status, duplicate)) => {
            if duplicate {
                answer.insert(DUPLICATE_HEADER, http::HeaderValue::from_static("true"));
            }
            (StatusCode::from_u16(status).expect("a status"), answer)
        }
        None => (StatusCode::OK, answer),
    }
}

async fn ours_axum(KnolyxEvent(event): KnolyxEvent) -> StatusCode {
    std::hint::black_box(&event);
    StatusCode::OK
}

/// An actix-web server with one worker, its system on a thread of its own.
fn start_actix(kind: Kind, threads: Threads) -> SocketAddr {
    let (listener, addr) = bind();
    // One worker, no signals, and the keep-alive connections kept open while the other
    // servers have their slices (actix-web closes idle ones after 5 s by default, and those
    // whose first request waits more than 5 s).
    macro_rules! serve {
        ($server:expr) => {
            $server
                .workers(1)
                .disable_signals()
                .keep_alive(Duration::from_secs(3600))
                // The connections are opened at start, and a server's first request may
                // come after the others' warm-ups: more than the default 5 s.
                .client_request_timeout(Duration::from_secs(3600))
                .listen(listener)
                .expect("listen")
                .run()
        };
    }
    std::thread::Builder::new()
        .name(format!("actix-{kind:?}"))
        .spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let server = match kind {
                    // The factory runs on each worker thread (and, once, on the system's):
                    // the threads whose CPU time is the server's.
                    Kind::Noop => serve!(HttpServer::new(move || {
                        record_thread(&threads);
                        App::new().route(
                            ROUTE,
                            web::route()
                                .to(|_body: web::Bytes| async { HttpResponse::Ok().finish() }),
                        )
                    })),
                    Kind::Naive => {
                        let naive = web::Data::from(Naive::new());
                        serve!(HttpServer::new(move || {
                            record_thread(&threads);
                            App::new()
                                .app_data(naive.clone())
                                .route(ROUTE, web::route().to(naive_actix))
                        }))
                    }
                    Kind::Ours => {
                        let receiver = receiver();
                        serve!(HttpServer::new(move || {
                            record_thread(&threads);
                            App::new().app_data(receiver.clone()).service(
                                web::resource(ROUTE)
                                    .wrap(KnolyxWebhookMiddleware)
                                    .route(web::route().to(ours_actix)),
                            )
                        }))
                    }
                };
                server.await.expect("actix-web serves");
            });
        })
        .expect("a server thread");
    addr
}

async fn naive_actix(
    request: HttpRequest,
    naive: web::Data<Naive>,
    web::Json(value): web::Json<Value>,
) -> HttpResponse {
    let token = request
        .headers()
        .get(TOKEN_HEADER)
        .and_then(|v| v.to_str().ok());
    match naive.check(token, &value) {
        Some((status, duplicate)) => {
            let status = actix_web::http::StatusCode::from_u16(status).expect("a status");
            let mut response = HttpResponse::build(status);
            if duplicate {
                response.insert_header((DUPLICATE_HEADER, "true"));
            }
            response.finish()
        }
        None => HttpResponse::Ok().finish(),
    }
}

async fn ours_actix(
    knolyx_webhook_actix::KnolyxEvent(event): knolyx_webhook_actix::KnolyxEvent,
) -> HttpResponse {
    std::hint::black_box(&event);
    HttpResponse::Ok().finish()
}

// ---- the report ----

fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let at = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[at]
}

fn report(servers: &[Server], totals: &[Stats], per_round: &[Vec<f64>], options: &Options) {
    let measured = options.slice.as_secs_f64() * options.rounds as f64;
    println!();
    println!(
        "{:<12} {:>9} {:>8} {:>8} {:>11} {:>11} {:>9} {:>8} {:>8} {:>9} {:>7} {:>10}",
        "server",
        "req/s",
        "p50 us",
        "p99 us",
        "srv cpu/req",
        "cli cpu/req",
        "requests",
        "retrans",
        "non-2xx",
        "wrong-dup",
        "errors",
        "reconnects"
    );
    let mut rps = Vec::new();
    let mut server_cpu = Vec::new();
    for (server, stats) in servers.iter().zip(totals) {
        let per_request = |ticks: u64| ticks as f64 * TICK_US / stats.requests.max(1) as f64;
        server_cpu.push(per_request(stats.server_ticks));
        let mut latencies = stats.latencies_us.clone();
        latencies.sort_unstable();
        // The slices last a little longer than asked (the last responses): use the
        // rounds' own rates, weighted equally.
        let rate = per_round_mean(&per_round[rps.len()]);
        rps.push(rate);
        println!(
            "{:<12} {:>9.0} {:>8} {:>8} {:>11.1} {:>11.1} {:>9} {:>8} {:>8} {:>9} {:>7} {:>10}",
            server.name,
            rate,
            percentile(&latencies, 0.50),
            percentile(&latencies, 0.99),
            per_request(stats.server_ticks),
            per_request(stats.client_ticks),
            stats.requests,
            stats.retransmissions,
            stats.non_2xx,
            stats.wrong_duplicate_flag,
            stats.errors,
            stats.reconnects,
        );
    }
    println!(
        "(about {measured:.1} s measured per server; cpu/req: CPU time, user + system, in us per \
         request of the server's threads and of the client's, from /proc)"
    );
    if totals.iter().any(|stats| stats.reconnects > 0) {
        println!(
            "warning: some connections were closed by their server and reopened (reconnects): \
             those figures include connection setup"
        );
    }
    println!();
    print!("req/s per round:");
    for server in servers {
        print!(" {:>11}", server.name);
    }
    println!();
    for round in 0..options.rounds {
        print!("{:>15}:", round + 1);
        for rates in per_round {
            print!(" {:>11.0}", rates[round]);
        }
        println!();
    }
    println!();

    let index = |framework: Framework, kind: Kind| {
        servers
            .iter()
            .position(|s| s.framework == framework && s.kind == kind)
            .expect("every server")
    };
    let mut summary = Vec::new();
    let mut by_cpu = Vec::new();
    let mut all_met = true;
    for (framework, label) in [(Framework::Axum, "axum"), (Framework::Actix, "actix")] {
        let (noop, naive, ours) = (
            index(framework, Kind::Noop),
            index(framework, Kind::Naive),
            index(framework, Kind::Ours),
        );
        let vs_noop = rps[ours] / rps[noop];
        let vs_naive = rps[ours] / rps[naive];
        let (lo_noop, hi_noop) = round_ratios(&per_round[ours], &per_round[noop]);
        let (lo_naive, hi_naive) = round_ratios(&per_round[ours], &per_round[naive]);
        let met = |ratio: f64, target: f64| if ratio >= target { "met" } else { "MISSED" };
        all_met &= vs_noop >= 0.8 && vs_naive >= 1.0;
        println!(
            "{label}: ours/noop={vs_noop:.2} (rounds {lo_noop:.2}..{hi_noop:.2}; target >= 0.8: \
             {}), ours/naive={vs_naive:.2} (rounds {lo_naive:.2}..{hi_naive:.2}; target >= 1.0: {})",
            met(vs_noop, 0.8),
            met(vs_naive, 1.0),
        );
        // Were the server the bottleneck (a busy server on its own cores), its throughput
        // would go as the inverse of its CPU time per request.
        println!(
            "{label} by server CPU per request: noop/ours={:.2}, naive/ours={:.2}",
            server_cpu[noop] / server_cpu[ours],
            server_cpu[naive] / server_cpu[ours],
        );
        by_cpu.push(format!(
            "{label} {:.2}/{:.2}",
            server_cpu[noop] / server_cpu[ours],
            server_cpu[naive] / server_cpu[ours],
        ));
        summary.push(format!(
            "{label} ours/noop={vs_noop:.2} ours/naive={vs_naive:.2}"
        ));
    }
    let broken: Vec<String> = servers
        .iter()
        .zip(totals)
        .filter(|(_, stats)| stats.bad() > 0)
        .map(|(server, stats)| format!("{} had {} bad responses", server.name, stats.bad()))
        .collect();
    let verdict = if !broken.is_empty() {
        format!("; INVALID: {}", broken.join(", "))
    } else if all_met {
        "; all met".to_owned()
    } else {
        "; MISSED".to_owned()
    };
    println!(
        "summary: {} (targets >= 0.8, >= 1.0){verdict}; by server CPU/req: {}",
        summary.join("; "),
        by_cpu.join(", ")
    );
    if !broken.is_empty() {
        std::process::exit(1);
    }
}

fn per_round_mean(rates: &[f64]) -> f64 {
    rates.iter().sum::<f64>() / rates.len().max(1) as f64
}

/// The lowest and highest ratio of `ours` to `other` within one round.
fn round_ratios(ours: &[f64], other: &[f64]) -> (f64, f64) {
    ours.iter()
        .zip(other)
        .map(|(a, b)| a / b)
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), r| {
            (lo.min(r), hi.max(r))
        })
}
