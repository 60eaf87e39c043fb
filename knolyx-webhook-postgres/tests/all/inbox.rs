//! The PostgreSQL inbox against the real database: the conformance suite, two workers on
//! one table, and `NOTIFY` waking a worker.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use knolyx_webhook_core::WebhookEvent;
use knolyx_webhook_core::inbox::{
    Accepted, Entry, EntryState, Inbox, ListFilter, Worker, WorkerHandle,
};
use knolyx_webhook_core::store::{OwnerToken, SettleOutcome, StoreResult, async_trait};
use knolyx_webhook_core::testing::{TestEvent, inbox_conformance};
use knolyx_webhook_postgres::PostgresInbox;
use sqlx::PgPool;
use tokio::sync::{Notify, mpsc};

use crate::support::{database_url, drop_table, pool, unique_table};

/// A bound for what must happen soon (far above what it takes; never a synchronisation).
const SOON: Duration = Duration::from_secs(20);

async fn inbox(pool: &PgPool, table: &str) -> PostgresInbox {
    let inbox = PostgresInbox::builder(pool.clone())
        .table(table)
        .operation_timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    inbox.migrate().await.expect("migrate the inbox");
    inbox
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs KNOLYX_TEST_DATABASE_URL (README: Running the store tests)"]
async fn postgres_inbox_passes_the_conformance_suite() {
    let Some(url) = database_url() else { return };
    let pool = pool(&url).await;
    let table = unique_table("inbox_conformance");
    let inbox = inbox(&pool, &table).await;
    inbox.migrate().await.expect("migrate is idempotent");
    inbox_conformance::run(Arc::new(inbox)).await;
    drop_table(&pool, &table).await;
}

#[tokio::test]
#[ignore = "needs KNOLYX_TEST_DATABASE_URL (README: Running the store tests)"]
async fn the_body_is_kept_byte_for_byte_and_errors_may_hold_anything() {
    let Some(url) = database_url() else { return };
    let pool = pool(&url).await;
    let table = unique_table("inbox_bytes");
    let inbox = inbox(&pool, &table).await;
    let body = "{\"id\":\"m-é😀\",  \"type\":\"COURSE_STARTED\",\"data\":{\"user\":{\"id\":1,\
                \"name\":\"O'Brien \\\\ $1\",\"email\":\"a@b.c\"},\"course\":{\"id\":2,\"name\":\"x\"}}}";
    let event = WebhookEvent::from_slice(body.as_bytes()).unwrap();
    assert_eq!(inbox.accept(&event).await.unwrap(), Accepted::Stored);
    let worker = OwnerToken::generate();
    let taken = inbox.take(worker, SOON, 10).await.unwrap();
    assert_eq!(taken[0].body().as_ref(), body.as_bytes());
    assert_eq!(taken[0].event().unwrap(), event);
    let error = "it's \0 a \\' $1 error é";
    assert_eq!(
        inbox.fail(event.id(), worker, error, None).await.unwrap(),
        SettleOutcome::Settled
    );
    let dead = inbox.show(event.id()).await.unwrap().unwrap();
    assert_eq!(dead.state(), EntryState::Dead);
    assert_eq!(dead.last_error(), Some("it's \u{FFFD} a \\' $1 error é"));
    drop_table(&pool, &table).await;
}

/// A handler that counts the runs of each id and reports each run.
fn counting(
    inbox: Arc<dyn Inbox>,
    runs: Arc<Mutex<HashMap<String, usize>>>,
    tx: mpsc::UnboundedSender<String>,
) -> knolyx_webhook_core::inbox::WorkerBuilder {
    Worker::builder(inbox, move |event: WebhookEvent| {
        *runs
            .lock()
            .unwrap()
            .entry(event.id().to_owned())
            .or_default() += 1;
        let _ = tx.send(event.id().to_owned());
        async { Ok::<(), String>(()) }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs KNOLYX_TEST_DATABASE_URL (README: Running the store tests)"]
async fn two_workers_on_one_table_handle_each_id_exactly_once() {
    let Some(url) = database_url() else { return };
    let pool = pool(&url).await;
    let table = unique_table("inbox_two_workers");
    let inbox = inbox(&pool, &table).await;
    let runs = Arc::new(Mutex::new(HashMap::new()));
    let (tx, mut rx) = mpsc::unbounded_channel();
    let workers: Vec<WorkerHandle> = (0..2)
        .map(|_| {
            // Each worker on its own inbox value, as two replicas would be.
            let own = Arc::new(inbox.clone());
            counting(own, runs.clone(), tx.clone())
                .batch(8)
                .concurrency(8)
                .poll_interval(Duration::from_millis(20))
                .build()
                .spawn()
        })
        .collect();
    const IDS: usize = 400;
    let events: Vec<_> = (0..IDS)
        .map(|_| TestEvent::course_started().build())
        .collect();
    let accepting: Vec<_> = [0, 1]
        .into_iter()
        .map(|half| {
            let (inbox, events) = (inbox.clone(), events.clone());
            tokio::spawn(async move {
                for event in events.iter().skip(half).step_by(2) {
                    assert_eq!(inbox.accept(event).await.unwrap(), Accepted::Stored);
                    // A retransmission, at once: never run twice.
                    assert_eq!(inbox.accept(event).await.unwrap(), Accepted::Duplicate);
                }
            })
        })
        .collect();
    for task in accepting {
        task.await.unwrap();
    }
    for _ in 0..IDS {
        tokio::time::timeout(SOON, rx.recv())
            .await
            .expect("every id is handled in time")
            .unwrap();
    }
    for worker in workers {
        assert_eq!(worker.shutdown(SOON).await.released, 0);
    }
    let runs = runs.lock().unwrap().clone();
    assert_eq!(runs.len(), IDS);
    assert!(runs.values().all(|n| *n == 1), "an id ran twice");
    let done = inbox
        .list(ListFilter::all().state(EntryState::Done).limit(10_000))
        .await
        .unwrap();
    assert_eq!(done.len(), IDS, "every entry is done");
    drop_table(&pool, &table).await;
}

/// The real inbox, reporting each take that found nothing due (the worker is then idle).
#[derive(Debug)]
struct Idle(PostgresInbox, mpsc::UnboundedSender<()>);

#[async_trait]
impl Inbox for Idle {
    async fn accept(&self, event: &WebhookEvent) -> StoreResult<Accepted> {
        self.0.accept(event).await
    }
    async fn take(&self, w: OwnerToken, lease: Duration, n: usize) -> StoreResult<Vec<Entry>> {
        let taken = self.0.take(w, lease, n).await?;
        if taken.is_empty() {
            let _ = self.1.send(());
        }
        Ok(taken)
    }
    async fn complete(&self, id: &str, owner: OwnerToken) -> StoreResult<SettleOutcome> {
        self.0.complete(id, owner).await
    }
    async fn fail(
        &self,
        id: &str,
        owner: OwnerToken,
        error: &str,
        retry_in: Option<Duration>,
    ) -> StoreResult<SettleOutcome> {
        self.0.fail(id, owner, error, retry_in).await
    }
    async fn release(&self, id: &str, owner: OwnerToken) -> StoreResult<SettleOutcome> {
        self.0.release(id, owner).await
    }
    async fn list(&self, filter: ListFilter) -> StoreResult<Vec<Entry>> {
        self.0.list(filter).await
    }
    async fn show(&self, id: &str) -> StoreResult<Option<Entry>> {
        self.0.show(id).await
    }
    async fn retry(&self, id: &str) -> StoreResult<bool> {
        self.0.retry(id).await
    }
    async fn retry_all_dead(&self) -> StoreResult<u64> {
        self.0.retry_all_dead().await
    }
    async fn purge_done(&self, older_than: Duration) -> StoreResult<u64> {
        self.0.purge_done(older_than).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs KNOLYX_TEST_DATABASE_URL (README: Running the store tests)"]
async fn notify_wakes_an_idle_worker_long_before_its_poll() {
    let Some(url) = database_url() else { return };
    let pool = pool(&url).await;
    let table = unique_table("inbox_notify");
    let inbox = inbox(&pool, &table).await;
    let waker = Arc::new(Notify::new());
    let listening = inbox.wake_on_notify(waker.clone()).await.expect("listen");
    let (idle_tx, mut idle) = mpsc::unbounded_channel();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let runs = Arc::new(Mutex::new(HashMap::new()));
    let worker = counting(Arc::new(Idle(inbox.clone(), idle_tx)), runs, tx)
        .wake_on(waker)
        .poll_interval(Duration::from_secs(60))
        .build()
        .spawn();
    // The worker found nothing and now waits: for a notification, or 60 s.
    tokio::time::timeout(SOON, idle.recv())
        .await
        .unwrap()
        .unwrap();
    let event = TestEvent::course_completed().build();
    // From another connection of the pool, as another replica's accept would be.
    assert_eq!(inbox.accept(&event).await.unwrap(), Accepted::Stored);
    let handled = tokio::time::timeout(SOON, rx.recv())
        .await
        .expect("NOTIFY woke the worker before its 60 s poll");
    assert_eq!(handled.as_deref(), Some(event.id()));
    worker.shutdown(SOON).await;
    listening.abort();
    drop_table(&pool, &table).await;
}

#[tokio::test]
#[ignore = "needs KNOLYX_TEST_DATABASE_URL (README: Running the store tests)"]
async fn listen_is_refused_behind_a_transaction_pooler() {
    let Some(url) = database_url() else { return };
    let pool = pool(&url).await;
    let inbox = PostgresInbox::builder(pool)
        .pooler(knolyx_webhook_postgres::Pooler::Transaction)
        .build()
        .unwrap();
    let refused = inbox.listen().await.unwrap_err();
    assert_eq!(
        refused.kind(),
        knolyx_webhook_core::store::StoreErrorKind::Misconfigured
    );
}

/// Through a private PgBouncer in transaction mode, in both [`Pooler`] modes: `Transaction`
/// as configured, and `Direct` switching at the pooler's first sign.
///
/// [`Pooler`]: knolyx_webhook_postgres::Pooler
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs KNOLYX_TEST_DATABASE_URL and pgbouncer (README: Running the store tests)"]
async fn the_conformance_suite_passes_through_a_transaction_pooler() {
    use knolyx_webhook_postgres::Pooler;
    use knolyx_webhook_postgres::testing::PrivatePgBouncer;

    let Some(url) = database_url() else { return };
    let Some(bouncer) = PrivatePgBouncer::start(&url).await else {
        return;
    };
    let direct = pool(&url).await;
    for pooler in [Pooler::Transaction, Pooler::Direct] {
        let through = sqlx::postgres::PgPoolOptions::new()
            .max_connections(8)
            .min_connections(8)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(bouncer.connect_options())
            .await
            .expect("connect through pgbouncer");
        let table = unique_table("inbox_pooler");
        let inbox = PostgresInbox::builder(through)
            .table(&table)
            .operation_timeout(Duration::from_secs(10))
            .pooler(pooler)
            .build()
            .unwrap();
        inbox.migrate().await.expect("migrate through the pooler");
        inbox_conformance::run(Arc::new(inbox.clone())).await;
        assert_eq!(inbox.pooler(), Pooler::Transaction, "{pooler:?}");
        drop_table(&direct, &table).await;
    }
}

/// Exactly-once effects: the handler's side effect and the entry's completion in one
/// transaction. A worker whose lease was lost (another took the entry over) cannot complete
/// it, so its transaction rolls back, and the effect exists once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs KNOLYX_TEST_DATABASE_URL (README: Running the store tests)"]
async fn completion_in_the_handlers_transaction_is_fenced_by_the_lease() {
    use knolyx_webhook_core::inbox::Attempt;
    let Some(url) = database_url() else { return };
    let pool = pool(&url).await;
    let table = unique_table("inbox_in_tx");
    let effects = unique_table("inbox_in_tx_effects");
    let inbox = inbox(&pool, &table).await;
    sqlx::raw_sql(&format!(
        "CREATE TABLE {effects} (message_id TEXT NOT NULL)"
    ))
    .execute(&pool)
    .await
    .unwrap();
    let sql = format!("INSERT INTO {effects} (message_id) VALUES ($1)");
    let event = TestEvent::course_payment_received().build();
    inbox.accept(&event).await.unwrap();

    // Worker A takes it under a short lease and starts its transaction.
    let a = OwnerToken::generate();
    let taken = inbox.take(a, Duration::from_millis(300), 1).await.unwrap();
    let a_attempt = Attempt::new(event.id(), a, taken[0].attempts());
    let mut a_tx = pool.begin().await.unwrap();
    let id = event.id();
    sqlx::query(&sql)
        .bind(id)
        .execute(&mut *a_tx)
        .await
        .unwrap();

    // A stalls past its lease: B takes the entry over (by the database's clock).
    let b = OwnerToken::generate();
    let taken_over = tokio::time::timeout(SOON, async {
        loop {
            let taken = inbox.take(b, Duration::from_secs(60), 1).await.unwrap();
            if let Some(entry) = taken.into_iter().next() {
                return entry;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the expired lease is taken over");
    let b_attempt = Attempt::new(event.id(), b, taken_over.attempts());
    let mut b_tx = pool.begin().await.unwrap();
    sqlx::query(&sql)
        .bind(id)
        .execute(&mut *b_tx)
        .await
        .unwrap();
    assert_eq!(
        inbox
            .complete_in_transaction(&mut b_tx, &b_attempt)
            .await
            .unwrap(),
        SettleOutcome::Settled
    );
    assert!(b_attempt.is_marked_completed());
    b_tx.commit().await.unwrap();

    // A wakes up: fenced out, it rolls back.
    assert_eq!(
        inbox
            .complete_in_transaction(&mut a_tx, &a_attempt)
            .await
            .unwrap(),
        SettleOutcome::NotOwner
    );
    assert!(!a_attempt.is_marked_completed());
    a_tx.rollback().await.unwrap();

    let (count,): (i64,) = sqlx::query_as(&format!("SELECT count(*) FROM {effects}"))
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(count, 1, "the effect exists once");
    let entry = inbox.show(event.id()).await.unwrap().unwrap();
    assert_eq!((entry.state(), entry.attempts()), (EntryState::Done, 2));
    drop_table(&pool, &effects).await;
    drop_table(&pool, &table).await;
}

/// A worker whose handler completes in its own transaction: every entry done, every effect
/// once, and the worker never completes an entry a second time.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs KNOLYX_TEST_DATABASE_URL (README: Running the store tests)"]
async fn a_worker_completing_in_the_handlers_transaction_runs_each_effect_once() {
    let Some(url) = database_url() else { return };
    let pool = pool(&url).await;
    let table = unique_table("inbox_worker_tx");
    let effects = unique_table("inbox_worker_tx_effects");
    let inbox = Arc::new(inbox(&pool, &table).await);
    sqlx::raw_sql(&format!(
        "CREATE TABLE {effects} (message_id TEXT NOT NULL)"
    ))
    .execute(&pool)
    .await
    .unwrap();
    let (tx, mut handled) = mpsc::unbounded_channel();
    let (completing, db) = (Arc::clone(&inbox), pool.clone());
    let insert = format!("INSERT INTO {effects} (message_id) VALUES ($1)");
    let worker = Worker::builder_with_attempt(inbox.clone(), move |event, attempt| {
        let (inbox, db, insert, tx) = (completing.clone(), db.clone(), insert.clone(), tx.clone());
        async move {
            let mut t = db.begin().await?;
            sqlx::query(&insert)
                .bind(event.id())
                .execute(&mut *t)
                .await?;
            if inbox.complete_in_transaction(&mut t, &attempt).await? == SettleOutcome::Settled {
                t.commit().await?;
            }
            let _ = tx.send(event.id().to_owned());
            Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
        }
    })
    .poll_interval(Duration::from_millis(20))
    .build()
    .spawn();
    const IDS: usize = 50;
    for _ in 0..IDS {
        inbox
            .accept(&TestEvent::course_started().build())
            .await
            .unwrap();
    }
    for _ in 0..IDS {
        tokio::time::timeout(SOON, handled.recv())
            .await
            .expect("handled in time")
            .unwrap();
    }
    worker.shutdown(SOON).await;
    let (count, distinct): (i64, i64) = sqlx::query_as(&format!(
        "SELECT count(*), count(DISTINCT message_id) FROM {effects}"
    ))
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((count, distinct), (IDS as i64, IDS as i64));
    let done = inbox
        .list(ListFilter::all().state(EntryState::Done).limit(1000))
        .await
        .unwrap();
    assert_eq!(done.len(), IDS);
    assert!(done.iter().all(|e| e.attempts() == 1));
    drop_table(&pool, &effects).await;
    drop_table(&pool, &table).await;
}
