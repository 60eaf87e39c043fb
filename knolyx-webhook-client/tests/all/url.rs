//! The platform's rules for webhook URLs.

use std::net::IpAddr;

use knolyx_webhook_client::{InvalidWebhookUrlReason as Reason, validate_webhook_url};

#[test]
fn accepted() {
    for url in [
        "https://valid-domain/hook",
        "https://hooks.example.com/webhooks/knolyx?x=1",
        "https://example.com:8443/",
        "https://10.0.0.1/hook",
        "https://[2001:db8::1]/hook",
        "https://localhost.example.com/hook",
        "https://mylocalhost/hook",
    ] {
        let parsed = validate_webhook_url(url).unwrap_or_else(|e| panic!("{url}: {e}"));
        assert_eq!(parsed.scheme(), "https");
    }
}

#[test]
fn not_https() {
    for (url, scheme) in [
        ("http://example.com/hook", "http"),
        ("ftp://example.com/hook", "ftp"),
        ("HTTP://example.com/hook", "http"),
    ] {
        let err = validate_webhook_url(url).expect_err(url);
        assert_eq!(
            err.reason(),
            &Reason::NotHttps {
                scheme: scheme.into()
            },
            "{url}"
        );
        assert!(err.to_string().contains("https"), "{err}");
    }
}

#[test]
fn localhost() {
    for url in [
        "https://localhost/hook",
        "https://LOCALHOST/hook",
        "https://localhost./hook",
        "https://sub.localhost/hook",
        "https://a.b.localhost:8443/hook",
    ] {
        let err = validate_webhook_url(url).expect_err(url);
        assert!(
            matches!(err.reason(), Reason::Localhost { .. }),
            "{url}: {err:?}"
        );
        assert!(err.to_string().contains("localhost"), "{err}");
    }
}

#[test]
fn loopback_and_unspecified() {
    let loopback = [
        ("https://127.0.0.1/hook", "127.0.0.1"),
        ("https://127.0.0.2/hook", "127.0.0.2"),
        ("https://127.255.255.254/hook", "127.255.255.254"),
        ("https://2130706433/hook", "127.0.0.1"),
        ("https://[::1]/hook", "::1"),
        ("https://[::ffff:127.0.0.1]/hook", "::ffff:127.0.0.1"),
    ];
    for (url, ip) in loopback {
        let err = validate_webhook_url(url).expect_err(url);
        let ip: IpAddr = ip.parse().unwrap();
        assert_eq!(err.reason(), &Reason::Loopback { ip }, "{url}");
        assert!(err.to_string().contains("loopback"), "{err}");
    }
    for (url, ip) in [
        ("https://0.0.0.0/hook", "0.0.0.0"),
        ("https://[::]/hook", "::"),
    ] {
        let err = validate_webhook_url(url).expect_err(url);
        let ip: IpAddr = ip.parse().unwrap();
        assert_eq!(err.reason(), &Reason::Unspecified { ip }, "{url}");
    }
}

#[test]
fn not_a_url() {
    for url in ["", "valid-domain/hook", "https://", "https://exa mple.com/"] {
        let err = validate_webhook_url(url).expect_err(url);
        assert!(matches!(err.reason(), Reason::Parse(_)), "{url}: {err:?}");
        assert!(std::error::Error::source(&err).is_some());
    }
}
