//! Replays the fuzzers' regression corpus (`tests/corpus/{envelope,pipeline}/`: crashes they
//! found, and a handful of minimised inputs) through the same invariant checks the fuzz
//! targets run (`fuzz_checks.rs`, shared with `/fuzz`).

use std::path::Path;

use super::fuzz_checks::{check_envelope, check_pipeline};

fn replay(target: &str, check: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("a corpus entry").path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} is empty", dir.display());
    for path in files {
        let data = std::fs::read(&path).expect("a readable corpus file");
        let result = std::panic::catch_unwind(|| check(&data));
        if let Err(panic) = result {
            let message = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("(no message)");
            panic!("{target} corpus file {} fails: {message}", path.display());
        }
    }
}

#[test]
fn envelope_corpus_replays() {
    replay("envelope", check_envelope);
}

#[test]
fn pipeline_corpus_replays() {
    replay("pipeline", check_pipeline);
}

/// The fixtures and the fuzzers' seed variants also pass, whatever the corpus holds.
#[test]
fn fixtures_pass_the_fuzz_checks() {
    for (_, body) in knolyx_webhook_core::testing::FIXTURES {
        check_envelope(body);
        // PUT, config 0, one header (the current token), two deliveries settled with 200.
        check_pipeline(&[&[0, 0, 1, 0, 1, 0, 0][..], body].concat());
    }
}

/// Found by the `envelope` fuzzer: invalid UTF-8 inside a field the parser skips (an
/// unknown field of the envelope or of `data`) went unchecked by serde_json on the fast
/// path, so the body was accepted with bytes that are not text in `raw()`, while the exact
/// path refused it. Invalid UTF-8 anywhere is now malformed (400), on both paths.
#[tokio::test]
async fn invalid_utf8_in_an_ignored_field_is_malformed() {
    use knolyx_webhook_core::{ParseErrorKind, WebhookEvent};

    let bodies: [&[u8]; 3] = [
        b"{\"id\":\"a\",\"type\":\"PING\",\"data\":{\"mussage\":\"P\xff\"}}",
        b"{\"id\":\"a\",\"extra\":\"\xc3\x28\",\"type\":\"NEW_TYPE\",\"data\":{}}",
        b"{\"id\":\"a\",\"type\":\"COURSE_STARTED\",\"data\":{\"user\":{\"id\":1,\"name\":\"n\",\
          \"email\":\"e\",\"x\":\"\xed\xa0\x80\"},\"course\":{\"id\":2,\"name\":\"c\"}}}",
    ];
    let receiver = super::support::receiver();
    for body in bodies {
        let err = WebhookEvent::from_slice(body).unwrap_err();
        assert_eq!(err.kind(), ParseErrorKind::Malformed);
        check_envelope(body);
        let rejection = super::support::put(&receiver, body.to_vec())
            .await
            .unwrap_err();
        assert_eq!(rejection.status(), http::StatusCode::BAD_REQUEST);
    }
}
