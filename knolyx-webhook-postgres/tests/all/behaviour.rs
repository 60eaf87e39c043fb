use knolyx_webhook_core::testing::conformance;
use std::time::Duration;

use knolyx_webhook_core::store::{ClaimOutcome, IdempotencyStore, OwnerToken, SettleOutcome};
use knolyx_webhook_postgres::{DEFAULT_TABLE, PostgresStore, schema_sql};
use sqlx::PgPool;

use crate::support::{database_url, drop_table, migrated, pool, unique_table};

const MINUTE: Duration = Duration::from_secs(60);

async fn row(pool: &PgPool, table: &str, id: &str) -> Option<(String, Option<String>, bool, bool)> {
    sqlx::query_as(&format!(
        "SELECT state, owner, lease_expires_at > now(), retain_until > now() + interval '59 seconds'
         FROM {table} WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await
    .unwrap()
    .map(
        |(state, owner, lease, retain): (String, Option<String>, Option<bool>, Option<bool>)| {
            (
                state,
                owner,
                lease.unwrap_or(false),
                retain.unwrap_or(false),
            )
        },
    )
}

#[tokio::test]
#[ignore = "needs KNOLYX_TEST_DATABASE_URL (README: Running the store tests)"]
async fn migrate_is_idempotent_and_safe_to_run_concurrently() {
    let Some(url) = database_url() else { return };
    let pool = pool(&url).await;
    let table = unique_table("migrate");
    let store = PostgresStore::builder(pool.clone())
        .table(&table)
        .build()
        .unwrap();
    let runs: Vec<_> = (0..4)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.migrate().await })
        })
        .collect();
    for run in runs {
        run.await.unwrap().expect("concurrent migrations");
    }
    store.migrate().await.expect("migrate again");
    // The SQL handed to other migration tools is the same, and idempotent too.
    sqlx::raw_sql(&store.schema_sql())
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(store.schema_sql(), schema_sql(&table).unwrap());

    let owner = OwnerToken::generate();
    assert_eq!(
        store.claim("id", owner, MINUTE).await.unwrap(),
        ClaimOutcome::Claimed
    );
    let index: Option<String> = sqlx::query_scalar(
        "SELECT indexname::text FROM pg_indexes WHERE tablename = $1 AND indexname LIKE '%expiry_idx'",
    )
    .bind(&table)
    .fetch_optional(&pool)
    .await
    .unwrap();
    assert!(index.is_some(), "the expiry index exists");
    drop_table(&pool, &table).await;
}

#[test]
fn invalid_table_names_are_refused() {
    for bad in [
        "",
        "Deliveries",
        "a.b.c",
        "x; DROP TABLE users",
        "\"quoted\"",
        "1st",
    ] {
        assert!(schema_sql(bad).is_err(), "{bad:?}");
    }
    assert!(schema_sql(DEFAULT_TABLE).is_ok());
}

#[tokio::test]
async fn invalid_table_names_are_refused_by_the_builder() {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .connect_lazy("postgres://nobody@127.0.0.1:1/none")
        .unwrap();
    let err = PostgresStore::builder(pool.clone())
        .table("deliveries; DROP TABLE users")
        .build()
        .unwrap_err();
    assert_eq!(err.name(), "deliveries; DROP TABLE users");
    let store = PostgresStore::new(pool);
    assert_eq!(store.table().name(), DEFAULT_TABLE);
}

#[tokio::test]
#[ignore = "needs KNOLYX_TEST_DATABASE_URL (README: Running the store tests)"]
async fn tables_isolate_stores_including_schema_qualified_ones() {
    let Some(url) = database_url() else { return };
    let pool = pool(&url).await;
    let schema = unique_table("schema");
    sqlx::raw_sql(&format!("CREATE SCHEMA {schema}"))
        .execute(&pool)
        .await
        .unwrap();
    let (plain, qualified) = (unique_table("plain"), format!("{schema}.deliveries"));
    let billing = migrated(&pool, &plain).await;
    let crm = migrated(&pool, &qualified).await;
    assert_eq!(crm.table().schema(), Some(schema.as_str()));

    conformance::isolation(&billing, &crm, "same-id").await;
    // Each store wrote its own table.
    for table in [&plain, &qualified] {
        assert_eq!(row(&pool, table, "same-id").await.unwrap().0, "completed");
    }

    drop_table(&pool, &plain).await;
    sqlx::raw_sql(&format!("DROP SCHEMA {schema} CASCADE"))
        .execute(&pool)
        .await
        .unwrap();
}

#[tokio::test]
#[ignore = "needs KNOLYX_TEST_DATABASE_URL (README: Running the store tests)"]
async fn settling_is_fenced_by_the_owner_in_sql() {
    let Some(url) = database_url() else { return };
    let pool = pool(&url).await;
    let table = unique_table("fencing");
    let store = migrated(&pool, &table).await;
    let (owner, intruder) = (OwnerToken::generate(), OwnerToken::generate());

    assert_eq!(
        store.claim("id", owner, MINUTE).await.unwrap(),
        ClaimOutcome::Claimed
    );
    let expected = (
        "in_progress".to_owned(),
        Some(owner.to_string()),
        true,
        false,
    );
    assert_eq!(row(&pool, &table, "id").await, Some(expected.clone()));
    assert_eq!(
        store.complete("id", intruder, MINUTE).await.unwrap(),
        SettleOutcome::NotOwner
    );
    assert_eq!(
        store.release("id", intruder).await.unwrap(),
        SettleOutcome::NotOwner
    );
    assert_eq!(row(&pool, &table, "id").await, Some(expected), "untouched");

    assert_eq!(
        store.complete("id", owner, MINUTE).await.unwrap(),
        SettleOutcome::Settled
    );
    assert_eq!(
        row(&pool, &table, "id").await,
        Some(("completed".to_owned(), None, false, true))
    );

    // An expired lease (by the database's clock) cannot be settled by its owner.
    assert_eq!(
        store
            .claim("short", owner, Duration::from_millis(1))
            .await
            .unwrap(),
        ClaimOutcome::Claimed
    );
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(
        store.complete("short", owner, MINUTE).await.unwrap(),
        SettleOutcome::NotOwner
    );
    assert_eq!(
        store.release("short", owner).await.unwrap(),
        SettleOutcome::NotOwner
    );
    assert_eq!(row(&pool, &table, "short").await.unwrap().0, "in_progress");

    // A release deletes the row.
    assert_eq!(
        store.claim("gone", owner, MINUTE).await.unwrap(),
        ClaimOutcome::Claimed
    );
    assert_eq!(
        store.release("gone", owner).await.unwrap(),
        SettleOutcome::Settled
    );
    assert_eq!(row(&pool, &table, "gone").await, None);
    drop_table(&pool, &table).await;
}

#[tokio::test]
#[ignore = "needs KNOLYX_TEST_DATABASE_URL (README: Running the store tests)"]
async fn purge_expired_deletes_only_expired_rows_and_counts_them() {
    let Some(url) = database_url() else { return };
    let pool = pool(&url).await;
    let table = unique_table("purge");
    let store = migrated(&pool, &table).await;
    let short = Duration::from_millis(1);

    for i in 0..3 {
        let id = format!("lease-expired-{i}");
        store
            .claim(&id, OwnerToken::generate(), short)
            .await
            .unwrap();
    }
    for i in 0..2 {
        let (id, owner) = (format!("retention-expired-{i}"), OwnerToken::generate());
        store.claim(&id, owner, MINUTE).await.unwrap();
        assert_eq!(
            store.complete(&id, owner, short).await.unwrap(),
            SettleOutcome::Settled
        );
    }
    store
        .claim("running", OwnerToken::generate(), MINUTE)
        .await
        .unwrap();
    let owner = OwnerToken::generate();
    store.claim("done", owner, MINUTE).await.unwrap();
    store.complete("done", owner, MINUTE).await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;

    assert_eq!(store.purge_expired().await.unwrap(), 5);
    assert_eq!(store.purge_expired().await.unwrap(), 0);
    let left: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(left, 2);
    assert_eq!(
        store
            .claim("running", OwnerToken::generate(), MINUTE)
            .await
            .unwrap(),
        ClaimOutcome::InProgress
    );
    assert_eq!(
        store
            .claim("done", OwnerToken::generate(), MINUTE)
            .await
            .unwrap(),
        ClaimOutcome::Completed
    );
    // A purged id is absent: claimable again.
    assert_eq!(
        store
            .claim("lease-expired-0", OwnerToken::generate(), MINUTE)
            .await
            .unwrap(),
        ClaimOutcome::Claimed
    );
    drop_table(&pool, &table).await;
}

/// Concurrent first claims of one id: the losers' statements meet a row committed after
/// their snapshot, the case the claim answers with a second read. Exactly one wins, every
/// other sees `InProgress`, round after round.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs KNOLYX_TEST_DATABASE_URL (README: Running the store tests)"]
async fn concurrent_first_claims_have_exactly_one_winner() {
    let Some(url) = database_url() else { return };
    let pool = pool(&url).await;
    let table = unique_table("race");
    let store = migrated(&pool, &table).await;
    for round in 0..20 {
        let id = format!("race-{round}");
        let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(12));
        let claims: Vec<_> = (0..12)
            .map(|_| {
                let (store, id, barrier) = (store.clone(), id.clone(), barrier.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    store.claim(&id, OwnerToken::generate(), MINUTE).await
                })
            })
            .collect();
        let mut outcomes = Vec::new();
        for claim in claims {
            outcomes.push(claim.await.unwrap().expect("claim"));
        }
        let winners = outcomes
            .iter()
            .filter(|o| **o == ClaimOutcome::Claimed)
            .count();
        assert_eq!(winners, 1, "round {round}: {outcomes:?}");
        assert!(
            outcomes
                .iter()
                .all(|o| matches!(o, ClaimOutcome::Claimed | ClaimOutcome::InProgress)),
            "round {round}: {outcomes:?}"
        );
    }
    drop_table(&pool, &table).await;
}
