//! The ratios of the criterion bench `pipeline`, measured side by side: per fixture, the
//! whole pipeline (verify, parse, claim, complete on the memory store), the typed parse
//! alone and a bare `serde_json::from_slice::<Value>`, in alternation (each round runs a
//! batch of each variant, in a rotating order, so drift of the machine hits all three
//! alike), timed with `Instant` over whole batches. All three get the same input: fresh
//! bodies (the fixture with new ids) made before the clock starts, dropped within it.
//!
//! ```sh
//! cargo run --release -p knolyx-webhook-benches --bin pipeline-ratios [-- --quick] \
//!     [--capacity N]
//! ```
//!
//! `--capacity` sets the memory store's capacity (default 1,000,000; its tables are sized
//! for it up front, so a smaller one shows what the table's size costs in cache misses).
//!
//! Prints ns per delivery (the median of the rounds) and the ratios to the `Value` parse;
//! the last line is a summary against the target (DESIGN.md): pipeline ≤ 1.0× `Value`.
//!
//! With `--features metrics` (the core's feature `metrics` compiled in), a fourth variant,
//! `metrics`, runs the pipeline recording into a Prometheus recorder (installed for that
//! variant only, with `metrics::with_local_recorder`), and its ratio to the pipeline
//! without a recorder is printed too.

use std::hint::black_box;
use std::time::Instant;

use knolyx_webhook_benches::{FreshIds, TOKEN, deliver, fixtures, headers};
use knolyx_webhook_core::store::MemoryStore;
use knolyx_webhook_core::{WebhookEvent, WebhookReceiver};

#[cfg(not(feature = "metrics"))]
const VARIANTS: &[&str] = &["value", "typed", "pipeline"];
#[cfg(feature = "metrics")]
const VARIANTS: &[&str] = &["value", "typed", "pipeline", "metrics"];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    // `--capacity N`: the memory store's capacity (its tables are sized for it up front).
    let capacity = args
        .iter()
        .position(|a| a == "--capacity")
        .map(|at| {
            args.get(at + 1)
                .and_then(|n| n.parse().ok())
                .expect("--capacity takes a number")
        })
        .unwrap_or(knolyx_webhook_core::store::DEFAULT_CAPACITY);
    let (rounds, batch) = if quick { (9, 5_000) } else { (31, 20_000) };
    let headers = headers();
    #[cfg(feature = "metrics")]
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new()
        .set_buckets(knolyx_webhook_core::metrics::DURATION_BUCKETS)
        .expect("buckets")
        .build_recorder();

    println!(
        "pipeline-ratios: {rounds} rounds of {batch} deliveries per variant and fixture, in \
         alternation; ns/delivery = median of the rounds; memory store of capacity {capacity}"
    );
    print!(
        "{:<24} {:>9} {:>9} {:>9} {:>15} {:>12}",
        "fixture", "value", "typed", "pipeline", "pipeline/value", "typed/value"
    );
    #[cfg(feature = "metrics")]
    print!(" {:>9} {:>17}", "metrics", "metrics/pipeline");
    println!();
    let mut worst: Option<(&str, f64)> = None;
    let mut sum_ratio = 0.0;
    let mut count = 0.0;
    for (name, body) in fixtures() {
        // A store per fixture, so that it stays below its capacity (no eviction): at most
        // 620,000 ids.
        let receiver = WebhookReceiver::builder()
            .token(TOKEN)
            .store(MemoryStore::builder().capacity(capacity).build())
            .build()
            .expect("valid configuration");
        let mut ids = FreshIds::new(body);
        let mut samples: Vec<Vec<f64>> = vec![Vec::new(); VARIANTS.len()];
        // Round 0 warms up (caches, the store's first allocations) and is not recorded.
        for round in 0..=rounds {
            for k in 0..VARIANTS.len() {
                let variant = (round + k) % VARIANTS.len();
                // Every variant gets the same kind of input: a batch of fresh bodies (the
                // fixture with new ids), made before the clock starts and consumed (dropped)
                // within it, as the pipeline consumes its bodies. Parsing one buffer over
                // and over instead would favour the bare parses (a hot cache, and branches
                // learnt on the exact bytes).
                let bodies: Vec<_> = (0..batch).map(|_| ids.next_body()).collect();
                let start = Instant::now();
                match VARIANTS[variant] {
                    "value" => {
                        for body in bodies {
                            black_box(serde_json::from_slice::<serde_json::Value>(&body).unwrap());
                        }
                    }
                    "typed" => {
                        for body in bodies {
                            black_box(WebhookEvent::from_slice(&body).unwrap());
                        }
                    }
                    #[cfg(feature = "metrics")]
                    "metrics" => metrics::with_local_recorder(&recorder, || {
                        for body in bodies {
                            deliver(&receiver, &headers, body);
                        }
                    }),
                    _ => {
                        for body in bodies {
                            deliver(&receiver, &headers, body);
                        }
                    }
                }
                let ns = start.elapsed();
                if round > 0 {
                    samples[variant].push(ns.as_nanos() as f64 / batch as f64);
                }
            }
        }
        let medians: Vec<f64> = samples.into_iter().map(median).collect();
        let (value, typed, pipeline) = (medians[0], medians[1], medians[2]);
        let ratio = pipeline / value;
        print!(
            "{name:<24} {value:>9.0} {typed:>9.0} {pipeline:>9.0} {ratio:>15.2} {:>12.2}",
            typed / value
        );
        #[cfg(feature = "metrics")]
        print!(" {:>9.0} {:>17.2}", medians[3], medians[3] / pipeline);
        println!();
        if worst.is_none_or(|(_, w)| ratio > w) {
            worst = Some((name, ratio));
        }
        sum_ratio += ratio;
        count += 1.0;
    }
    let (worst_name, worst_ratio) = worst.expect("five fixtures");
    let met = if worst_ratio <= 1.0 { "met" } else { "MISSED" };
    println!(
        "summary: pipeline/value mean={:.2} worst={worst_ratio:.2} ({worst_name}) \
         (target <= 1.0: {met})",
        sum_ratio / count
    );
}

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}
