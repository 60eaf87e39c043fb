//! The platform's rules for a webhook URL, checked before anything is sent.

use std::error::Error as StdError;
use std::fmt;
use std::net::IpAddr;

use url::{Host, Url};

/// Checks a webhook URL the way Knolyx does, before it is sent to [`create`].
///
/// Knolyx only accepts an `https` URL that does not point at the local machine. This
/// refuses, with the precise reason in [`InvalidWebhookUrl::reason`]:
///
/// - a URL that does not parse ([`InvalidWebhookUrlReason::Parse`]);
/// - any scheme but `https` ([`InvalidWebhookUrlReason::NotHttps`]);
/// - a URL without a host ([`InvalidWebhookUrlReason::MissingHost`]);
/// - `localhost` and every `*.localhost` name, in any case and with or without a trailing
///   dot ([`InvalidWebhookUrlReason::Localhost`]);
/// - a loopback address: `127.0.0.0/8`, `::1`, and IPv4-mapped loopback such as
///   `::ffff:127.0.0.1` ([`InvalidWebhookUrlReason::Loopback`]);
/// - the unspecified address `0.0.0.0` or `::` ([`InvalidWebhookUrlReason::Unspecified`]).
///
/// Addresses are recognised in every spelling the URL standard accepts
/// (`https://2130706433/` is `127.0.0.1`). Private network ranges are not refused: they
/// are not the local machine, and Knolyx does not document refusing them.
///
/// On success the parsed [`Url`] is returned.
///
/// [`create`]: crate::KnolyxClient::create
///
/// # Examples
///
/// ```
/// use knolyx_webhook_client::{validate_webhook_url, InvalidWebhookUrlReason};
///
/// assert!(validate_webhook_url("https://hooks.example.com/knolyx").is_ok());
///
/// let err = validate_webhook_url("http://hooks.example.com/knolyx").unwrap_err();
/// assert!(matches!(err.reason(), InvalidWebhookUrlReason::NotHttps { .. }));
///
/// let err = validate_webhook_url("https://api.localhost/hook").unwrap_err();
/// assert!(matches!(err.reason(), InvalidWebhookUrlReason::Localhost { .. }));
///
/// let err = validate_webhook_url("https://127.0.0.2/hook").unwrap_err();
/// assert!(matches!(err.reason(), InvalidWebhookUrlReason::Loopback { .. }));
/// ```
pub fn validate_webhook_url(url: &str) -> Result<Url, InvalidWebhookUrl> {
    let parsed =
        Url::parse(url).map_err(|e| InvalidWebhookUrl::new(InvalidWebhookUrlReason::Parse(e)))?;
    if parsed.scheme() != "https" {
        return Err(InvalidWebhookUrl::new(InvalidWebhookUrlReason::NotHttps {
            scheme: parsed.scheme().to_owned(),
        }));
    }
    match parsed.host() {
        None => return Err(InvalidWebhookUrl::new(InvalidWebhookUrlReason::MissingHost)),
        Some(Host::Domain(domain)) => check_domain(domain)?,
        Some(Host::Ipv4(ip)) => check_ip(IpAddr::V4(ip))?,
        Some(Host::Ipv6(ip)) => check_ip(IpAddr::V6(ip))?,
    }
    Ok(parsed)
}

fn check_domain(domain: &str) -> Result<(), InvalidWebhookUrl> {
    if domain.is_empty() {
        return Err(InvalidWebhookUrl::new(InvalidWebhookUrlReason::MissingHost));
    }
    let name = domain
        .strip_suffix('.')
        .unwrap_or(domain)
        .to_ascii_lowercase();
    if name == "localhost" || name.ends_with(".localhost") {
        return Err(InvalidWebhookUrl::new(InvalidWebhookUrlReason::Localhost {
            host: domain.to_owned(),
        }));
    }
    Ok(())
}

fn check_ip(ip: IpAddr) -> Result<(), InvalidWebhookUrl> {
    // An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) reaches the IPv4 address.
    let effective = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    };
    if effective.is_loopback() {
        return Err(InvalidWebhookUrl::new(InvalidWebhookUrlReason::Loopback {
            ip,
        }));
    }
    if effective.is_unspecified() {
        return Err(InvalidWebhookUrl::new(
            InvalidWebhookUrlReason::Unspecified { ip },
        ));
    }
    Ok(())
}

/// A webhook URL that Knolyx would refuse; see [`validate_webhook_url`].
///
/// `Display` gives a one-line explanation; [`reason`](Self::reason) says precisely why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidWebhookUrl {
    reason: InvalidWebhookUrlReason,
}

impl InvalidWebhookUrl {
    fn new(reason: InvalidWebhookUrlReason) -> Self {
        Self { reason }
    }

    /// Why the URL was refused.
    pub fn reason(&self) -> &InvalidWebhookUrlReason {
        &self.reason
    }

    /// Consumes the error, returning why the URL was refused.
    pub fn into_reason(self) -> InvalidWebhookUrlReason {
        self.reason
    }
}

impl fmt::Display for InvalidWebhookUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid webhook URL: {}", self.reason)
    }
}

impl StdError for InvalidWebhookUrl {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match &self.reason {
            InvalidWebhookUrlReason::Parse(e) => Some(e),
            _ => None,
        }
    }
}

/// Why a webhook URL was refused; see [`validate_webhook_url`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum InvalidWebhookUrlReason {
    /// The text is not a URL.
    Parse(url::ParseError),
    /// The scheme is not `https` (Knolyx refuses `http` and everything else).
    NotHttps {
        /// The scheme that was given, e.g. `http`.
        scheme: String,
    },
    /// The URL names no host.
    MissingHost,
    /// The host is `localhost` or a `*.localhost` name.
    Localhost {
        /// The host as it appears in the parsed URL.
        host: String,
    },
    /// The host is a loopback address (`127.0.0.0/8`, `::1`, or IPv4-mapped loopback).
    Loopback {
        /// The address as parsed from the URL.
        ip: IpAddr,
    },
    /// The host is the unspecified address (`0.0.0.0` or `::`).
    Unspecified {
        /// The address as parsed from the URL.
        ip: IpAddr,
    },
}

impl fmt::Display for InvalidWebhookUrlReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Parse(e) => write!(f, "not a URL ({e})"),
            Self::NotHttps { scheme } => {
                write!(
                    f,
                    "scheme `{scheme}` is not allowed, Knolyx only accepts https"
                )
            }
            Self::MissingHost => f.write_str("the URL has no host"),
            Self::Localhost { host } => {
                write!(f, "host `{host}` is localhost, which Knolyx cannot reach")
            }
            Self::Loopback { ip } => {
                write!(
                    f,
                    "address {ip} is a loopback address, which Knolyx cannot reach"
                )
            }
            Self::Unspecified { ip } => {
                write!(
                    f,
                    "address {ip} is the unspecified address, which Knolyx cannot reach"
                )
            }
        }
    }
}
