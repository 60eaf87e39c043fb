//! Client-side generation of webhook security tokens.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Number of random bytes in a generated token (256 bits).
const TOKEN_BYTES: usize = 32;

/// Generates a new webhook security token.
///
/// Knolyx expects the security token to be created client side and passed to
/// [`create`](crate::KnolyxClient::create); it then sends it back in the
/// `X-Webhook-Security-Token` header of every delivery. The token is 32 bytes (256 bits)
/// from the operating system's cryptographically secure generator, encoded as base64url
/// without padding: 43 characters from `A–Z a–z 0–9 - _`, safe in headers, URLs,
/// environment variables and shell commands.
///
/// Keep it secret: store it where your receiver reads its configuration, and never log it.
///
/// # Panics
///
/// Panics if the operating system's random number generator is unavailable, which leaves
/// no safe way to make a token.
///
/// # Examples
///
/// ```
/// use knolyx_webhook_client::generate_security_token;
///
/// let token = generate_security_token();
/// assert_eq!(token.len(), 43);
/// assert!(token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
/// assert_ne!(token, generate_security_token());
/// ```
pub fn generate_security_token() -> String {
    let mut bytes = [0u8; TOKEN_BYTES];
    if let Err(e) = getrandom::fill(&mut bytes) {
        panic!("the operating system's secure random number generator failed: {e}");
    }
    URL_SAFE_NO_PAD.encode(bytes)
}
