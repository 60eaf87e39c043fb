//! Completing the claim inside the handler's own transaction: the side effect and the
//! completion commit together, or neither does.

use http::{HeaderMap, HeaderValue, Method};
use knolyx_webhook_core::store::SettleOutcome;
use knolyx_webhook_core::testing::TestEvent;
use knolyx_webhook_core::{Accepted, Answer, Delivery, Settled, WebhookReceiver};
use knolyx_webhook_postgres::PostgresStore;
use sqlx::PgPool;

use crate::support::{database_url, drop_table, pool, unique_table};

pub(crate) const TOKEN: &str = "postgres-transaction-token";

pub(crate) fn headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("x-webhook-security-token", HeaderValue::from_static(TOKEN));
    headers
}

pub(crate) async fn deliver(receiver: &WebhookReceiver, event: &TestEvent) -> Accepted {
    receiver
        .receive(&Method::PUT, &headers(), event.to_body())
        .await
        .expect("accepted")
}

pub(crate) fn delivery(accepted: Accepted) -> Delivery {
    match accepted {
        Accepted::Deliver(d) => d,
        other => panic!("expected the handler to run, got {other:?}"),
    }
}

/// A receiver on `store` that accepts [`TOKEN`].
pub(crate) fn receiver(store: &PostgresStore) -> WebhookReceiver {
    WebhookReceiver::builder()
        .token(TOKEN)
        .store(store.clone())
        .build()
        .unwrap()
}

/// A table `side` for the handlers' side effects, one row per message id.
pub(crate) async fn create_side_table(pool: &PgPool, side: &str) {
    sqlx::raw_sql(&format!("CREATE TABLE {side} (message_id TEXT NOT NULL)"))
        .execute(pool)
        .await
        .unwrap();
}

pub(crate) async fn effects(pool: &PgPool, table: &str, id: &str) -> i64 {
    sqlx::query_scalar(&format!(
        "SELECT count(*) FROM {table} WHERE message_id = $1"
    ))
    .bind(id)
    .fetch_one(pool)
    .await
    .unwrap()
}

#[tokio::test]
#[ignore = "needs KNOLYX_TEST_DATABASE_URL (README: Running the store tests)"]
async fn side_effect_and_completion_commit_together_or_not_at_all() {
    let Some(url) = database_url() else { return };
    let pool = pool(&url).await;
    let (deliveries, side) = (unique_table("tx"), unique_table("tx_effects"));
    let store = PostgresStore::builder(pool.clone())
        .table(&deliveries)
        .build()
        .unwrap();
    store.migrate().await.unwrap();
    create_side_table(&pool, &side).await;
    let receiver = receiver(&store);

    // Committed: the side effect and the completion are there; the retransmission is a
    // duplicate, and the settlement does not complete a second time.
    let event = TestEvent::course_payment_received();
    let (_, settlement) = delivery(deliver(&receiver, &event).await).into_parts();
    let claim = settlement.claim_ref().expect("a claim");
    assert_eq!(claim.id(), event.message_id());
    let mut tx = pool.begin().await.unwrap();
    sqlx::query(&format!("INSERT INTO {side} (message_id) VALUES ($1)"))
        .bind(claim.id())
        .execute(&mut *tx)
        .await
        .unwrap();
    let outcome = store
        .complete_in_transaction(&mut tx, &claim)
        .await
        .unwrap();
    assert_eq!(outcome, SettleOutcome::Settled);
    assert!(claim.is_marked_completed());
    tx.commit().await.unwrap();
    assert_eq!(settlement.settle(200).await, Settled::Completed);
    assert!(matches!(
        deliver(&receiver, &event).await,
        Accepted::Answered(Answer::Duplicate)
    ));
    assert_eq!(effects(&pool, &side, event.message_id()).await, 1);

    // Rolled back (a crash before the commit looks the same to the database): neither the
    // side effect nor the completion; the handler answers an error, the claim is released,
    // and the retry runs the handler.
    let event = TestEvent::course_completed();
    let (_, settlement) = delivery(deliver(&receiver, &event).await).into_parts();
    let claim = settlement.claim_ref().unwrap();
    let mut tx = pool.begin().await.unwrap();
    sqlx::query(&format!("INSERT INTO {side} (message_id) VALUES ($1)"))
        .bind(claim.id())
        .execute(&mut *tx)
        .await
        .unwrap();
    assert_eq!(
        store
            .complete_in_transaction(&mut tx, &claim)
            .await
            .unwrap(),
        SettleOutcome::Settled
    );
    tx.rollback().await.unwrap();
    assert_eq!(settlement.settle(500).await, Settled::Released);
    assert_eq!(effects(&pool, &side, event.message_id()).await, 0);
    let (_, retry) = delivery(deliver(&receiver, &event).await).into_parts();
    assert_eq!(retry.settle(200).await, Settled::Completed);

    // The first attempt's claim, now stale (the retry completed the id), is fenced inside
    // a transaction too.
    let mut tx = pool.begin().await.unwrap();
    assert_eq!(
        store
            .complete_in_transaction(&mut tx, &claim)
            .await
            .unwrap(),
        SettleOutcome::NotOwner
    );
    drop(tx);

    drop_table(&pool, &deliveries).await;
    drop_table(&pool, &side).await;
}
