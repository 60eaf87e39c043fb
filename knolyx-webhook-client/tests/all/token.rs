//! Client-side security tokens.

use std::collections::HashSet;
use std::error::Error as _;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use knolyx_webhook_client::{CreateWebhook, Error, InvalidToken, generate_security_token};

use crate::server::FakeKnolyx;

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

/// The receiver (`knolyx_webhook_core::SecretToken`) refuses these tokens, so Knolyx
/// would deliver a token that can never match: `create` refuses them before sending.
#[tokio::test]
async fn create_refuses_tokens_the_receiver_would_refuse() {
    let server = FakeKnolyx::start().await;
    let client = server.client();
    for bad in [
        "",
        " leading",
        "trailing ",
        "naïve-token",
        "tab\tinside",
        "line\nbreak",
    ] {
        let request = CreateWebhook::new("n", "https://hooks.example.com/k", bad);
        let err = client.create(&request).await.expect_err(bad);
        let expected = if bad.is_empty() {
            InvalidToken::Empty
        } else {
            InvalidToken::NotAHeaderValue
        };
        assert!(
            matches!(&err, Error::InvalidSecurityToken(reason) if *reason == expected),
            "{bad:?}: {err:?}"
        );
        assert!(err.to_string().contains("security token"), "{bad:?}: {err}");
        assert!(err.source().is_some(), "{bad:?}: the reason is kept");
    }
    assert!(server.requests().is_empty(), "nothing was sent");

    // Spaces inside are fine, as for the receiver; generated tokens always pass.
    for good in ["inner space ok".to_owned(), generate_security_token()] {
        let request = CreateWebhook::new("n", "https://hooks.example.com/k", good.as_str());
        client.create(&request).await.expect("a valid token");
        assert_eq!(server.last_request().json()["securityToken"], good.as_str());
    }
}
