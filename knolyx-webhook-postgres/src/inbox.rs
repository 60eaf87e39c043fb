//! [`PostgresInbox`]: the durable inbox on PostgreSQL, and its `LISTEN` wake-ups.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use knolyx_webhook_core::WebhookEvent;
use knolyx_webhook_core::inbox::{
    Accepted, Attempt, Entry, EntryState, Inbox, InboxStats, ListFilter,
};
use knolyx_webhook_core::store::{
    OwnerToken, SettleOutcome, StoreError, StoreErrorKind, StoreResult, async_trait,
    saturating_millis, ttl_millis,
};
use sqlx::postgres::{PgListener, PgRow};
use sqlx::{Executor, PgPool, Row};
use tokio::sync::Notify;

use crate::error;
use crate::sql::{self, Arg};
use crate::store::{DEFAULT_OPERATION_TIMEOUT, Pooler};
use crate::table::{InvalidTableName, TableName};

/// The default inbox table: `knolyx_webhook_inbox` (in the connection's `search_path`).
pub const DEFAULT_INBOX_TABLE: &str = "knolyx_webhook_inbox";

/// The migration, with `{table}`, `{due_index}`, `{done_index}` and `{dead_index}`
/// placeholders.
const MIGRATION: &str = include_str!("../migrations/0002_inbox.sql");

/// The longest lease or delay written (100 years), within PostgreSQL's timestamps.
const MAX_MS: u64 = 100 * 365 * 24 * 3600 * 1000;

/// When a pending or running entry is due: the expression of the due index.
const DUE: &str = "(CASE state WHEN 'pending' THEN next_run_at ELSE lease_until END)";

/// Times as milliseconds since the Unix epoch, the body as hex: the same text in both
/// protocols, whatever the session's `bytea_output`.
const COLUMNS: &str = "id, event_type, encode(body, 'hex'), state, attempts, last_error, owner,
    (extract(epoch FROM created_at) * 1000)::bigint,
    (extract(epoch FROM updated_at) * 1000)::bigint,
    (extract(epoch FROM next_run_at) * 1000)::bigint,
    (extract(epoch FROM lease_until) * 1000)::bigint,
    (extract(epoch FROM done_at) * 1000)::bigint";

/// An [`Inbox`] on PostgreSQL: one table shared by every replica on the same database,
/// every time decision by the database's clock. See the
/// [crate docs](crate#the-inbox-postgresinbox) for the schema and what works behind a
/// transaction pooler.
///
/// - [`accept`](Inbox::accept) is one statement: `INSERT … ON CONFLICT (id) DO NOTHING
///   RETURNING`. When the row is new, a `pg_notify` on the inbox's
///   [channel](Self::channel) follows its commit, sent by a background task that coalesces
///   them (at most one in flight per inbox, and one more for every accept that came while
///   it was): a `NOTIFY` inside the insert's own transaction would serialise the commits of
///   all accepting transactions (PostgreSQL holds a database-wide lock from a notifying
///   transaction's pre-commit to its end), which halved the acceptance throughput at 16
///   concurrent accepts. A notification lost to a crash between the commit and the
///   `pg_notify` costs one poll interval.
/// - [`take`](Inbox::take) is one statement: `UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP
///   LOCKED LIMIT n) RETURNING …`, so concurrent takers never wait for, nor share, a row.
/// - [`complete`](Inbox::complete), [`fail`](Inbox::fail) and [`release`](Inbox::release) are
///   one fenced `UPDATE` each (`release` and the retries notify too).
///
/// Cloning is cheap. `Debug` shows the table and the timeout, never the pool's connect
/// options (they may hold a password).
#[derive(Clone)]
pub struct PostgresInbox {
    pool: PgPool,
    table: Arc<TableName>,
    queries: Arc<Queries>,
    operation_timeout: Duration,
    simple: Arc<AtomicBool>,
    notifier: Arc<Notifier>,
}

/// The background `pg_notify` of [`PostgresInbox::accept`]: `wake` holds at most one permit,
/// so the accepts that come while a notification is in flight share the next one, which
/// starts after all of them committed.
#[derive(Debug, Default)]
struct Notifier {
    wake: Notify,
    /// The task, restarted if it ended (its runtime shut down: an actix-web worker's).
    task: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl fmt::Debug for PostgresInbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresInbox")
            .field("table", &*self.table)
            .field("operation_timeout", &self.operation_timeout)
            .field("pooler", &self.pooler())
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
struct Queries {
    channel: String,
    /// `$1` id, `$2` type, `$3` body in hex: the count stored (0 or 1).
    accept: String,
    /// `$1` channel.
    notify: String,
    /// `$1` owner, `$2` lease in ms, `$3` limit: the rows taken.
    take: String,
    /// `$1` id, `$2` owner: the count settled.
    complete: String,
    /// `$1` id, `$2` owner, `$3` error, `$4` delay in ms.
    fail_retry: String,
    /// `$1` id, `$2` owner, `$3` error.
    fail_dead: String,
    /// `$1` id, `$2` owner, `$3` channel.
    release: String,
    /// `$1` state or '', `$2` limit.
    list: String,
    /// `$1` id.
    show: String,
    /// `$1` id, `$2` channel.
    retry: String,
    /// `$1` channel.
    retry_all: String,
    /// `$1` age in ms.
    purge: String,
    /// No parameter: the counts by state, and the age in ms of the oldest pending (or -1).
    stats: String,
}

/// `update` (an `UPDATE`/`DELETE` without `RETURNING`) answering the count of rows it
/// changed, and notifying `channel` (a parameter) when it changed any.
fn counted(update: &str, notify: Option<&str>) -> String {
    match notify {
        None => format!("WITH r AS ({update} RETURNING 1) SELECT count(*) FROM r"),
        Some(channel) => format!(
            "WITH r AS ({update} RETURNING 1)
            SELECT count(*) FROM (SELECT pg_notify({channel}, '') FROM r) AS notified"
        ),
    }
}

impl Queries {
    fn new(table: &TableName) -> Self {
        let t = table.to_string();
        let owned = "id = $1 AND state = 'running' AND owner = $2 AND lease_until > now()";
        let settle = |set: &str| {
            format!(
                "UPDATE {t} SET {set}, owner = NULL, lease_until = NULL, updated_at = now() WHERE {owned}"
            )
        };
        let ms = |p: &str| format!("now() + {p}::bigint * interval '1 millisecond'");
        Self {
            channel: table.name().to_owned(),
            // A conflicting row, in any state, is a duplicate; the statement waits for a
            // concurrent insert of the same id to commit or roll back.
            accept: format!(
                "WITH stored AS (
                    INSERT INTO {t} (id, event_type, body, state, next_run_at)
                    VALUES ($1, $2, decode($3, 'hex'), 'pending', now())
                    ON CONFLICT (id) DO NOTHING
                    RETURNING 1
                )
                SELECT count(*) FROM stored"
            ),
            // Not data: the notifying transaction need not wait for its WAL flush.
            notify: "SELECT set_config('synchronous_commit', 'off', true), pg_notify($1, '')"
                .to_owned(),
            take: format!(
                "UPDATE {t} AS i
                SET state = 'running', owner = $1, lease_until = {lease}, next_run_at = NULL,
                    attempts = i.attempts + 1, updated_at = now()
                WHERE i.id IN (
                    SELECT id FROM {t}
                    WHERE state IN ('pending', 'running') AND {DUE} <= now()
                    ORDER BY {DUE}
                    LIMIT $3
                    FOR UPDATE SKIP LOCKED
                )
                RETURNING {COLUMNS}",
                lease = ms("$2"),
            ),
            complete: counted(&settle("state = 'done', done_at = now()"), None),
            fail_retry: counted(
                &settle(&format!(
                    "state = 'pending', last_error = $3, next_run_at = {}",
                    ms("$4")
                )),
                None,
            ),
            fail_dead: counted(&settle("state = 'dead', last_error = $3"), None),
            release: counted(
                &settle("state = 'pending', next_run_at = now()"),
                Some("$3"),
            ),
            list: format!(
                "SELECT {COLUMNS} FROM {t} WHERE ($1 = '' OR state = $1)
                ORDER BY created_at, id LIMIT $2"
            ),
            show: format!("SELECT {COLUMNS} FROM {t} WHERE id = $1"),
            retry: counted(
                &format!(
                    "UPDATE {t} SET state = 'pending', attempts = 0, next_run_at = now(),
                        updated_at = now() WHERE id = $1 AND state = 'dead'"
                ),
                Some("$2"),
            ),
            retry_all: counted(
                &format!(
                    "UPDATE {t} SET state = 'pending', attempts = 0, next_run_at = now(),
                        updated_at = now() WHERE state = 'dead'"
                ),
                Some("$1"),
            ),
            purge: counted(
                &format!(
                    "DELETE FROM {t} WHERE state = 'done'
                    AND done_at <= now() - $1::bigint * interval '1 millisecond'"
                ),
                None,
            ),
            // One subquery per state, each on its partial index (pending and running: the
            // due index; dead; done: an index-only count), never a scan of the whole table,
            // which holds every done entry of the retention window.
            stats: format!(
                "SELECT (SELECT count(*) FROM {t} WHERE state = 'pending'),
                    (SELECT count(*) FROM {t} WHERE state = 'running'),
                    (SELECT count(*) FROM {t} WHERE state = 'dead'),
                    (SELECT count(*) FROM {t} WHERE state = 'done'),
                    COALESCE((extract(epoch FROM now() - (SELECT min(created_at) FROM {t}
                        WHERE state = 'pending')) * 1000)::bigint, -1)"
            ),
        }
    }
}

/// An index name for `table`: `"<name>_<suffix>"`, the name shortened to stay within 63
/// bytes.
fn index(table: &TableName, suffix: &str) -> String {
    let keep = table.name().len().min(63 - suffix.len() - 1);
    format!("\"{}_{suffix}\"", &table.name()[..keep])
}

fn schema(table: &TableName) -> String {
    MIGRATION
        .replace("{table}", &table.to_string())
        .replace("{due_index}", &index(table, "due_idx"))
        .replace("{done_index}", &index(table, "done_idx"))
        .replace("{dead_index}", &index(table, "dead_idx"))
}

impl PostgresInbox {
    /// An inbox on `pool`, with the default table ([`DEFAULT_INBOX_TABLE`]) and operation
    /// timeout. Run [`migrate`](Self::migrate) once before using it, or create the table
    /// with your own migrations ([`schema_sql`](Self::schema_sql)).
    pub fn new(pool: PgPool) -> Self {
        Self::builder(pool)
            .build()
            .unwrap_or_else(|_| unreachable!("the default table name is valid"))
    }

    /// A builder, to choose the table, the timeout and the [`Pooler`] mode.
    pub fn builder(pool: PgPool) -> PostgresInboxBuilder {
        PostgresInboxBuilder {
            pool,
            table: TableName::parse(DEFAULT_INBOX_TABLE),
            operation_timeout: DEFAULT_OPERATION_TIMEOUT,
            pooler: Pooler::default(),
        }
    }

    /// The table.
    pub fn table(&self) -> &TableName {
        &self.table
    }

    /// The pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The notification channel: the table's unqualified name. `accept`, `release` and
    /// the retries `pg_notify` it; [`listen`](Self::listen) listens to it.
    pub fn channel(&self) -> &str {
        &self.queries.channel
    }

    /// How the statements reach the server now (see [`PostgresStore::pooler`]).
    ///
    /// [`PostgresStore::pooler`]: crate::PostgresStore::pooler
    pub fn pooler(&self) -> Pooler {
        if self.simple.load(Ordering::Relaxed) {
            Pooler::Transaction
        } else {
            Pooler::Direct
        }
    }

    /// Marks the entry of `attempt` done inside the caller's transaction (fenced: only if it
    /// still runs under the attempt's lease), so that the handler's side effects and the
    /// completion commit together, or not at all: exactly-once effects. For a worker built
    /// with `Worker::builder_with_attempt`. On [`SettleOutcome::Settled`] the attempt is
    /// [marked completed](Attempt::mark_completed) and the worker leaves the entry to your
    /// commit; if the transaction then rolls back, the entry is taken again once its lease
    /// expires. On [`SettleOutcome::NotOwner`] the lease was lost (another worker runs the
    /// entry): roll back.
    ///
    /// Behind a transaction pooler ([`Pooler::Transaction`]) the completion is one simple
    /// query; see `PostgresStore::complete_in_transaction` for your own statements there.
    ///
    /// ```no_run
    /// use std::sync::Arc;
    /// use knolyx_webhook_core::inbox::{Inbox, Worker};
    /// use knolyx_webhook_core::store::SettleOutcome;
    /// use knolyx_webhook_postgres::PostgresInbox;
    ///
    /// # async fn run(pool: sqlx::PgPool) -> Result<(), Box<dyn std::error::Error>> {
    /// let inbox = Arc::new(PostgresInbox::new(pool.clone()));
    /// let completing = Arc::clone(&inbox);
    /// let worker = Worker::builder_with_attempt(inbox, move |event, attempt| {
    ///     let (inbox, pool) = (Arc::clone(&completing), pool.clone());
    ///     async move {
    ///         let mut tx = pool.begin().await?;
    ///         sqlx::query("INSERT INTO enrolments (message_id) VALUES ($1)")
    ///             .bind(event.id())
    ///             .execute(&mut *tx)
    ///             .await?;
    ///         if inbox.complete_in_transaction(&mut tx, &attempt).await? == SettleOutcome::Settled {
    ///             tx.commit().await?; // the enrolment and the completion, together
    ///         }
    ///         Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
    ///     }
    /// })
    /// .build()
    /// .spawn();
    /// # drop(worker);
    /// # Ok(()) }
    /// ```
    pub async fn complete_in_transaction(
        &self,
        conn: &mut sqlx::PgConnection,
        attempt: &Attempt,
    ) -> StoreResult<SettleOutcome> {
        let owner = attempt.owner().to_string();
        let args = [Arg::Text(attempt.id()), Arg::Text(&owner)];
        let simple = self.simple.load(Ordering::Relaxed);
        let sql = &self.queries.complete;
        let row = error::within(self.operation_timeout, async {
            if simple {
                conn.fetch_one(sqlx::raw_sql(&sql::inline(sql, &args)?))
                    .await
            } else {
                sql::bind(sql, &args).fetch_one(&mut *conn).await
            }
        })
        .await;
        if let Err(e) = &row
            && !simple
            && error::source_is_pooler_sign(e)
        {
            // The error aborted the caller's transaction; the next operation goes through.
            self.simple.store(true, Ordering::Relaxed);
        }
        let count: i64 = row?.try_get(0).map_err(error::map)?;
        if count == 0 {
            return Ok(SettleOutcome::NotOwner);
        }
        attempt.mark_completed();
        Ok(SettleOutcome::Settled)
    }

    /// The SQL that creates the table and its indexes (idempotent: `IF NOT EXISTS`), to
    /// copy into your own migrations; [`migrate`](Self::migrate) runs the same text.
    pub fn schema_sql(&self) -> String {
        schema(&self.table)
    }

    /// Creates the table and its indexes if they do not exist, in one transaction under an
    /// advisory lock (one simple query: safe through a transaction pooler), so replicas
    /// starting together do not race. Safe to run at every start.
    pub async fn migrate(&self) -> StoreResult<()> {
        let text = format!("knolyx-webhook-postgres migrate inbox {}", self.table);
        let hash = text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        });
        // No NOTICE `relation … already exists` at every start: see `PostgresStore::migrate`.
        let sql = format!(
            "SELECT pg_advisory_xact_lock({});\nSET LOCAL client_min_messages = warning;\n{}",
            i64::from_ne_bytes(hash.to_ne_bytes()),
            self.schema_sql()
        );
        sqlx::raw_sql(&sql)
            .execute(&self.pool)
            .await
            .map_err(error::map)?;
        Ok(())
    }

    /// Listens to the inbox's [channel](Self::channel) on a connection of its own, taken
    /// from the pool (and held while the listener lives).
    ///
    /// Fails with [`StoreErrorKind::Misconfigured`] for a [`Pooler::Transaction`] inbox:
    /// `LISTEN` needs a session, which a transaction pooler does not keep. There, the worker
    /// polls (or listen through a direct pool of its own).
    pub async fn listen(&self) -> StoreResult<InboxListener> {
        if self.pooler() == Pooler::Transaction {
            return Err(StoreError::new(
                StoreErrorKind::Misconfigured,
                "LISTEN does not work through a transaction pooler: poll instead",
                None,
            ));
        }
        let listen = async {
            let mut listener = PgListener::connect_with(&self.pool).await?;
            listener.listen(self.channel()).await?;
            Ok(listener)
        };
        let listener = error::within(self.operation_timeout, listen).await?;
        Ok(InboxListener { listener })
    }

    /// [`listen`](Self::listen)s, then, in a task on the current Tokio runtime, wakes
    /// `waker` (`notify_one`) at each notification, for
    /// [`WorkerBuilder::wake_on`](knolyx_webhook_core::inbox::WorkerBuilder::wake_on).
    /// When the connection is lost the listener reconnects, and wakes `waker` once, since
    /// notifications may have been missed meanwhile. Abort the returned task to stop.
    ///
    /// ```no_run
    /// use std::sync::Arc;
    /// use knolyx_webhook_core::inbox::Worker;
    /// use knolyx_webhook_postgres::PostgresInbox;
    ///
    /// # async fn run(pool: sqlx::PgPool) -> Result<(), Box<dyn std::error::Error>> {
    /// let inbox = PostgresInbox::new(pool);
    /// inbox.migrate().await?;
    /// let waker = Arc::new(tokio::sync::Notify::new());
    /// let _listening = inbox.wake_on_notify(waker.clone()).await?;
    /// let worker = Worker::builder(Arc::new(inbox), |event| async move {
    ///     println!("{} {}", event.event_type(), event.id());
    ///     Ok::<(), std::io::Error>(())
    /// })
    /// .wake_on(waker)
    /// .build()
    /// .spawn();
    /// # let _ = worker;
    /// # Ok(()) }
    /// ```
    pub async fn wake_on_notify(
        &self,
        waker: Arc<Notify>,
    ) -> StoreResult<tokio::task::JoinHandle<()>> {
        let mut listener = self.listen().await?;
        Ok(tokio::spawn(async move {
            loop {
                match listener.listener.try_recv().await {
                    Ok(Some(_)) => waker.notify_one(),
                    // The connection was lost (the next call reconnects): poll once.
                    Ok(None) => waker.notify_one(),
                    // It could not reconnect: poll, and try again in a second.
                    Err(_) => {
                        waker.notify_one();
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        }))
    }

    /// Has the background task `pg_notify` the channel (started on first use, on the
    /// current Tokio runtime, and again if that runtime ended). A failure is logged and
    /// left to the poll.
    fn notify_later(&self) {
        {
            let mut task = self.notifier.task.lock().unwrap_or_else(|p| p.into_inner());
            if task.as_ref().is_none_or(|t| t.is_finished()) {
                let inbox = self.clone();
                *task = Some(tokio::spawn(async move {
                    loop {
                        inbox.notifier.wake.notified().await;
                        let channel = [Arg::Text(inbox.channel())];
                        if let Err(e) = inbox.rows(&inbox.queries.notify, &channel).await {
                            tracing::warn!(
                                error = &e as &dyn std::error::Error,
                                kind = e.kind().as_str(),
                                "knolyx-webhook: could not notify the inbox's workers of new \
                                 entries; they find them at their next poll"
                            );
                        }
                    }
                }));
            }
        }
        self.notifier.wake.notify_one();
    }

    /// `sql` with `args`, within the operation timeout: its rows. A prepared statement
    /// ([`Pooler::Direct`], switching for good at a transaction pooler's sign, as the
    /// store does) or one simple query with the parameters written in.
    async fn rows(&self, sql: &str, args: &[Arg<'_>]) -> StoreResult<Vec<PgRow>> {
        error::within(self.operation_timeout, async {
            if !self.simple.load(Ordering::Relaxed) {
                match sql::bind(sql, args).fetch_all(&self.pool).await {
                    Err(e) if error::is_pooler_sign(&e) => {
                        self.simple.store(true, Ordering::Relaxed);
                    }
                    rows => return rows,
                }
            }
            let text = sql::inline(sql, args)?;
            (&self.pool).fetch_all(sqlx::raw_sql(&text)).await
        })
        .await
    }

    /// The count a [`counted`] statement answered.
    async fn count(&self, sql: &str, args: &[Arg<'_>]) -> StoreResult<u64> {
        let rows = self.rows(sql, args).await?;
        let count: i64 = match rows.first() {
            Some(row) => row.try_get(0).map_err(error::map)?,
            None => 0,
        };
        Ok(u64::try_from(count).unwrap_or(0))
    }

    async fn settle(&self, sql: &str, args: &[Arg<'_>]) -> StoreResult<SettleOutcome> {
        Ok(match self.count(sql, args).await? {
            0 => SettleOutcome::NotOwner,
            _ => SettleOutcome::Settled,
        })
    }

    async fn entries(&self, sql: &str, args: &[Arg<'_>]) -> StoreResult<Vec<Entry>> {
        self.rows(sql, args).await?.iter().map(entry).collect()
    }
}

fn limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A handler's error as a text PostgreSQL takes (no NUL).
fn error_text(error: &str) -> String {
    error.replace('\0', "\u{FFFD}")
}

fn time(ms: i64) -> SystemTime {
    match u64::try_from(ms) {
        Ok(ms) => UNIX_EPOCH + Duration::from_millis(ms),
        Err(_) => UNIX_EPOCH - Duration::from_millis(ms.unsigned_abs()),
    }
}

/// An entry from a row of [`COLUMNS`].
fn entry(row: &PgRow) -> StoreResult<Entry> {
    let bad = |what: &str| StoreError::backend(format!("unexpected {what} in the inbox table"));
    let get = |i: usize| row.try_get::<Option<i64>, _>(i).map_err(error::map);
    let body: String = row.try_get(2).map_err(error::map)?;
    let body = sql::hex_decode(&body).ok_or_else(|| bad("body"))?;
    let state: String = row.try_get(3).map_err(error::map)?;
    let state = EntryState::parse(&state).ok_or_else(|| bad("state"))?;
    let attempts: i32 = row.try_get(4).map_err(error::map)?;
    let owner: Option<String> = row.try_get(6).map_err(error::map)?;
    let owner = match owner {
        Some(text) => Some(OwnerToken::from_u128(
            u128::from_str_radix(&text, 16).map_err(|_| bad("owner"))?,
        )),
        None => None,
    };
    Ok(Entry::new(
        row.try_get::<String, _>(0).map_err(error::map)?,
        row.try_get::<String, _>(1).map_err(error::map)?,
        body,
        state,
        time(get(7)?.unwrap_or(0)),
    )
    .with_attempts(u32::try_from(attempts).unwrap_or(0))
    .with_last_error(row.try_get(5).map_err(error::map)?)
    .with_owner(owner)
    .with_times(
        time(get(8)?.unwrap_or(0)),
        get(9)?.map(time),
        get(10)?.map(time),
        get(11)?.map(time),
    ))
}

#[async_trait]
impl Inbox for PostgresInbox {
    async fn accept(&self, event: &WebhookEvent) -> StoreResult<Accepted> {
        let body = sql::hex_encode(event.raw());
        let args = [
            Arg::Text(event.id()),
            Arg::Text(event.event_type()),
            Arg::Text(&body),
        ];
        Ok(match self.count(&self.queries.accept, &args).await? {
            0 => Accepted::Duplicate,
            _ => {
                self.notify_later();
                Accepted::Stored
            }
        })
    }

    async fn take(
        &self,
        worker: OwnerToken,
        lease: Duration,
        limit_to: usize,
    ) -> StoreResult<Vec<Entry>> {
        let owner = worker.to_string();
        let lease = i64::try_from(ttl_millis(lease, MAX_MS)).unwrap_or(i64::MAX);
        let args = [
            Arg::Text(&owner),
            Arg::Int(lease),
            Arg::Int(limit(limit_to)),
        ];
        self.entries(&self.queries.take, &args).await
    }

    async fn complete(&self, id: &str, owner: OwnerToken) -> StoreResult<SettleOutcome> {
        let owner = owner.to_string();
        self.settle(&self.queries.complete, &[Arg::Text(id), Arg::Text(&owner)])
            .await
    }

    async fn fail(
        &self,
        id: &str,
        owner: OwnerToken,
        error: &str,
        retry_in: Option<Duration>,
    ) -> StoreResult<SettleOutcome> {
        let (owner, error) = (owner.to_string(), error_text(error));
        let args = [Arg::Text(id), Arg::Text(&owner), Arg::Text(&error)];
        match retry_in {
            Some(delay) => {
                let delay = i64::try_from(saturating_millis(delay).min(MAX_MS)).unwrap_or(0);
                let args = [args[0], args[1], args[2], Arg::Int(delay)];
                self.settle(&self.queries.fail_retry, &args).await
            }
            None => self.settle(&self.queries.fail_dead, &args).await,
        }
    }

    async fn release(&self, id: &str, owner: OwnerToken) -> StoreResult<SettleOutcome> {
        let owner = owner.to_string();
        let args = [Arg::Text(id), Arg::Text(&owner), Arg::Text(self.channel())];
        self.settle(&self.queries.release, &args).await
    }

    async fn list(&self, filter: ListFilter) -> StoreResult<Vec<Entry>> {
        let state = filter.state_filter().map_or("", EntryState::as_str);
        let args = [Arg::Text(state), Arg::Int(limit(filter.max()))];
        self.entries(&self.queries.list, &args).await
    }

    async fn show(&self, id: &str) -> StoreResult<Option<Entry>> {
        let mut found = self.entries(&self.queries.show, &[Arg::Text(id)]).await?;
        Ok(found.pop())
    }

    async fn retry(&self, id: &str) -> StoreResult<bool> {
        let args = [Arg::Text(id), Arg::Text(self.channel())];
        Ok(self.count(&self.queries.retry, &args).await? > 0)
    }

    async fn retry_all_dead(&self) -> StoreResult<u64> {
        self.count(&self.queries.retry_all, &[Arg::Text(self.channel())])
            .await
    }

    async fn purge_done(&self, older_than: Duration) -> StoreResult<u64> {
        let age = i64::try_from(saturating_millis(older_than).min(MAX_MS)).unwrap_or(0);
        self.count(&self.queries.purge, &[Arg::Int(age)]).await
    }

    /// One query over the table (a scan: its cost grows with the done entries kept).
    async fn stats(&self) -> StoreResult<InboxStats> {
        let rows = self.rows(&self.queries.stats, &[]).await?;
        let row = rows
            .first()
            .ok_or_else(|| StoreError::backend("the inbox's stats query returned no row"))?;
        let get = |i: usize| row.try_get::<i64, _>(i).map_err(error::map);
        let count = |i: usize| get(i).map(|n| u64::try_from(n).unwrap_or(0));
        let oldest = get(4)?;
        Ok(InboxStats {
            pending: count(0)?,
            running: count(1)?,
            dead: count(2)?,
            done: count(3)?,
            oldest_pending: u64::try_from(oldest).ok().map(Duration::from_millis),
        })
    }
}

/// Listens to an inbox's notifications ([`PostgresInbox::listen`]).
pub struct InboxListener {
    listener: PgListener,
}

impl fmt::Debug for InboxListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InboxListener").finish_non_exhaustive()
    }
}

impl InboxListener {
    /// Waits for the next notification (an entry accepted, released or retried). A lost
    /// connection is reopened transparently (notifications sent meanwhile are lost: poll
    /// too); fails only when it cannot be reopened.
    pub async fn recv(&mut self) -> StoreResult<()> {
        self.listener.recv().await.map(drop).map_err(error::map)
    }
}

/// Builds a [`PostgresInbox`]: table name, timeout, [`Pooler`] mode.
///
/// ```no_run
/// use std::time::Duration;
/// use knolyx_webhook_postgres::{PostgresInbox, Pooler};
///
/// # async fn run(pool: sqlx::PgPool) -> Result<(), Box<dyn std::error::Error>> {
/// let inbox = PostgresInbox::builder(pool)
///     .table("webhooks.knolyx_inbox")
///     .operation_timeout(Duration::from_secs(1))
///     .build()?;
/// inbox.migrate().await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct PostgresInboxBuilder {
    pool: PgPool,
    table: Result<TableName, InvalidTableName>,
    operation_timeout: Duration,
    pooler: Pooler,
}

impl fmt::Debug for PostgresInboxBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresInboxBuilder")
            .field("table", &self.table)
            .field("operation_timeout", &self.operation_timeout)
            .field("pooler", &self.pooler)
            .finish_non_exhaustive()
    }
}

impl PostgresInboxBuilder {
    /// The table (default [`DEFAULT_INBOX_TABLE`]): `name` or `schema.name`, validated as
    /// described on [`TableName`]; an invalid name fails [`build`](Self::build).
    pub fn table(mut self, name: &str) -> Self {
        self.table = TableName::parse(name);
        self
    }

    /// The limit on one operation, waiting for a pooled connection included (default
    /// [`DEFAULT_OPERATION_TIMEOUT`]); past it, [`StoreErrorKind::Timeout`].
    pub fn operation_timeout(mut self, limit: Duration) -> Self {
        self.operation_timeout = limit;
        self
    }

    /// What sits between the pool and PostgreSQL (default [`Pooler::Direct`]); see
    /// [`Pooler`]. With [`Pooler::Transaction`], every operation works, but
    /// [`listen`](PostgresInbox::listen) does not: the worker polls.
    pub fn pooler(mut self, pooler: Pooler) -> Self {
        self.pooler = pooler;
        self
    }

    /// The inbox, or the refused table name.
    pub fn build(self) -> Result<PostgresInbox, InvalidTableName> {
        let table = self.table?;
        Ok(PostgresInbox {
            pool: self.pool,
            queries: Arc::new(Queries::new(&table)),
            table: Arc::new(table),
            operation_timeout: self.operation_timeout,
            simple: Arc::new(AtomicBool::new(self.pooler == Pooler::Transaction)),
            notifier: Arc::default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_fills_in_the_table_and_indexes() {
        let long = TableName::parse(&"t".repeat(63)).unwrap();
        assert_eq!(index(&long, "done_idx").len(), 63 + 2);
        let sql = schema(&TableName::parse("app.inbox").unwrap());
        assert!(sql.contains(r#"CREATE TABLE IF NOT EXISTS "app"."inbox" ("#));
        assert!(sql.contains(r#"CREATE INDEX IF NOT EXISTS "inbox_due_idx" ON "app"."inbox""#));
        assert!(!sql.contains('{'));
    }

    #[test]
    fn errors_lose_their_nuls_only() {
        assert_eq!(error_text("a\0b é"), "a\u{FFFD}b é");
    }
}
