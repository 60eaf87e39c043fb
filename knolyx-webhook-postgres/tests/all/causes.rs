//! Store errors say what went wrong, for real, against the test server: nothing listening
//! (refused), a role the server refuses (auth), a database that does not exist and a table
//! that was never migrated (misconfigured); the server's words stay in the source chain.

use std::time::Duration;

use knolyx_webhook_core::store::{IdempotencyStore, OwnerToken, StoreError, StoreErrorKind};
use knolyx_webhook_postgres::PostgresStore;
use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::support::{database_url, unique_table};

fn chain(error: &StoreError) -> String {
    knolyx_webhook_core::testing::error_chain(error)
}

/// The connect options of `url`, changed.
fn with(url: &str, change: impl FnOnce(PgConnectOptions) -> PgConnectOptions) -> PgConnectOptions {
    change(PgConnectOptions::from_str(url).unwrap())
}

async fn claim_error(options: PgConnectOptions) -> StoreError {
    let pool = PgPoolOptions::new()
        .acquire_timeout(Duration::from_secs(5))
        .connect_lazy_with(options);
    PostgresStore::new(pool)
        .claim("m-cause", OwnerToken::generate(), Duration::from_secs(60))
        .await
        .unwrap_err()
}

#[tokio::test]
#[ignore = "needs KNOLYX_TEST_DATABASE_URL (README: Running the store tests)"]
async fn each_failure_names_its_kind_and_keeps_its_cause() {
    let Some(url) = database_url() else { return };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // A refused connection: the pool retries it until its acquire timeout and then
    // reports only that, so the cause shows where the store connects eagerly (at start-up).
    let refused = format!("postgres://postgres@127.0.0.1:{port}/test");
    let error = PostgresStore::connect(&refused).await.unwrap_err();
    assert_eq!(error.kind(), StoreErrorKind::Refused, "{}", chain(&error));
    let cases = [
        (
            "unknown role",
            with(&url, |o| o.username("knolyx_no_such_role")),
            StoreErrorKind::Auth,
            "knolyx_no_such_role",
        ),
        (
            "unknown database",
            with(&url, |o| o.database("knolyx_no_such_database")),
            StoreErrorKind::Misconfigured,
            "knolyx_no_such_database",
        ),
    ];
    for (case, options, kind, mentions) in cases {
        let error = claim_error(options).await;
        let text = chain(&error);
        assert_eq!(error.kind(), kind, "{case}: {text}");
        assert!(text.to_lowercase().contains(mentions), "{case}: {text}");
    }
}

#[tokio::test]
#[ignore = "needs KNOLYX_TEST_DATABASE_URL (README: Running the store tests)"]
async fn a_table_never_migrated_is_misconfigured() {
    let Some(url) = database_url() else { return };
    let pool = PgPoolOptions::new().connect(&url).await.unwrap();
    let store = PostgresStore::builder(pool)
        .table(&unique_table("never_migrated"))
        .build()
        .unwrap();
    let error = store
        .claim("m-table", OwnerToken::generate(), Duration::from_secs(60))
        .await
        .unwrap_err();
    let text = chain(&error);
    assert_eq!(error.kind(), StoreErrorKind::Misconfigured, "{text}");
    assert!(text.contains("does not exist"), "{text}");
}
