//! A Redis connection that stalls (a partition: packets held, nothing refused or closed)
//! and recovers, for real: a private `redis-server` behind a [`TcpProxy`]. A claim whose
//! outcome is unknown (the operation timeout fired, or the client hung up, while the
//! server may already have taken it) is released behind it on the same connection, so the
//! retransmission after the heal runs the handler at once instead of getting 503 for the
//! whole lease.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use knolyx_webhook_core::WebhookReceiver;
use knolyx_webhook_core::store::{ClaimOutcome, IdempotencyStore, SettleOutcome, StoreErrorKind};
use knolyx_webhook_core::testing::{
    CallOutcome, FaultyStore, StoreCall, StoreOp, TcpProxy, TestEvent,
};
use knolyx_webhook_examples::RunningReceiver;
use knolyx_webhook_redis::RedisStore;
use knolyx_webhook_redis::testing::PrivateRedis;

use crate::support::serve_counting;

const TOKEN: &str = "examples-stall-token";
/// Generous: only the failure path waits for it.
const WAIT: Duration = Duration::from_secs(20);

/// A receiver of `framework` over Redis through a proxy, the store's calls watched.
struct Setup {
    _redis: PrivateRedis,
    proxy: TcpProxy,
    store: FaultyStore<RedisStore>,
    running: RunningReceiver,
    runs: Arc<AtomicUsize>,
}

/// A receiver of `framework` on `store` (watched), with a counting handler. The default
/// lease (60 s): without the release, a retransmission would get 503 for a minute.
async fn serve<S: IdempotencyStore>(
    framework: &str,
    store: &FaultyStore<S>,
) -> (RunningReceiver, Arc<AtomicUsize>) {
    let receiver = WebhookReceiver::builder()
        .token(TOKEN)
        .store(store.clone())
        .build()
        .unwrap();
    serve_counting(framework, receiver).await
}

async fn setup(framework: &str, operation_timeout: Duration) -> Setup {
    let redis = PrivateRedis::start().await;
    let upstream: SocketAddr = ([127, 0, 0, 1], redis.port).into();
    let proxy = TcpProxy::start(upstream).await.unwrap();
    let store = RedisStore::builder()
        .operation_timeout(operation_timeout)
        .connect(&format!("redis://{}/", proxy.addr()))
        .await
        .unwrap();
    let store = FaultyStore::new(store);
    let (running, runs) = serve(framework, &store).await;
    Setup {
        _redis: redis,
        proxy,
        store,
        running,
        runs,
    }
}

async fn put(
    url: &str,
    event: &TestEvent,
    timeout: Option<Duration>,
) -> reqwest::Result<reqwest::Response> {
    let mut request = reqwest::Client::new()
        .put(url)
        .header("x-webhook-security-token", TOKEN)
        .body(event.to_body());
    if let Some(timeout) = timeout {
        request = request.timeout(timeout);
    }
    request.send().await
}

async fn wait_for<S: IdempotencyStore>(
    store: &FaultyStore<S>,
    what: &str,
    matches: impl FnMut(&StoreCall) -> bool,
) -> StoreCall {
    tokio::time::timeout(WAIT, store.wait_for(matches))
        .await
        .unwrap_or_else(|_| panic!("no store call {what} within {WAIT:?}: {:#?}", store.calls()))
}

/// The delivery after the heal: handled now (200, not a duplicate), the handler's second run.
async fn retransmission_is_handled(setup: &Setup, event: &TestEvent) {
    let response = put(&setup.running.url(), event, None).await.unwrap();
    assert_eq!(response.status(), 200, "the retransmission after the heal");
    assert!(
        response
            .headers()
            .get("x-knolyx-webhook-duplicate")
            .is_none()
    );
    assert_eq!(setup.runs.load(Ordering::SeqCst), 2);
}

async fn a_claim_timed_out_in_a_stall_is_released_when_it_heals(framework: &str) {
    if !knolyx_webhook_redis::testing::redis_server_installed() {
        return;
    }
    let setup = setup(framework, Duration::from_millis(300)).await;
    let url = setup.running.url();
    // The connection is up and the scripts are loaded.
    assert_eq!(
        put(&url, &TestEvent::course_started(), None)
            .await
            .unwrap()
            .status(),
        200
    );

    setup.proxy.stall();
    let event = TestEvent::course_payment_received();
    let id = event.clone().build().id().to_owned();
    let response = put(&url, &event, None).await.unwrap();
    assert_eq!(
        response.status(),
        503,
        "a stalled store answers within its timeout"
    );
    assert!(response.headers().get("retry-after").is_some());
    let claim = wait_for(&setup.store, "claim timed out", |c| {
        c.op == StoreOp::Claim
            && c.id == id
            && c.outcome == CallOutcome::Error(StoreErrorKind::Timeout)
    })
    .await;
    // The claim's fate is unknown: a fenced release, by the same owner, follows it.
    wait_for(&setup.store, "release of the ambiguous claim", |c| {
        c.op == StoreOp::Release && c.id == id && c.owner == claim.owner
    })
    .await;

    setup.proxy.heal();
    release_applied(&setup.store, &claim).await;
    retransmission_is_handled(&setup, &event).await;
    setup.running.stop().await;
}

/// Waits for the release of `claim` to be answered: applied behind the claim on the same
/// connection, the server took the claim, then gave it up.
async fn release_applied<S: IdempotencyStore>(store: &FaultyStore<S>, claim: &StoreCall) {
    wait_for(store, "the release applied", |c| {
        c.op == StoreOp::Release
            && c.owner == claim.owner
            && c.outcome == CallOutcome::Settle(SettleOutcome::Settled)
    })
    .await;
}

async fn a_claim_cancelled_by_a_hang_up_in_a_stall_is_released_when_it_heals(framework: &str) {
    if !knolyx_webhook_redis::testing::redis_server_installed() {
        return;
    }
    // An operation timeout longer than the client's patience: the client hangs up first.
    let setup = setup(framework, Duration::from_secs(30)).await;
    let url = setup.running.url();
    assert_eq!(
        put(&url, &TestEvent::course_started(), None)
            .await
            .unwrap()
            .status(),
        200
    );

    setup.proxy.stall();
    let event = TestEvent::course_completed();
    let id = event.clone().build().id().to_owned();
    let hung_up = put(&url, &event, Some(Duration::from_millis(500))).await;
    assert!(hung_up.is_err(), "the client gave up: {hung_up:?}");
    let claim = wait_for(&setup.store, "claim cancelled by the hang-up", |c| {
        c.op == StoreOp::Claim && c.id == id && c.outcome == CallOutcome::Cancelled
    })
    .await;
    wait_for(&setup.store, "release of the cancelled claim", |c| {
        c.op == StoreOp::Release && c.id == id && c.owner == claim.owner
    })
    .await;

    setup.proxy.heal();
    release_applied(&setup.store, &claim).await;
    retransmission_is_handled(&setup, &event).await;
    setup.running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server and redis-cli (README: Running the store tests)"]
async fn axum_a_claim_timed_out_in_a_stall_is_released_when_it_heals() {
    a_claim_timed_out_in_a_stall_is_released_when_it_heals("axum").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server and redis-cli (README: Running the store tests)"]
async fn actix_a_claim_timed_out_in_a_stall_is_released_when_it_heals() {
    a_claim_timed_out_in_a_stall_is_released_when_it_heals("actix-web").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server and redis-cli (README: Running the store tests)"]
async fn axum_a_claim_cancelled_by_a_hang_up_in_a_stall_is_released_when_it_heals() {
    a_claim_cancelled_by_a_hang_up_in_a_stall_is_released_when_it_heals("axum").await;
}

/// actix-web does not cancel a handler whose client hung up once the body is read: the
/// claim goes on when the stall heals, the handler runs once, and the retransmission is a
/// duplicate. Nothing stays claimed either way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server and redis-cli (README: Running the store tests)"]
async fn actix_a_claim_whose_client_hung_up_in_a_stall_goes_on_when_it_heals() {
    if !knolyx_webhook_redis::testing::redis_server_installed() {
        return;
    }
    let setup = setup("actix-web", Duration::from_secs(30)).await;
    let url = setup.running.url();
    assert_eq!(
        put(&url, &TestEvent::course_started(), None)
            .await
            .unwrap()
            .status(),
        200
    );

    setup.proxy.stall();
    let event = TestEvent::course_completed();
    let id = event.clone().build().id().to_owned();
    let hung_up = put(&url, &event, Some(Duration::from_millis(500))).await;
    assert!(hung_up.is_err(), "the client gave up: {hung_up:?}");
    setup.proxy.heal();
    let claim = wait_for(&setup.store, "the claim answered", |c| {
        c.op == StoreOp::Claim && c.id == id && c.outcome != CallOutcome::Pending
    })
    .await;
    assert_eq!(claim.outcome, CallOutcome::Claim(ClaimOutcome::Claimed));
    wait_for(&setup.store, "the completion", |c| {
        c.op == StoreOp::Complete
            && c.owner == claim.owner
            && c.outcome == CallOutcome::Settle(SettleOutcome::Settled)
    })
    .await;
    let response = put(&url, &event, None).await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response
            .headers()
            .get("x-knolyx-webhook-duplicate")
            .is_some()
    );
    assert_eq!(setup.runs.load(Ordering::SeqCst), 2);
    setup.running.stop().await;
}

/// The same partition in front of PostgreSQL: the claim times out within the operation
/// timeout (503), and once the connection heals the retransmission is handled at once. A
/// claim sent into the stall can reach the server only when it heals, on a connection the
/// store has given up on: the release retried behind it frees the id.
async fn postgres_claim_timed_out_in_a_stall(framework: &str) {
    let Some(url) = knolyx_webhook_core::testing::service_url("KNOLYX_TEST_DATABASE_URL") else {
        return;
    };
    use knolyx_webhook_postgres::{PostgresStore, sqlx};
    let (proxy, pool) = crate::support::postgres_behind_proxy(&url).await;
    let table = format!(
        "knolyx_test_stall_{}",
        knolyx_webhook_core::store::OwnerToken::generate()
    );
    let store = PostgresStore::builder(pool.clone())
        .table(&table)
        .operation_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    store.migrate().await.unwrap();
    let store = FaultyStore::new(store);
    let (running, runs) = serve(framework, &store).await;
    let url = running.url();
    assert_eq!(
        put(&url, &TestEvent::course_started(), None)
            .await
            .unwrap()
            .status(),
        200
    );

    proxy.stall();
    let event = TestEvent::course_payment_received();
    let id = event.clone().build().id().to_owned();
    let response = put(&url, &event, None).await.unwrap();
    assert_eq!(
        response.status(),
        503,
        "a stalled store answers within its timeout"
    );
    let claim = wait_for(&store, "claim timed out", |c| {
        c.op == StoreOp::Claim
            && c.id == id
            && c.outcome == CallOutcome::Error(StoreErrorKind::Timeout)
    })
    .await;
    proxy.heal();
    // Whether the claim sent into the stall ever reaches the server depends on how the
    // client's abandoned connection closes: if it does, the release retried behind it frees
    // the id within a second. So retransmit as a sender would, and require the event handled
    // within a few seconds, far inside the 60 s lease it would otherwise wait out.
    let started = std::time::Instant::now();
    let response = loop {
        let response = put(&url, &event, None).await.unwrap();
        if response.status() != 503 || started.elapsed() > Duration::from_secs(5) {
            break response;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        response.status(),
        200,
        "the retransmission after the heal: {:#?}",
        store.calls()
    );
    assert!(
        response
            .headers()
            .get("x-knolyx-webhook-duplicate")
            .is_none()
    );
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    assert!(
        store
            .calls()
            .iter()
            .any(|c| c.op == StoreOp::Release && c.owner == claim.owner),
        "a fenced release followed the claim that timed out"
    );
    running.stop().await;
    drop(proxy);
    let _ = sqlx::query(&format!("DROP TABLE IF EXISTS {table}"))
        .execute(&pool)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs KNOLYX_TEST_DATABASE_URL (README: Running the store tests)"]
async fn axum_postgres_claim_timed_out_in_a_stall_is_released_when_it_heals() {
    postgres_claim_timed_out_in_a_stall("axum").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs KNOLYX_TEST_DATABASE_URL (README: Running the store tests)"]
async fn actix_postgres_claim_timed_out_in_a_stall_is_released_when_it_heals() {
    postgres_claim_timed_out_in_a_stall("actix-web").await;
}
