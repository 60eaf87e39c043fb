//! The memory store: bytes per remembered id at 1,000,000 ids (counted by a counting global
//! allocator), and claim+complete throughput on 1 and 2 threads, beside a naive
//! `Mutex<HashMap<String, _>>`.
//!
//! Target (ARCHITECTURE.md, "Performance targets"): ≤ 64 bytes per id; claim+complete scales across threads.
//!
//! ```sh
//! cargo run --release -p knolyx-webhook-benches --bin memory-store [-- --quick]
//! ```

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use knolyx_webhook_benches::now;
use knolyx_webhook_core::store::{ClaimOutcome, IdempotencyStore, MemoryStore, OwnerToken};

/// Counts the bytes allocated (an atomic add per allocation: cheap enough to leave on for
/// the throughput runs too).
#[global_allocator]
static ALLOC: cap::Cap<std::alloc::System> = cap::Cap::new(std::alloc::System, usize::MAX);

const LEASE: Duration = Duration::from_secs(60);
const RETENTION: Duration = Duration::from_secs(72 * 3600);

fn id(i: u64) -> String {
    // UUID-shaped, 36 bytes, like Knolyx's.
    format!("{:08x}-0000-4000-8000-{:012x}", i >> 32, i)
}

fn heap_bytes() -> u64 {
    ALLOC.allocated() as u64
}

/// The naive store: the id as a `String`, a state and an expiry.
#[derive(Default)]
struct Naive {
    map: Mutex<HashMap<String, (bool, Instant)>>,
}

impl Naive {
    fn claim_complete(&self, id: &str) -> bool {
        let mut map = self.map.lock().unwrap();
        if map.contains_key(id) {
            return false;
        }
        map.insert(id.to_owned(), (false, Instant::now() + LEASE));
        drop(map);
        let mut map = self.map.lock().unwrap();
        map.insert(id.to_owned(), (true, Instant::now() + RETENTION));
        true
    }
}

/// `n` more ids, distinct from `0..n`.
fn turnover(n: u64) -> Vec<String> {
    (n..2 * n).map(id).collect()
}

fn memory_per_id(n: u64) -> (f64, f64) {
    let ids: Vec<String> = (0..n).map(id).collect();
    let before = heap_bytes();
    // Capacity is enforced per shard, so leave room for uneven shards: nothing is evicted.
    let store = MemoryStore::builder().capacity(n as usize * 5 / 4).build();
    for id in &ids {
        let owner = OwnerToken::generate();
        assert_eq!(
            now(store.claim(id, owner, LEASE)).unwrap(),
            ClaimOutcome::Claimed
        );
        now(store.complete(id, owner, RETENTION)).unwrap();
    }
    let ours = (heap_bytes() - before) as f64 / n as f64;
    assert_eq!(store.len(), n as usize);
    drop(store);

    // At capacity, after a full turnover of evictions: memory must not have grown.
    let before = heap_bytes();
    let store = MemoryStore::builder().capacity(n as usize).build();
    for id in ids.iter().chain(&turnover(n)) {
        let owner = OwnerToken::generate();
        if now(store.claim(id, owner, LEASE)).unwrap() == ClaimOutcome::Claimed {
            now(store.complete(id, owner, RETENTION)).unwrap();
        }
    }
    let churned = (heap_bytes() - before) as f64 / store.len() as f64;
    println!(
        "memory at capacity {n} after {n} evictions: MemoryStore {churned:.1} B/id ({} ids held)",
        store.len()
    );
    drop(store);

    let before = heap_bytes();
    let naive = Naive::default();
    for id in &ids {
        assert!(naive.claim_complete(id));
    }
    let theirs = (heap_bytes() - before) as f64 / n as f64;
    drop(naive);
    (ours, theirs)
}

fn throughput(threads: u64, per_thread: u64, naive: bool) -> f64 {
    let store = Arc::new(MemoryStore::builder().capacity(2_000_000).build());
    let naive_store = Arc::new(Naive::default());
    let ids: Vec<Vec<String>> = (0..threads)
        .map(|t| (0..per_thread).map(|i| id(t << 40 | i)).collect())
        .collect();
    let start = Instant::now();
    std::thread::scope(|scope| {
        for ids in &ids {
            let store = Arc::clone(&store);
            let naive_store = Arc::clone(&naive_store);
            scope.spawn(move || {
                for id in ids {
                    if naive {
                        assert!(naive_store.claim_complete(id));
                    } else {
                        let owner = OwnerToken::generate();
                        assert_eq!(
                            now(store.claim(id, owner, LEASE)).unwrap(),
                            ClaimOutcome::Claimed
                        );
                        now(store.complete(id, owner, RETENTION)).unwrap();
                    }
                }
            });
        }
    });
    (threads * per_thread) as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let n = if quick { 100_000 } else { 1_000_000 };
    let (ours, naive) = memory_per_id(n);
    println!(
        "memory at {n} ids: MemoryStore {ours:.1} B/id, naive Mutex<HashMap<String,_>> {naive:.1} B/id (target <= 64)"
    );

    let per_thread = if quick { 100_000 } else { 500_000 };
    let mut results = Vec::new();
    for threads in [1, 2] {
        // Alternate, so that drift of the machine hits both alike.
        let ours = throughput(threads, per_thread, false);
        let theirs = throughput(threads, per_thread, true);
        println!(
            "claim+complete, {threads} thread(s): MemoryStore {:.2} M/s, naive {:.2} M/s, ratio {:.2}",
            ours / 1e6,
            theirs / 1e6,
            ours / theirs
        );
        results.push(ours);
    }
    let scaling = results[1] / results[0];
    println!(
        "summary: {ours:.1} B/id ({}), 2-thread/1-thread scaling {scaling:.2}x",
        if ours <= 64.0 {
            "meets <= 64"
        } else {
            "MISSES <= 64"
        }
    );
}
