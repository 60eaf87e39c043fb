//! Client-side security tokens.

use std::collections::HashSet;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use knolyx_webhook_client::generate_security_token;

#[test]
fn length_and_alphabet() {
    let token = generate_security_token();
    assert_eq!(token.len(), 43);
    assert!(
        token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "{token}"
    );
    assert_eq!(URL_SAFE_NO_PAD.decode(&token).expect("base64url").len(), 32);
}

#[test]
fn tokens_differ() {
    assert_ne!(generate_security_token(), generate_security_token());
    let many: HashSet<String> = (0..100).map(|_| generate_security_token()).collect();
    assert_eq!(many.len(), 100);
}
