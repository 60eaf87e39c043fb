//! Two sessions interleaved deterministically: session A changes a row inside an open
//! transaction (holding the row lock), the store's claim starts in session B and waits on
//! that lock (its statement's snapshot older than A's commit), then A commits. The claim must
//! answer from the row as A committed it, never from its older snapshot.

use std::time::{Duration, Instant};

use knolyx_webhook_core::store::{ClaimOutcome, IdempotencyStore, OwnerToken};
use sqlx::PgPool;

use crate::support::{database_url, drop_table, migrated, pool, unique_table};

/// On a new table holding the id's row as `row` (a `VALUES` list for `(id, state, owner,
/// lease_expires_at, retain_until)`, `$1` the id): session A applies `update` (`{table}`
/// the table, `$1` the id) in a transaction it keeps open; session B, the store, claims the
/// id and is seen waiting for A (in `pg_stat_activity`, by `pg_blocking_pids`); A commits.
/// Returns B's answer, and the table for more checks.
async fn claim_behind(
    pool: &PgPool,
    test: &str,
    row: &str,
    update: &str,
) -> (ClaimOutcome, String) {
    let table = unique_table(test);
    let store = migrated(pool, &table).await;
    sqlx::query(&format!(
        "INSERT INTO {table} (id, state, owner, lease_expires_at, retain_until) VALUES {row}"
    ))
    .bind("id")
    .execute(pool)
    .await
    .unwrap();

    let mut a = pool.begin().await.unwrap();
    let a_pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut *a)
        .await
        .unwrap();
    let done = sqlx::query(&update.replace("{table}", &table))
        .bind("id")
        .execute(&mut *a)
        .await
        .unwrap();
    assert_eq!(done.rows_affected(), 1, "session A changed the row");

    let b = tokio::spawn(async move {
        store
            .claim("id", OwnerToken::generate(), Duration::from_secs(60))
            .await
    });
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let waiting: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE $1 = ANY (pg_blocking_pids(pid)))",
        )
        .bind(a_pid)
        .fetch_one(pool)
        .await
        .unwrap();
        if waiting {
            break;
        }
        assert!(
            !b.is_finished(),
            "the claim did not wait for session A: {:?}",
            b.await
        );
        assert!(Instant::now() < deadline, "the claim never waited on A");
        // Each poll is a round trip: no busy loop, and no sleep standing in for the signal.
        tokio::task::yield_now().await;
    }
    a.commit().await.unwrap();
    (b.await.unwrap().expect("claim"), table)
}

/// Issue 11, defect 2: A takes over an id whose retention expired; B's claim, waiting on A,
/// used to answer `Completed` from its snapshot (the pipeline's 200 duplicate) while A runs
/// the handler — lost if A's handler then fails. B must answer `InProgress`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs KNOLYX_TEST_DATABASE_URL (README: Running the store tests)"]
async fn a_claim_waiting_on_a_takeover_of_an_expired_completion_is_in_progress() {
    let Some(url) = database_url() else { return };
    let pool = pool(&url).await;
    let (outcome, table) = claim_behind(
        &pool,
        "takeover_wait",
        "($1, 'completed', NULL, NULL, now() - interval '1 second')",
        // What another replica's claim writes when it takes the id over.
        "UPDATE {table} SET state = 'in_progress', owner = 'replica-a',
            lease_expires_at = now() + interval '1 minute', retain_until = NULL
        WHERE id = $1 AND retain_until <= now()",
    )
    .await;
    assert_eq!(outcome, ClaimOutcome::InProgress, "replica A is running it");
    let owner: Option<String> = sqlx::query_scalar(&format!("SELECT owner FROM {table}"))
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(owner.as_deref(), Some("replica-a"), "B took nothing");
    drop_table(&pool, &table).await;
}

/// The other direction: A completes an id in progress while B's claim waits. B answers from
/// the row A committed (`Completed`), not from its snapshot (`InProgress`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs KNOLYX_TEST_DATABASE_URL (README: Running the store tests)"]
async fn a_claim_waiting_on_a_completion_is_completed() {
    let Some(url) = database_url() else { return };
    let pool = pool(&url).await;
    let (outcome, table) = claim_behind(
        &pool,
        "complete_wait",
        "($1, 'in_progress', 'replica-a', now() + interval '1 minute', NULL)",
        "UPDATE {table} SET state = 'completed', owner = NULL, lease_expires_at = NULL,
            retain_until = now() + interval '1 minute'
        WHERE id = $1",
    )
    .await;
    assert_eq!(outcome, ClaimOutcome::Completed);
    drop_table(&pool, &table).await;
}
