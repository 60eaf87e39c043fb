//! The client's error type.

use std::error::Error as StdError;
use std::fmt;

use reqwest::{Method, StatusCode};

use knolyx_webhook_core::token::InvalidToken;

use crate::validate::InvalidWebhookUrl;

/// A `Result` whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Largest response body kept in [`Error::Status`] and [`Error::Decode`], in bytes.
pub const MAX_ERROR_BODY: usize = 4 * 1024;

/// Longest excerpt of a response body shown by `Display`, in characters.
const DISPLAY_BODY_CHARS: usize = 200;

/// Everything that can go wrong when calling the Knolyx Webhook API.
///
/// Variants that wrap another error return it from [`Error::source`](StdError::source);
/// `Display` is one short line that says which call failed and how.
///
/// # Examples
///
/// ```no_run
/// use knolyx_webhook_client::{Error, KnolyxClient, WebhookId};
///
/// # async fn run(client: KnolyxClient) {
/// match client.get(WebhookId::from(42)).await {
///     Ok(webhook) => println!("found {:?}", webhook.name),
///     Err(e) if e.is_not_found() => println!("no such webhook"),
///     Err(Error::Status { status, body, .. }) => println!("API said {status}: {body}"),
///     Err(e) => println!("failed: {e}"),
/// }
/// # }
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The webhook URL given to [`create`](crate::KnolyxClient::create) would be refused
    /// by Knolyx; nothing was sent.
    InvalidWebhookUrl(InvalidWebhookUrl),
    /// The security token given to [`create`](crate::KnolyxClient::create) would be
    /// refused by the receiver ([`knolyx_webhook_core::SecretToken`]): it is empty, or has
    /// surrounding white space or characters an HTTP header cannot carry. Nothing was
    /// sent.
    InvalidSecurityToken(InvalidToken),
    /// The base URL given to the client builder cannot be used.
    InvalidBaseUrl {
        /// Why it cannot be used.
        reason: &'static str,
        /// The parse error, when the text is not a URL at all.
        source: Option<url::ParseError>,
    },
    /// A webhook id cannot be put in a request path (it is empty, `.` or `..`); nothing
    /// was sent.
    InvalidWebhookId {
        /// The id that was given.
        id: String,
    },
    /// The API key or the project id cannot be sent as an HTTP header value.
    InvalidHeader {
        /// The header's name.
        header: &'static str,
        /// Why the value was refused.
        source: reqwest::header::InvalidHeaderValue,
    },
    /// The HTTP client could not be built.
    ClientBuild(reqwest::Error),
    /// The request did not get a complete response: connection refused, DNS failure, TLS
    /// error, timeout, or the connection dropped while the body was read.
    Transport {
        /// The request's method.
        method: Method,
        /// The request's path.
        path: String,
        /// The underlying error.
        source: reqwest::Error,
    },
    /// The API answered with a status that is not a success.
    Status {
        /// The request's method.
        method: Method,
        /// The request's path.
        path: String,
        /// The status the API returned.
        status: StatusCode,
        /// The response body, lossily decoded as UTF-8 and cut to [`MAX_ERROR_BODY`]
        /// bytes.
        body: String,
        /// Whether `body` was cut.
        truncated: bool,
    },
    /// The API answered with a success status but a body that could not be decoded.
    Decode {
        /// The request's method.
        method: Method,
        /// The request's path.
        path: String,
        /// The status the API returned.
        status: StatusCode,
        /// The response body, lossily decoded as UTF-8 and cut to [`MAX_ERROR_BODY`]
        /// bytes.
        body: String,
        /// What was wrong with it.
        source: serde_json::Error,
    },
}

impl Error {
    /// The HTTP status the API returned, for [`Error::Status`] and [`Error::Decode`].
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Self::Status { status, .. } | Self::Decode { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The response body the API returned (possibly cut), for [`Error::Status`] and
    /// [`Error::Decode`].
    pub fn body(&self) -> Option<&str> {
        match self {
            Self::Status { body, .. } | Self::Decode { body, .. } => Some(body),
            _ => None,
        }
    }

    /// Whether the API answered `404 Not Found`.
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(StatusCode::NOT_FOUND)
    }

    /// Whether the API refused the credentials (`401 Unauthorized` or `403 Forbidden`).
    pub fn is_unauthorized(&self) -> bool {
        matches!(
            self.status(),
            Some(StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN)
        )
    }

    /// Whether the request timed out.
    pub fn is_timeout(&self) -> bool {
        matches!(self, Self::Transport { source, .. } if source.is_timeout())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidWebhookUrl(e) => fmt::Display::fmt(e, f),
            Self::InvalidSecurityToken(_) => {
                f.write_str("invalid webhook security token: the receiver would refuse it")
            }
            Self::InvalidBaseUrl { reason, .. } => write!(f, "invalid base URL: {reason}"),
            Self::InvalidWebhookId { id } => write!(f, "invalid webhook id {id:?}"),
            Self::InvalidHeader { header, .. } => {
                write!(
                    f,
                    "the value for header {header} is not a valid header value"
                )
            }
            Self::ClientBuild(_) => f.write_str("could not build the HTTP client"),
            Self::Transport {
                method,
                path,
                source,
            } => {
                let what = if source.is_timeout() {
                    "timed out"
                } else if source.is_connect() {
                    "could not connect"
                } else {
                    "failed"
                };
                write!(f, "{method} {path}: request to the Knolyx API {what}")
            }
            Self::Status {
                method,
                path,
                status,
                body,
                ..
            } => {
                write!(f, "{method} {path}: Knolyx API answered {status}")?;
                write_excerpt(f, body)
            }
            Self::Decode {
                method,
                path,
                status,
                source,
                ..
            } => write!(
                f,
                "{method} {path}: could not decode the Knolyx API's {status} response ({source})"
            ),
        }
    }
}

/// Writes `: <first line of the body, shortened>` when the body has text.
fn write_excerpt(f: &mut fmt::Formatter<'_>, body: &str) -> fmt::Result {
    let line = body.trim().lines().next().unwrap_or("").trim();
    if line.is_empty() {
        return Ok(());
    }
    let mut chars = line.char_indices();
    match chars.nth(DISPLAY_BODY_CHARS) {
        Some((end, _)) => write!(f, ": {}…", &line[..end]),
        None if line.len() < body.trim().len() => write!(f, ": {line}…"),
        None => write!(f, ": {line}"),
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            Self::InvalidWebhookUrl(e) => Some(e),
            Self::InvalidSecurityToken(e) => Some(e),
            Self::InvalidBaseUrl { source, .. } => {
                source.as_ref().map(|e| e as &(dyn StdError + 'static))
            }
            Self::InvalidWebhookId { .. } => None,
            Self::InvalidHeader { source, .. } => Some(source),
            Self::ClientBuild(e) => Some(e),
            Self::Transport { source, .. } => Some(source),
            Self::Status { .. } => None,
            Self::Decode { source, .. } => Some(source),
        }
    }
}

impl From<InvalidWebhookUrl> for Error {
    fn from(e: InvalidWebhookUrl) -> Self {
        Self::InvalidWebhookUrl(e)
    }
}

/// Lossily decodes `bytes` as UTF-8, cut to at most [`MAX_ERROR_BODY`] bytes on a
/// character boundary. Returns the text and whether it was cut.
pub(crate) fn truncate_body(bytes: &[u8]) -> (String, bool) {
    let cut = bytes.len() > MAX_ERROR_BODY;
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(MAX_ERROR_BODY)]);
    let mut text = text.into_owned();
    if cut {
        // A multi-byte character split by the cut decodes as U+FFFD at the end: drop it.
        while text.ends_with(char::REPLACEMENT_CHARACTER) {
            text.pop();
        }
    }
    (text, cut)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation() {
        let (text, cut) = truncate_body(b"short");
        assert_eq!((text.as_str(), cut), ("short", false));

        let big = "é".repeat(MAX_ERROR_BODY);
        let (text, cut) = truncate_body(big.as_bytes());
        assert!(cut);
        assert!(text.len() <= MAX_ERROR_BODY);
        assert!(text.chars().all(|c| c == 'é'));
    }
}
