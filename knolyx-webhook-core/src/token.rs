//! The shared secret: [`SecretToken`] and the constant-time [`TokenVerifier`].
//!
//! Knolyx sends the token chosen when the webhook was registered in the
//! `X-Webhook-Security-Token` header of every delivery. The verifier accepts one or more
//! tokens (so a token can be rotated without downtime) and compares fixed-size digests of
//! the presented and the expected tokens in constant time with [`subtle`]: the time taken
//! depends neither on where the first differing byte is nor on the length of any expected
//! token. The digest is SipHash-2-4 with 128-bit output under a key drawn at random for
//! each verifier: a keyed pseudo-random function, so a digest (or its comparison's timing)
//! tells nothing about the token, and no presented token can be crafted to match another's
//! digest without the key. It costs a few dozen nanoseconds where SHA-256 costs hundreds.
//!
//! ```
//! use knolyx_webhook_core::token::{SecretToken, TokenVerifier};
//!
//! let verifier = TokenVerifier::new([
//!     SecretToken::new("current-token")?,
//!     SecretToken::new("previous-token")?, // still accepted during a rotation
//! ])?;
//! assert!(verifier.verify(b"current-token"));
//! assert!(verifier.verify(b"previous-token"));
//! assert!(!verifier.verify(b"current"));
//! // Secrets never show in Debug output.
//! assert_eq!(format!("{:?}", SecretToken::new("current-token")?), "SecretToken(<redacted>)");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use std::hash::Hasher as _;

use siphasher::sip128::{Hasher128, SipHasher24};
use subtle::ConstantTimeEq;

/// The name of the header that carries the token.
pub const TOKEN_HEADER: &str = "x-webhook-security-token";

/// A webhook security token. Its `Debug` output is redacted.
///
/// A token must be non-empty, and a valid HTTP header value without surrounding white
/// space (visible ASCII and spaces inside): anything else could never match a delivery, so
/// it is refused as a configuration error rather than silently accepting nothing.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretToken(Arc<str>);

impl SecretToken {
    /// A token from its text.
    pub fn new(token: impl Into<String>) -> Result<Self, InvalidToken> {
        let token: String = token.into();
        if token.is_empty() {
            return Err(InvalidToken::Empty);
        }
        if token.trim() != token || !token.bytes().all(|b| b == b' ' || b.is_ascii_graphic()) {
            return Err(InvalidToken::NotAHeaderValue);
        }
        Ok(Self(token.into()))
    }

    /// The token's text. Take care not to log it.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretToken(<redacted>)")
    }
}

impl FromStr for SecretToken {
    type Err = InvalidToken;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl TryFrom<String> for SecretToken {
    type Error = InvalidToken;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl TryFrom<&str> for SecretToken {
    type Error = InvalidToken;

    fn try_from(value: &str) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

/// Why a token was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum InvalidToken {
    /// The token is empty.
    Empty,
    /// The token has surrounding white space or characters an HTTP header cannot carry.
    NotAHeaderValue,
    /// A verifier was built with no token at all.
    NoTokens,
}

impl fmt::Display for InvalidToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            InvalidToken::Empty => "the webhook security token is empty",
            InvalidToken::NotAHeaderValue => {
                "the webhook security token has surrounding white space or characters that \
                 an HTTP header cannot carry"
            }
            InvalidToken::NoTokens => "no webhook security token was configured",
        })
    }
}

impl std::error::Error for InvalidToken {}

/// Checks presented tokens against one or more accepted tokens, in constant time.
#[derive(Clone)]
pub struct TokenVerifier {
    key: (u64, u64),
    digests: Arc<[[u8; 16]]>,
}

impl fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenVerifier")
            .field("tokens", &self.digests.len())
            .finish()
    }
}

impl TokenVerifier {
    /// A verifier accepting each of `tokens`; at least one is required.
    pub fn new(tokens: impl IntoIterator<Item = SecretToken>) -> Result<Self, InvalidToken> {
        let key = random_key();
        let digests: Vec<[u8; 16]> = tokens
            .into_iter()
            .map(|t| digest(key, t.expose_secret().as_bytes()))
            .collect();
        if digests.is_empty() {
            return Err(InvalidToken::NoTokens);
        }
        Ok(Self {
            key,
            digests: digests.into(),
        })
    }

    /// How many tokens are accepted.
    pub fn len(&self) -> usize {
        self.digests.len()
    }

    /// Always `false`: a verifier holds at least one token.
    pub fn is_empty(&self) -> bool {
        self.digests.is_empty()
    }

    /// Whether `presented` is one of the accepted tokens.
    ///
    /// Every accepted token is compared, whatever the outcome of the others, and the
    /// comparison is of fixed-size digests, so timing reveals neither the expected tokens'
    /// lengths nor how much of one matched. An empty token is never accepted.
    pub fn verify(&self, presented: &[u8]) -> bool {
        if presented.is_empty() {
            return false;
        }
        let presented = digest(self.key, presented);
        let mut matched = subtle::Choice::from(0u8);
        for expected in self.digests.iter() {
            matched |= expected.ct_eq(&presented);
        }
        matched.into()
    }
}

fn digest(key: (u64, u64), bytes: &[u8]) -> [u8; 16] {
    let mut hasher = SipHasher24::new_with_keys(key.0, key.1);
    hasher.write(bytes);
    hasher.finish128().as_bytes()
}

fn random_key() -> (u64, u64) {
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        // No OS randomness: a per-process key from the clock and the address space is weaker
        // against offline analysis, but comparisons stay constant-time and exact.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let here = &bytes as *const _ as usize as u128;
        bytes = (nanos ^ (here << 64)).to_le_bytes();
    }
    let (a, b) = bytes.split_at(8);
    (
        u64::from_le_bytes(a.try_into().unwrap_or_default()),
        u64::from_le_bytes(b.try_into().unwrap_or_default()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_empty_and_unusable_tokens() {
        assert_eq!(SecretToken::new("").unwrap_err(), InvalidToken::Empty);
        assert_eq!(
            SecretToken::new(" padded").unwrap_err(),
            InvalidToken::NotAHeaderValue
        );
        assert_eq!(
            SecretToken::new("new\nline").unwrap_err(),
            InvalidToken::NotAHeaderValue
        );
        assert_eq!(
            TokenVerifier::new(Vec::new()).unwrap_err(),
            InvalidToken::NoTokens
        );
    }

    #[test]
    fn verifies_exactly() {
        let v = TokenVerifier::new(["s3cret-token".parse().unwrap()]).unwrap();
        assert!(v.verify(b"s3cret-token"));
        assert!(!v.verify(b"s3cret-toke"));
        assert!(!v.verify(b"s3cret-token "));
        assert!(!v.verify(b"S3cret-token"));
        assert!(!v.verify(b""));
    }

    #[test]
    fn debug_is_redacted() {
        let t = SecretToken::new("hunter2-token").unwrap();
        let v = TokenVerifier::new([t.clone()]).unwrap();
        assert!(!format!("{t:?}{v:?}").contains("hunter2"));
    }
}
