//! The whole framework-free pipeline (`WebhookReceiver::receive` on a memory store) with an
//! arbitrary method, token headers, configuration, body and settling statuses.
#![no_main]

#[allow(dead_code)]
#[path = "../../knolyx-webhook-core/tests/all/fuzz_checks.rs"]
mod fuzz_checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_checks::check_pipeline(data));
