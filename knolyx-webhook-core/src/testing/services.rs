/// The URL of a real service for a test, from the environment variable `var`
/// (`KNOLYX_TEST_REDIS_URL`, `KNOLYX_TEST_DATABASE_URL`, …).
///
/// Mark a test that needs it `#[ignore = "needs VAR"]`, so that a plain `cargo test` on a
/// machine without the service reports it as ignored, not as passed; `cargo test --
/// --include-ignored` runs it. When `var` is unset or empty there, this prints `skipping:
/// VAR is not set` and returns `None` — unless `KNOLYX_TEST_REQUIRE_SERVICES=1` is set (as
/// CI does), in which case it panics: there, these tests must run, never skip.
///
/// ```no_run
/// # use knolyx_webhook_core::testing::service_url;
/// #[test]
/// #[ignore = "needs MY_TEST_SERVICE_URL"]
/// fn talks_to_the_service() {
///     let Some(url) = service_url("MY_TEST_SERVICE_URL") else { return };
///     // … talk to the service at `url` …
/// # let _ = url;
/// }
/// ```
pub fn service_url(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("KNOLYX_TEST_REQUIRE_SERVICES").as_deref() == Ok("1") => {
            panic!("{var} is not set, and KNOLYX_TEST_REQUIRE_SERVICES=1 requires it")
        }
        _ => {
            eprintln!("skipping: {var} is not set");
            None
        }
    }
}
