//! `WebhookEvent::from_slice` on arbitrary bytes: the fast path agrees with the exact path,
//! and an accepted event has a bounded id and survives re-serialisation.
#![no_main]

#[allow(dead_code)]
#[path = "../../knolyx-webhook-core/tests/all/fuzz_checks.rs"]
mod fuzz_checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_checks::check_envelope(data));
