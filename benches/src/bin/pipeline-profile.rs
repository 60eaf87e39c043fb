//! Runs the pipeline on one fixture many times, for a profiler (`valgrind --tool=callgrind`
//! or `perf record`): `pipeline-profile [ITERATIONS] [FIXTURE_TYPE] [pipeline|value|typed]`.

use std::hint::black_box;

use knolyx_webhook_benches::{FreshIds, TOKEN, deliver, fixtures, headers};
use knolyx_webhook_core::WebhookReceiver;
use knolyx_webhook_core::store::MemoryStore;

fn main() {
    let mut args = std::env::args().skip(1);
    let iterations: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let kind = args.next().unwrap_or_else(|| "COURSE_COMPLETED".to_owned());
    let mode = args.next().unwrap_or_else(|| "pipeline".to_owned());
    let (_, body) = fixtures()
        .find(|(name, _)| *name == kind)
        .unwrap_or_else(|| panic!("no fixture {kind}"));
    let receiver = WebhookReceiver::builder()
        .token(TOKEN)
        .store(MemoryStore::new())
        .build()
        .expect("valid configuration");
    let headers = headers();
    let mut ids = FreshIds::new(body);
    let bodies: Vec<_> = (0..iterations).map(|_| ids.next_body()).collect();
    let start = std::time::Instant::now();
    if mode == "value" {
        for body in &bodies {
            black_box(serde_json::from_slice::<serde_json::Value>(body).unwrap());
        }
    } else if mode == "typed" {
        for body in &bodies {
            black_box(knolyx_webhook_core::WebhookEvent::from_slice(body).unwrap());
        }
    }
    for body in bodies.into_iter().filter(|_| mode == "pipeline") {
        deliver(&receiver, &headers, body);
    }
    let per = start.elapsed() / iterations as u32;
    println!("{kind} {mode}: {per:?} per delivery over {iterations} deliveries");
}
