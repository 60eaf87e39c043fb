//! URLs as they may be shown or logged.

use std::borrow::Cow;

use url::Url;

/// What stands in for the `user:password` part of a URL.
const HIDDEN: &str = "***";

/// A URL as it may be shown or logged: with its credentials (the `user:password@` part)
/// replaced by `***`.
///
/// A URL can carry credentials (`https://user:password@host/…`, sent as HTTP basic
/// authentication). Whenever this crate shows a URL (the base URL in `Debug`, the URL of a
/// [`CreateWebhook`](crate::CreateWebhook) or [`Webhook`](crate::Webhook) in `Debug`) it
/// goes through this function; use it too before printing or logging one. A URL without
/// credentials is returned as given. Text that does not parse as a URL is redacted too:
/// whatever stands between `://` and its last `@` is hidden.
///
/// # Examples
///
/// ```
/// use knolyx_webhook_client::redact_url;
///
/// assert_eq!(
///     redact_url("https://user:s3cret@hooks.example.com/knolyx"),
///     "https://***@hooks.example.com/knolyx"
/// );
/// assert_eq!(
///     redact_url("https://hooks.example.com/knolyx"),
///     "https://hooks.example.com/knolyx"
/// );
/// // Not a URL (the IPv6 address is not closed), redacted all the same.
/// assert_eq!(redact_url("https://user:s3cret@[::1/knolyx"), "https://***@[::1/knolyx");
/// ```
pub fn redact_url(url: &str) -> Cow<'_, str> {
    match Url::parse(url) {
        Ok(parsed) if parsed.has_host() => {
            if parsed.username().is_empty() && parsed.password().is_none() {
                return Cow::Borrowed(url);
            }
            let mut redacted = parsed;
            // Both succeed on a URL with a host.
            let _ = redacted.set_password(None);
            let _ = redacted.set_username(HIDDEN);
            Cow::Owned(redacted.into())
        }
        _ => redact_text(url),
    }
}

/// Hides what stands between `://` (or the start) and the last `@` of `text`.
fn redact_text(text: &str) -> Cow<'_, str> {
    let Some(at) = text.rfind('@') else {
        return Cow::Borrowed(text);
    };
    let start = text.find("://").map_or(0, |i| i + 3);
    if start > at {
        return Cow::Borrowed(text);
    }
    Cow::Owned(format!("{}{HIDDEN}{}", &text[..start], &text[at..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_hidden() {
        for (url, shown) in [
            (
                "https://u:p@h.example.com/x?q=1",
                "https://***@h.example.com/x?q=1",
            ),
            ("https://u@h.example.com/", "https://***@h.example.com/"),
            ("https://:p@h.example.com/", "https://***@h.example.com/"),
            (
                "http://u:p%40ss@127.0.0.1:8080/",
                "http://***@127.0.0.1:8080/",
            ),
            (
                "https://u:p/ss@h.example.com/",
                "https://***@h.example.com/",
            ),
            ("u:p@h.example.com", "***@h.example.com"),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
        }
    }

    #[test]
    fn urls_without_credentials_are_kept() {
        for url in [
            "https://h.example.com/x?who=a@b",
            "https://h.example.com/a@b",
            "HTTPS://H.example.com",
            "not a url",
            "",
        ] {
            assert!(
                matches!(redact_url(url), Cow::Borrowed(u) if u == url),
                "{url}"
            );
        }
    }
}
