//! Per delivery, on each of the five fixtures: the whole pipeline (verify, parse, claim,
//! complete on the memory store) against a bare `serde_json::from_slice::<Value>` of the
//! same bytes and against the typed parse alone.
//!
//! Target (ARCHITECTURE.md, "Performance targets"): pipeline ≤ 1.0× the untyped parse. Criterion prints no ratios: the
//! `pipeline-ratios` binary measures the same three side by side and prints them.
//!
//! ```sh
//! cargo bench -p knolyx-webhook-benches --bench pipeline
//! # and the pipeline recording its metrics into a Prometheus recorder:
//! cargo bench -p knolyx-webhook-benches --features metrics --bench pipeline
//! ```

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use knolyx_webhook_benches::{FreshIds, TOKEN, deliver, fixtures, headers};
use knolyx_webhook_core::store::MemoryStore;
use knolyx_webhook_core::{WebhookEvent, WebhookReceiver};

fn pipeline(c: &mut Criterion) {
    let receiver = WebhookReceiver::builder()
        .token(TOKEN)
        .store(MemoryStore::new())
        .build()
        .expect("valid configuration");
    let headers = headers();
    for (name, body) in fixtures() {
        let mut group = c.benchmark_group(name);
        group.throughput(Throughput::Bytes(body.len() as u64));
        // All three variants get the same input: a fresh body (the fixture with a new id)
        // per iteration, consumed by it. Parsing one buffer over and over would favour the
        // bare parses (a hot cache, branches learnt on the exact bytes).
        let mut ids = FreshIds::new(body);
        group.bench_function("serde_json::Value", |b| {
            b.iter_batched(
                || ids.next_body(),
                |body| serde_json::from_slice::<serde_json::Value>(&body).unwrap(),
                BatchSize::SmallInput,
            )
        });
        group.bench_function("typed parse", |b| {
            b.iter_batched(
                || ids.next_body(),
                |body| WebhookEvent::from_slice(&body).unwrap(),
                BatchSize::SmallInput,
            )
        });
        group.bench_function("pipeline", |b| {
            b.iter_batched(
                || ids.next_body(),
                |body| deliver(&receiver, &headers, body),
                BatchSize::SmallInput,
            )
        });
        // With the core's `metrics` feature: the same, recording into a Prometheus recorder.
        #[cfg(feature = "metrics")]
        {
            let recorder = metrics_exporter_prometheus::PrometheusBuilder::new()
                .set_buckets(knolyx_webhook_core::metrics::DURATION_BUCKETS)
                .expect("buckets")
                .build_recorder();
            group.bench_function("pipeline + metrics", |b| {
                b.iter_batched(
                    || ids.next_body(),
                    |body| {
                        metrics::with_local_recorder(&recorder, || {
                            deliver(&receiver, &headers, body)
                        })
                    },
                    BatchSize::SmallInput,
                )
            });
        }
        group.finish();
    }
}

criterion_group!(benches, pipeline);
criterion_main!(benches);
