//! The store behind PgBouncer in `pool_mode = transaction` (issue 12, item 2): a private
//! PgBouncer (`testing::PrivatePgBouncer`, 2 server connections) in front of the test
//! database, and client pools of several connections, so that consecutive transactions of
//! one client connection land on different server connections.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use std::time::Duration;

use http::Method;
use knolyx_webhook_core::store::{
    ClaimOutcome, IdempotencyStore, OwnerToken, SettleOutcome, StoreErrorKind,
};
use knolyx_webhook_core::testing::TestEvent;
use knolyx_webhook_core::testing::conformance;
use knolyx_webhook_core::testing::model;
use knolyx_webhook_core::{Accepted, Answer, Settled};
use knolyx_webhook_postgres::testing::PrivatePgBouncer;
use knolyx_webhook_postgres::{Pooler, PostgresStore};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

use crate::support::{database_url, drop_table, migrated, pool, unique_table};
use crate::transaction::{create_side_table, deliver, delivery, effects, headers, receiver};

const MINUTE: Duration = Duration::from_secs(60);

/// A PgBouncer in front of the test database, and a direct pool to check the rows with.
async fn bouncer() -> Option<(PrivatePgBouncer, PgPool)> {
    let url = database_url()?;
    let bouncer = PrivatePgBouncer::start(&url).await?;
    Some((bouncer, pool(&url).await))
}

/// A store on `table` through `bouncer` (a pool of 8 client connections), migrated.
async fn store_through(bouncer: &PrivatePgBouncer, table: &str, pooler: Pooler) -> PostgresStore {
    let store = PostgresStore::builder(pooled(bouncer, 8).await)
        .table(table)
        .operation_timeout(Duration::from_secs(10))
        .pooler(pooler)
        .build()
        .unwrap();
    store.migrate().await.expect("migrate through the pooler");
    store
}

/// A client pool of `connections` through `bouncer`.
async fn pooled(bouncer: &PrivatePgBouncer, connections: u32) -> PgPool {
    PgPoolOptions::new()
        .max_connections(connections)
        .min_connections(connections)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(bouncer.connect_options())
        .await
        .expect("connect through pgbouncer")
}

/// How many of `ids` are completed in `table` (read directly, not through the pooler).
async fn completed(direct: &PgPool, table: &str, ids: &[String]) -> i64 {
    sqlx::query_scalar(&format!(
        "SELECT count(*) FROM {table} WHERE state = 'completed' AND id = ANY($1)"
    ))
    .bind(ids)
    .fetch_one(direct)
    .await
    .unwrap()
}

/// What [`deliver_all`] saw.
struct Run {
    /// The message ids delivered.
    ids: Vec<String>,
    /// One line per delivery that failed: a rejection's status, or a settlement other
    /// than `Completed`.
    failures: Vec<String>,
}

impl Run {
    fn assert_no_failure(&self) {
        assert!(
            self.failures.is_empty(),
            "{} of {} deliveries failed, e.g. {:?}",
            self.failures.len(),
            self.ids.len(),
            &self.failures[..self.failures.len().min(5)]
        );
    }
}

/// `deliveries` new events, `tasks` at a time, through a receiver on `store`; each handler
/// succeeds.
async fn deliver_all(store: &PostgresStore, deliveries: usize, tasks: usize) -> Run {
    let receiver = receiver(store);
    let next = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..tasks)
        .map(|_| {
            let (receiver, next) = (receiver.clone(), next.clone());
            tokio::spawn(async move {
                let mut run = Run {
                    ids: Vec::new(),
                    failures: Vec::new(),
                };
                while next.fetch_add(1, Ordering::Relaxed) < deliveries {
                    let event = TestEvent::course_completed();
                    run.ids.push(event.message_id().to_owned());
                    match receiver
                        .receive(&Method::PUT, &headers(), event.to_body())
                        .await
                    {
                        Ok(Accepted::Deliver(delivery)) => {
                            let (_, settlement) = delivery.into_parts();
                            let settled = settlement.settle(200).await;
                            if settled != Settled::Completed {
                                run.failures.push(format!("settled {settled:?}"));
                            }
                        }
                        Ok(other) => run.failures.push(format!("not delivered: {other:?}")),
                        Err(rejection) => run
                            .failures
                            .push(format!("{}: {rejection}", rejection.status())),
                    }
                }
                run
            })
        })
        .collect();
    let mut all = Run {
        ids: Vec::new(),
        failures: Vec::new(),
    };
    for worker in workers {
        let run = worker.await.unwrap();
        all.ids.extend(run.ids);
        all.failures.extend(run.failures);
    }
    all
}

/// Issue 12, item 2: behind PgBouncer in transaction mode, a store built as the crate's
/// docs showed (on the application's pool, no setting) answered 503 to half the deliveries
/// (`prepared statement "sqlx_s_1" already exists`, `… does not exist`) and failed half the
/// completions, for ever. Left at the default settings it now switches to statements that
/// work through the pooler at the first sign of one: after a first burst, no delivery fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs KNOLYX_TEST_DATABASE_URL and pgbouncer (README: Running the store tests)"]
async fn a_store_left_at_the_defaults_behind_a_transaction_pooler_stops_failing() {
    let Some((bouncer, direct)) = bouncer().await else {
        return;
    };
    let table = unique_table("pooler_default");
    let store = store_through(&bouncer, &table, Pooler::Direct).await;

    let first = deliver_all(&store, 40, 16).await;
    eprintln!(
        "first burst: {} of 40 deliveries failed, {} completed",
        first.failures.len(),
        completed(&direct, &table, &first.ids).await
    );
    assert_eq!(
        store.pooler(),
        Pooler::Transaction,
        "switched at the first sign"
    );
    let steady = deliver_all(&store, 200, 16).await;
    steady.assert_no_failure();
    assert_eq!(completed(&direct, &table, &steady.ids).await, 200);
    drop_table(&direct, &table).await;
}

/// A store on `table` through `bouncer`, built as the docs say: `Pooler::Transaction`.
async fn transaction_store(bouncer: &PrivatePgBouncer, table: &str) -> PostgresStore {
    store_through(bouncer, table, Pooler::Transaction).await
}

/// A pool of 8 client connections on 2 server connections: 200 deliveries, 16 at a time,
/// each claimed and completed, then each retransmitted (a duplicate), with no error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs KNOLYX_TEST_DATABASE_URL and pgbouncer (README: Running the store tests)"]
async fn two_hundred_deliveries_through_a_transaction_pooler_have_no_error() {
    let Some((bouncer, direct)) = bouncer().await else {
        return;
    };
    let table = unique_table("pooler_200");
    let store = transaction_store(&bouncer, &table).await;

    let run = deliver_all(&store, 200, 16).await;
    run.assert_no_failure();
    assert_eq!(completed(&direct, &table, &run.ids).await, 200);
    assert_eq!(store.pooler(), Pooler::Transaction);
    let duplicates: Vec<_> = run
        .ids
        .chunks(25)
        .map(|ids| {
            let (store, ids) = (store.clone(), ids.to_vec());
            tokio::spawn(async move {
                let mut outcomes = Vec::new();
                for id in ids {
                    let outcome = store.claim(&id, OwnerToken::generate(), MINUTE).await;
                    outcomes.push(outcome.expect("claim of a duplicate"));
                }
                outcomes
            })
        })
        .collect();
    for task in duplicates {
        for outcome in task.await.unwrap() {
            assert_eq!(outcome, ClaimOutcome::Completed);
        }
    }
    drop_table(&direct, &table).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs KNOLYX_TEST_DATABASE_URL and pgbouncer (README: Running the store tests)"]
async fn the_conformance_suite_passes_through_a_transaction_pooler() {
    let Some((bouncer, direct)) = bouncer().await else {
        return;
    };
    let table = unique_table("pooler_conformance");
    let store = transaction_store(&bouncer, &table).await;
    conformance::run(Arc::new(store)).await;
    drop_table(&direct, &table).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs KNOLYX_TEST_DATABASE_URL and pgbouncer (README: Running the store tests)"]
async fn the_store_matches_the_model_through_a_transaction_pooler() {
    let Some((bouncer, direct)) = bouncer().await else {
        return;
    };
    let table = unique_table("pooler_model");
    let store = transaction_store(&bouncer, &table).await;
    model::check(Arc::new(store), crate::model::config()).await;
    drop_table(&direct, &table).await;
}

/// The migration (under an advisory lock held by its transaction, never a session's) from
/// four replicas at once through the pooler, and the purge through it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs KNOLYX_TEST_DATABASE_URL and pgbouncer (README: Running the store tests)"]
async fn migrate_and_purge_work_through_a_transaction_pooler() {
    let Some((bouncer, direct)) = bouncer().await else {
        return;
    };
    let table = unique_table("pooler_migrate");
    let pool = pooled(&bouncer, 4).await;
    let store = PostgresStore::builder(pool)
        .table(&table)
        .pooler(Pooler::Transaction)
        .build()
        .unwrap();
    let runs: Vec<_> = (0..4)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.migrate().await })
        })
        .collect();
    for run in runs {
        run.await
            .unwrap()
            .expect("concurrent migrations through the pooler");
    }
    let short = Duration::from_millis(1);
    for i in 0..5 {
        let id = format!("expired-{i}");
        assert_eq!(
            store
                .claim(&id, OwnerToken::generate(), short)
                .await
                .unwrap(),
            ClaimOutcome::Claimed
        );
    }
    store
        .claim("running", OwnerToken::generate(), MINUTE)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await; // the 1 ms leases expire
    assert_eq!(store.purge_expired().await.unwrap(), 5);
    assert_eq!(store.purge_expired().await.unwrap(), 0);
    assert_eq!(
        store
            .claim("running", OwnerToken::generate(), MINUTE)
            .await
            .unwrap(),
        ClaimOutcome::InProgress
    );
    drop_table(&direct, &table).await;
}

/// Ids that a literal written in carelessly would break (quotes, backslashes, `$n`, a
/// comment, multibyte characters) are stored exactly, and a NUL is refused as the bound
/// statement refuses it: an error, no panic.
#[tokio::test]
#[ignore = "needs KNOLYX_TEST_DATABASE_URL and pgbouncer (README: Running the store tests)"]
async fn any_id_is_stored_exactly_through_a_transaction_pooler() {
    let Some((bouncer, direct)) = bouncer().await else {
        return;
    };
    let table = unique_table("pooler_ids");
    let store = transaction_store(&bouncer, &table).await;
    let long = "x'\\".repeat(2_000);
    let ids = [
        "plain",
        "it's",
        r"back\slash",
        r"\'; DROP TABLE users; --",
        "$1 $2 $3",
        "$$dollar$$",
        "é😀\n\t\r",
        "E'x'",
        "",
        long.as_str(),
    ];
    for id in ids {
        let owner = OwnerToken::generate();
        assert_eq!(
            store.claim(id, owner, MINUTE).await.unwrap(),
            ClaimOutcome::Claimed,
            "{id:?}"
        );
        let stored: Option<String> =
            sqlx::query_scalar(&format!("SELECT owner FROM {table} WHERE id = $1"))
                .bind(id)
                .fetch_optional(&direct)
                .await
                .unwrap();
        assert_eq!(stored, Some(owner.to_string()), "{id:?} stored as itself");
        assert_eq!(
            store.complete(id, owner, MINUTE).await.unwrap(),
            SettleOutcome::Settled,
            "{id:?}"
        );
        assert_eq!(
            store
                .claim(id, OwnerToken::generate(), MINUTE)
                .await
                .unwrap(),
            ClaimOutcome::Completed,
            "{id:?}"
        );
    }
    let count: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
        .fetch_one(&direct)
        .await
        .unwrap();
    assert_eq!(count, ids.len() as i64, "one row per id, nothing else");

    let direct_store = PostgresStore::builder(direct.clone())
        .table(&table)
        .build()
        .unwrap();
    for store in [&store, &direct_store] {
        let err = store
            .claim("a\0b", OwnerToken::generate(), MINUTE)
            .await
            .expect_err("NUL cannot be stored");
        assert_eq!(
            err.kind(),
            StoreErrorKind::Backend,
            "{:?}: {err}",
            store.pooler()
        );
    }
    drop_table(&direct, &table).await;
}

/// `complete_in_transaction` in the handler's own transaction through the pooler, many at
/// once (so transactions land on both server connections): committed, the side effect and
/// the completion are there; rolled back, neither, and the retry runs the handler.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs KNOLYX_TEST_DATABASE_URL and pgbouncer (README: Running the store tests)"]
async fn complete_in_transaction_works_through_a_transaction_pooler() {
    let Some((bouncer, direct)) = bouncer().await else {
        return;
    };
    let (deliveries, side) = (unique_table("pooler_tx"), unique_table("pooler_tx_effects"));
    let store = transaction_store(&bouncer, &deliveries).await;
    create_side_table(&direct, &side).await;
    let receiver = receiver(&store);

    let handlers: Vec<_> = (0..40)
        .map(|i| {
            let (store, receiver) = (store.clone(), receiver.clone());
            let side = side.clone();
            tokio::spawn(async move {
                let event = TestEvent::course_payment_received();
                let (_, settlement) = delivery(deliver(&receiver, &event).await).into_parts();
                let claim = settlement.claim_ref().expect("a claim");
                let commit = i % 2 == 0;
                let mut tx = store.pool().begin().await.unwrap();
                // The handler's own statement: unnamed, safe inside a transaction.
                sqlx::query(&format!("INSERT INTO {side} (message_id) VALUES ($1)"))
                    .persistent(false)
                    .bind(claim.id())
                    .execute(&mut *tx)
                    .await
                    .unwrap();
                let outcome = store
                    .complete_in_transaction(&mut tx, &claim)
                    .await
                    .expect("complete in the transaction");
                assert_eq!(outcome, SettleOutcome::Settled);
                if commit {
                    tx.commit().await.unwrap();
                    assert_eq!(settlement.settle(200).await, Settled::Completed);
                } else {
                    tx.rollback().await.unwrap();
                    assert_eq!(settlement.settle(500).await, Settled::Released);
                }
                (event, commit)
            })
        })
        .collect();
    for handler in handlers {
        let (event, committed) = handler.await.unwrap();
        let id = event.message_id();
        let effects = effects(&direct, &side, id).await;
        assert_eq!(effects, i64::from(committed), "{id}");
        match (committed, deliver(&receiver, &event).await) {
            (true, Accepted::Answered(Answer::Duplicate)) => {}
            (false, Accepted::Deliver(retry)) => {
                assert_eq!(retry.into_parts().1.settle(200).await, Settled::Completed);
            }
            (committed, other) => panic!("{id} (committed: {committed}): {other:?}"),
        }
    }
    assert_eq!(store.pooler(), Pooler::Transaction);
    drop_table(&direct, &deliveries).await;
    drop_table(&direct, &side).await;
}

/// The switch, made to happen deterministically on one direct connection: `DEALLOCATE ALL`
/// behind sqlx's back leaves it a cache of statements the server no longer has (`26000`,
/// what a transaction pooler's other server connection answers). The operation that meets
/// it runs again as a simple query, in the pool and inside a transaction (where the error
/// has aborted the caller's transaction: that call fails, the next one works).
#[tokio::test]
#[ignore = "needs KNOLYX_TEST_DATABASE_URL (README: Running the store tests)"]
async fn a_direct_store_switches_at_the_first_pooler_error() {
    let Some(url) = database_url() else { return };
    let direct = pool(&url).await;
    let table = unique_table("pooler_switch");
    let one = PgPoolOptions::new()
        .max_connections(1)
        .connect(&url)
        .await
        .unwrap();
    let store = PostgresStore::builder(one.clone())
        .table(&table)
        .build()
        .unwrap();
    store.migrate().await.unwrap();
    let forget = || async {
        sqlx::raw_sql("DEALLOCATE ALL")
            .execute(&one)
            .await
            .expect("deallocate");
    };

    let warm = OwnerToken::generate();
    store.claim("warm", warm, MINUTE).await.unwrap();
    store.complete("warm", warm, MINUTE).await.unwrap();
    let owner = OwnerToken::generate();
    assert_eq!(
        store.claim("a", owner, MINUTE).await.unwrap(),
        ClaimOutcome::Claimed
    );
    assert_eq!(
        store.pooler(),
        Pooler::Direct,
        "prepared statements, cached"
    );
    forget().await;
    assert_eq!(
        store.complete("a", owner, MINUTE).await.unwrap(),
        SettleOutcome::Settled,
        "run again as a simple query"
    );
    assert_eq!(store.pooler(), Pooler::Transaction);
    assert_eq!(
        store
            .claim("a", OwnerToken::generate(), MINUTE)
            .await
            .unwrap(),
        ClaimOutcome::Completed
    );

    // In a transaction: a fresh store (Direct) on a fresh connection (sqlx's cache is the
    // connection's), its completion prepared once, then forgotten by the server.
    let one = PgPoolOptions::new()
        .max_connections(1)
        .connect(&url)
        .await
        .unwrap();
    let forget = || async {
        sqlx::raw_sql("DEALLOCATE ALL")
            .execute(&one)
            .await
            .expect("deallocate");
    };
    let store = PostgresStore::builder(one.clone())
        .table(&table)
        .build()
        .unwrap();
    let receiver = receiver(&store);
    let mut settlements = Vec::new();
    for _ in 0..2 {
        let event = TestEvent::course_started();
        settlements.push(delivery(deliver(&receiver, &event).await).into_parts().1);
    }
    let claims: Vec<_> = settlements.iter().map(|s| s.claim_ref().unwrap()).collect();
    let mut tx = one.begin().await.unwrap();
    assert_eq!(
        store
            .complete_in_transaction(&mut tx, &claims[0])
            .await
            .unwrap(),
        SettleOutcome::Settled
    );
    tx.rollback().await.unwrap();
    assert_eq!(store.pooler(), Pooler::Direct);
    forget().await;
    let mut tx = one.begin().await.unwrap();
    let err = store
        .complete_in_transaction(&mut tx, &claims[1])
        .await
        .expect_err("the statement is gone: the transaction is aborted");
    let code = std::error::Error::source(&err)
        .and_then(|source| source.downcast_ref::<sqlx::Error>())
        .and_then(|source| source.as_database_error()?.code())
        .map(|code| code.into_owned());
    assert_eq!(code.as_deref(), Some("26000"), "{err:?}");
    drop(tx);
    assert_eq!(store.pooler(), Pooler::Transaction, "switched");
    let mut tx = one.begin().await.unwrap();
    assert_eq!(
        store
            .complete_in_transaction(&mut tx, &claims[1])
            .await
            .unwrap(),
        SettleOutcome::Settled
    );
    tx.commit().await.unwrap();
    let mut settlements = settlements.into_iter();
    let rolled_back = settlements.next().unwrap();
    assert_eq!(rolled_back.settle(500).await, Settled::Released);
    assert_eq!(
        settlements.next().unwrap().settle(200).await,
        Settled::Completed
    );
    drop_table(&direct, &table).await;
}

/// The parameters written into a simple query mean the id whatever the session's settings.
/// Under a client encoding in which a multibyte character may end in an ASCII byte (SJIS,
/// which PostgreSQL accepts from clients) and `backslash_quote = on`, both settings of the
/// session that anyone's `after_connect` may `SET`, an escape string literal `E'…'` (`'`
/// and `\` doubled) of an id whose character swallows the first byte of a doubled `\` let the
/// rest of the id out as SQL (here a syntax error; a crafted id, an injection). The id
/// must be stored as itself.
#[tokio::test]
#[ignore = "needs KNOLYX_TEST_DATABASE_URL (README: Running the store tests)"]
async fn literals_mean_the_id_whatever_the_sessions_encoding() {
    let Some(url) = database_url() else { return };
    let direct = pool(&url).await;
    let table = unique_table("pooler_encoding");
    migrated(&direct, &table).await;
    let sjis = PgPoolOptions::new()
        .max_connections(1)
        .after_connect(|conn, _| {
            Box::pin(async move {
                use sqlx::Executor;
                conn.execute("SET client_encoding = 'SJIS'; SET backslash_quote = on")
                    .await
                    .map(|_| ())
            })
        })
        .connect(&url)
        .await
        .unwrap();
    let store = PostgresStore::builder(sjis)
        .table(&table)
        .pooler(Pooler::Transaction)
        .build()
        .unwrap();
    // 'Á' is C3 81 in UTF-8; 81 starts a two-byte SJIS character that takes the next byte.
    let id = "Á\\'||(SELECT 'injected')||'";
    let owner = OwnerToken::generate();
    let claimed = store.claim(id, owner, MINUTE).await;
    let ids: Vec<String> = sqlx::query_scalar(&format!("SELECT id FROM {table}"))
        .fetch_all(&direct)
        .await
        .unwrap();
    assert_eq!(claimed.expect("claim"), ClaimOutcome::Claimed);
    assert_eq!(ids, [id], "stored as itself");
    drop_table(&direct, &table).await;
}
