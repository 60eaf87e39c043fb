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
/// A migrated store on a table of its own and a side table for the handler's effects,
/// named after `test`: the store and both table names.
async fn store_and_side_table(pool: &PgPool, test: &str) -> (PostgresStore, String, String) {
    let (deliveries, side) = (unique_table(test), unique_table(&format!("{test}_effects")));
    let store = PostgresStore::builder(pool.clone())
        .table(&deliveries)
        .build()
        .unwrap();
    store.migrate().await.unwrap();
    create_side_table(pool, &side).await;
    (store, deliveries, side)
}

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
    let (store, deliveries, side) = store_and_side_table(&pool, "tx").await;
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

/// The README's "Testing your handler": an axum handler that completes the claim in its own
/// transaction, tested as a user would, called directly with `testing::claim`, then through
/// the layer with `TestEvent::request`.
#[tokio::test]
#[ignore = "needs KNOLYX_TEST_DATABASE_URL (README: Running the store tests)"]
async fn a_handler_completing_in_its_own_transaction_can_be_unit_tested() {
    use std::time::Duration;

    use axum::body::Body;
    use axum::extract::State;
    use axum::http::StatusCode;
    use axum::routing::any;
    use axum::{Extension, Router};
    use knolyx_webhook_core::ClaimRef;
    use knolyx_webhook_core::store::{ClaimOutcome, IdempotencyStore, OwnerToken};
    use knolyx_webhook_core::testing;
    use knolyx_webhook_tower::{KnolyxEvent, KnolyxWebhookLayer};
    use tower::ServiceExt;

    #[derive(Clone)]
    struct App {
        store: PostgresStore,
        side: String,
    }
    async fn on_event(
        State(app): State<App>,
        Extension(claim): Extension<ClaimRef>,
        KnolyxEvent(event): KnolyxEvent,
    ) -> StatusCode {
        let mut tx = app.store.pool().begin().await.unwrap();
        sqlx::query(&format!(
            "INSERT INTO {} (message_id) VALUES ($1)",
            app.side
        ))
        .bind(event.id())
        .execute(&mut *tx)
        .await
        .unwrap();
        match app.store.complete_in_transaction(&mut tx, &claim).await {
            Ok(SettleOutcome::Settled) => {
                tx.commit().await.unwrap();
                StatusCode::OK
            }
            _ => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    let Some(url) = database_url() else { return };
    let pool = pool(&url).await;
    let (store, deliveries, side) = store_and_side_table(&pool, "unit").await;
    let app = App {
        store: store.clone(),
        side: side.clone(),
    };

    // Called directly, with a claim made in the store.
    let event = TestEvent::course_payment_received().build();
    let claim = testing::claim(&store, event.id()).await;
    let status = on_event(
        State(app.clone()),
        Extension(claim.clone()),
        KnolyxEvent(event.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(claim.is_marked_completed());
    let again = store
        .claim(event.id(), OwnerToken::generate(), Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(again, ClaimOutcome::Completed);
    assert_eq!(effects(&pool, &side, event.id()).await, 1);
    // A claim that is not the store's own (a `claim_ref` never claimed) is fenced out.
    let stranger = testing::claim_ref(event.id(), OwnerToken::generate());
    let status = on_event(
        State(app.clone()),
        Extension(stranger),
        KnolyxEvent(event.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(effects(&pool, &side, event.id()).await, 1);

    // Through the layer, as Knolyx sends it: handled once, the retransmission a duplicate.
    let router = Router::new()
        .route("/webhooks/knolyx", any(on_event))
        .route_layer(KnolyxWebhookLayer::new(receiver(&store)))
        .with_state(app);
    let event = TestEvent::course_completed();
    for duplicate in [false, true] {
        let response = router
            .clone()
            .oneshot(event.request::<Body>("/webhooks/knolyx", TOKEN))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response
                .headers()
                .contains_key("x-knolyx-webhook-duplicate"),
            duplicate
        );
    }
    assert_eq!(effects(&pool, &side, event.message_id()).await, 1);

    drop_table(&pool, &deliveries).await;
    drop_table(&pool, &side).await;
}
