//! [`PostgresStore`] and its builder.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use knolyx_webhook_core::ClaimRef;
use knolyx_webhook_core::store::{
    ClaimOutcome, IdempotencyStore, OwnerToken, SettleOutcome, StoreError, StoreResult,
    async_trait, ttl_millis,
};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

use crate::error;
use crate::sql::{self, Queries};
use crate::table::{InvalidTableName, TableName};

/// The default limit on one store operation, waiting for a pooled connection included:
/// 2 seconds.
pub const DEFAULT_OPERATION_TIMEOUT: Duration = Duration::from_secs(2);

/// The longest lease or retention written (100 years): longer ones are clamped, so that the
/// expiry stays within PostgreSQL's timestamps.
const MAX_TTL_MS: u64 = 100 * 365 * 24 * 3600 * 1000;

/// How often a claim that met a concurrent claim re-reads the id before answering
/// `InProgress` (see [`IdempotencyStore::claim`] below).
const CLAIM_ATTEMPTS: usize = 3;

/// An [`IdempotencyStore`] on PostgreSQL: one table, shared by every replica that uses the
/// same database. See the [crate docs](crate) for the schema, the migration and the purge.
///
/// Cloning is cheap (the pool and the SQL are shared).
///
/// `Debug` shows the table and the timeout, never the pool's connect options (they may hold
/// a password).
#[derive(Clone)]
pub struct PostgresStore {
    pool: PgPool,
    table: Arc<TableName>,
    queries: Arc<Queries>,
    operation_timeout: Duration,
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore")
            .field("table", &*self.table)
            .field("operation_timeout", &self.operation_timeout)
            .field("pool_size", &self.pool.size())
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// A store on `pool`, with the default table ([`DEFAULT_TABLE`](crate::DEFAULT_TABLE))
    /// and operation timeout. Run [`migrate`](Self::migrate) once before using it, or
    /// create the table with your own migrations ([`schema_sql`](Self::schema_sql)).
    pub fn new(pool: PgPool) -> Self {
        Self::with_table(pool, TableName::default(), DEFAULT_OPERATION_TIMEOUT)
    }

    /// A builder, to choose the table and the timeout.
    pub fn builder(pool: PgPool) -> PostgresStoreBuilder {
        PostgresStoreBuilder {
            pool,
            table: Ok(TableName::default()),
            operation_timeout: DEFAULT_OPERATION_TIMEOUT,
        }
    }

    /// Opens a pool on `url` (`postgres://user[:password]@host[:port]/database`) with
    /// default settings, waits for a first connection, and returns a store on it with the
    /// default table. Applications that already have a pool use [`new`](Self::new).
    ///
    /// When no connection opens, the error carries why (refused, a wrong password, no such
    /// database): the pool itself only reports that it timed out, so one direct connection
    /// is tried to learn the cause.
    pub async fn connect(url: &str) -> StoreResult<Self> {
        use sqlx::Connection;

        let options: sqlx::postgres::PgConnectOptions = url.parse().map_err(error::map)?;
        match PgPoolOptions::new()
            .acquire_timeout(DEFAULT_OPERATION_TIMEOUT)
            .connect_with(options.clone())
            .await
        {
            Ok(pool) => Ok(Self::new(pool)),
            Err(sqlx::Error::PoolTimedOut) => {
                let direct = crate::error::within(
                    DEFAULT_OPERATION_TIMEOUT,
                    sqlx::PgConnection::connect_with(&options),
                )
                .await;
                Err(match direct {
                    Err(cause) => cause,
                    // It opened this time: report the pool's timeout after all.
                    Ok(conn) => {
                        let _ = conn.close().await;
                        error::map(sqlx::Error::PoolTimedOut)
                    }
                })
            }
            Err(other) => Err(error::map(other)),
        }
    }

    fn with_table(pool: PgPool, table: TableName, operation_timeout: Duration) -> Self {
        Self {
            pool,
            queries: Arc::new(Queries::new(&table)),
            table: Arc::new(table),
            operation_timeout,
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

    /// The limit on one claim, complete or release.
    pub fn operation_timeout(&self) -> Duration {
        self.operation_timeout
    }

    /// The SQL that creates this store's table and index (idempotent: `IF NOT EXISTS`), to
    /// copy into your own migrations. [`migrate`](Self::migrate) runs the same text.
    pub fn schema_sql(&self) -> String {
        sql::schema(&self.table)
    }

    /// Creates the table and its index if they do not exist, in one transaction under an
    /// advisory lock (one round trip), so replicas starting together do not race. Safe to run at every
    /// start. A schema-qualified table's schema must exist already.
    ///
    /// No timeout applies beyond the pool's own `acquire_timeout`.
    pub async fn migrate(&self) -> StoreResult<()> {
        // One simple query of several statements runs as one implicit transaction: the
        // transaction-scoped advisory lock is held until the table and index exist.
        let sql = format!(
            "SELECT pg_advisory_xact_lock({});\n{}",
            self.lock_key(),
            self.schema_sql()
        );
        sqlx::raw_sql(&sql)
            .execute(&self.pool)
            .await
            .map_err(error::map)?;
        Ok(())
    }

    /// Deletes the rows whose lease or retention has expired (by the database's clock) and
    /// returns how many. Expired rows are already treated as absent; the purge only keeps
    /// the table small. Call it periodically, from one replica or all (concurrent purges
    /// are safe): see the [crate docs](crate#purging-expired-rows).
    ///
    /// No timeout applies beyond the pool's own `acquire_timeout`: a large purge may take a
    /// while. Wrap it in `tokio::time::timeout` if you want a limit.
    pub async fn purge_expired(&self) -> StoreResult<u64> {
        let done = sqlx::query(&self.queries.purge)
            .execute(&self.pool)
            .await
            .map_err(error::map)?;
        Ok(done.rows_affected())
    }

    /// Completes `claim` on `conn` — typically inside your own transaction, beside the
    /// side effect of your handler — so that the side effect and the completion commit
    /// together or not at all: no crash can leave one without the other.
    ///
    /// The completion is fenced like [`complete`](IdempotencyStore::complete): it applies only
    /// while the claim is in progress, owned by this delivery, with an unexpired lease. When
    /// it applies, the claim is marked completed, so the pipeline does not complete it again
    /// after your 2xx. If your transaction then rolls back, answer with an error status: the
    /// claim is released and Knolyx's retry runs the handler.
    ///
    /// The adapters hand the claim to the handler in the request's extensions: axum
    /// `Extension<ClaimRef>`, actix-web `KnolyxClaim` (`web::ReqData<ClaimRef>` cannot work).
    ///
    /// ```no_run
    /// use knolyx_webhook_core::ClaimRef;
    /// use knolyx_webhook_core::store::SettleOutcome;
    /// # async fn handler(store: knolyx_webhook_postgres::PostgresStore, claim: ClaimRef,
    /// #     pool: sqlx::PgPool) -> Result<(), Box<dyn std::error::Error>> {
    /// let mut tx = pool.begin().await?;
    /// sqlx::query("INSERT INTO enrolments (message_id, user_id, course_id) VALUES ($1, $2, $3)")
    ///     .bind(claim.id())
    ///     .bind(48213_i64)
    ///     .bind(1207_i64)
    ///     .execute(&mut *tx)
    ///     .await?;
    /// if store.complete_in_transaction(&mut tx, &claim).await? == SettleOutcome::Settled {
    ///     tx.commit().await?; // side effect and completion, together
    /// } // else: the lease was lost to a retry; dropping `tx` rolls the side effect back
    /// # Ok(()) }
    /// ```
    pub async fn complete_in_transaction(
        &self,
        conn: &mut sqlx::PgConnection,
        claim: &ClaimRef,
    ) -> StoreResult<SettleOutcome> {
        let done = error::within(
            self.operation_timeout,
            sqlx::query(&self.queries.complete)
                .bind(claim.id())
                .bind(claim.owner().to_string())
                .bind(millis(claim.retention()))
                .execute(conn),
        )
        .await?;
        let outcome = settled(done.rows_affected());
        if outcome == SettleOutcome::Settled {
            claim.mark_completed();
        }
        Ok(outcome)
    }

    /// A stable advisory-lock key for this table's migration (FNV-1a of its name).
    fn lock_key(&self) -> i64 {
        let text = format!("knolyx-webhook-postgres migrate {}", self.table);
        let hash = text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        });
        i64::from_ne_bytes(hash.to_ne_bytes())
    }

    async fn try_claim(&self, id: &str, owner: &str, lease: i64) -> StoreResult<Option<String>> {
        let row: Option<(String,)> = error::within(
            self.operation_timeout,
            sqlx::query_as(&self.queries.claim)
                .bind(id)
                .bind(owner)
                .bind(lease)
                .fetch_optional(&self.pool),
        )
        .await?;
        Ok(row.map(|(outcome,)| outcome))
    }

    async fn state(&self, id: &str) -> StoreResult<Option<String>> {
        let row: Option<(String,)> = error::within(
            self.operation_timeout,
            sqlx::query_as(&self.queries.state)
                .bind(id)
                .fetch_optional(&self.pool),
        )
        .await?;
        Ok(row.map(|(state,)| state))
    }
}

fn millis(d: Duration) -> i64 {
    // At most `MAX_TTL_MS`, well within an `i64`.
    ttl_millis(d, MAX_TTL_MS) as i64
}

fn outcome(text: &str) -> StoreResult<ClaimOutcome> {
    match text {
        "claimed" => Ok(ClaimOutcome::Claimed),
        "in_progress" => Ok(ClaimOutcome::InProgress),
        "completed" => Ok(ClaimOutcome::Completed),
        other => Err(StoreError::backend(format!(
            "unexpected state {other:?} in the deliveries table"
        ))),
    }
}

fn settled(rows: u64) -> SettleOutcome {
    if rows == 1 {
        SettleOutcome::Settled
    } else {
        SettleOutcome::NotOwner
    }
}

#[async_trait]
impl IdempotencyStore for PostgresStore {
    /// One statement: an `INSERT … ON CONFLICT DO UPDATE … WHERE <expired>` that claims an
    /// absent or expired id, and in the same round trip reads, `FOR UPDATE`, the state of
    /// the row it did not take: the latest version, the one the conflict check saw and
    /// locked, never an older one from the statement's snapshot. When the conflicting row
    /// was inserted by a concurrent claim after that snapshot, the read finds nothing: only
    /// then a second statement reads the state (and if the row vanished meanwhile, the claim
    /// is tried again; after a few attempts the answer is `InProgress`, which is retryable).
    async fn claim(
        &self,
        id: &str,
        owner: OwnerToken,
        lease: Duration,
    ) -> StoreResult<ClaimOutcome> {
        let owner = owner.to_string();
        let lease = millis(lease);
        for _ in 0..CLAIM_ATTEMPTS {
            if let Some(found) = self.try_claim(id, &owner, lease).await? {
                return outcome(&found);
            }
            if let Some(state) = self.state(id).await? {
                return outcome(&state);
            }
        }
        Ok(ClaimOutcome::InProgress)
    }

    async fn complete(
        &self,
        id: &str,
        owner: OwnerToken,
        retention: Duration,
    ) -> StoreResult<SettleOutcome> {
        let done = error::within(
            self.operation_timeout,
            sqlx::query(&self.queries.complete)
                .bind(id)
                .bind(owner.to_string())
                .bind(millis(retention))
                .execute(&self.pool),
        )
        .await?;
        Ok(settled(done.rows_affected()))
    }

    async fn release(&self, id: &str, owner: OwnerToken) -> StoreResult<SettleOutcome> {
        let done = error::within(
            self.operation_timeout,
            sqlx::query(&self.queries.release)
                .bind(id)
                .bind(owner.to_string())
                .execute(&self.pool),
        )
        .await?;
        Ok(settled(done.rows_affected()))
    }
}

/// Builds a [`PostgresStore`]: table name and timeout.
///
/// ```no_run
/// use std::time::Duration;
/// use knolyx_webhook_postgres::PostgresStore;
///
/// # async fn run(pool: sqlx::PgPool) -> Result<(), Box<dyn std::error::Error>> {
/// let store = PostgresStore::builder(pool)
///     .table("webhooks.knolyx_deliveries")
///     .operation_timeout(Duration::from_millis(500))
///     .build()?;
/// store.migrate().await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct PostgresStoreBuilder {
    pool: PgPool,
    table: Result<TableName, InvalidTableName>,
    operation_timeout: Duration,
}

impl fmt::Debug for PostgresStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStoreBuilder")
            .field("table", &self.table)
            .field("operation_timeout", &self.operation_timeout)
            .finish_non_exhaustive()
    }
}

impl PostgresStoreBuilder {
    /// The table (default [`DEFAULT_TABLE`](crate::DEFAULT_TABLE)): `name` or
    /// `schema.name`, validated as described on [`TableName`]; an invalid name fails
    /// [`build`](Self::build).
    pub fn table(mut self, name: &str) -> Self {
        self.table = TableName::parse(name);
        self
    }

    /// The limit on one claim, complete or release, waiting for a pooled connection
    /// included (default [`DEFAULT_OPERATION_TIMEOUT`]). Past it the operation fails with
    /// [`StoreErrorKind::Timeout`](knolyx_webhook_core::store::StoreErrorKind::Timeout) and
    /// the pipeline answers 503.
    pub fn operation_timeout(mut self, limit: Duration) -> Self {
        self.operation_timeout = limit;
        self
    }

    /// The store, or the refused table name.
    pub fn build(self) -> Result<PostgresStore, InvalidTableName> {
        Ok(PostgresStore::with_table(
            self.pool,
            self.table?,
            self.operation_timeout,
        ))
    }
}

/// The SQL that creates `table` and its index, for your own migration tool; the same text
/// [`PostgresStore::migrate`] runs.
///
/// ```
/// let sql = knolyx_webhook_postgres::schema_sql("knolyx_webhook_deliveries")?;
/// assert!(sql.contains(r#"CREATE TABLE IF NOT EXISTS "knolyx_webhook_deliveries""#));
/// # Ok::<(), knolyx_webhook_postgres::InvalidTableName>(())
/// ```
pub fn schema_sql(table: &str) -> Result<String, InvalidTableName> {
    TableName::parse(table).map(|t| sql::schema(&t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_clamped() {
        assert_eq!(
            millis(Duration::ZERO),
            1,
            "at least a millisecond, as for Redis"
        );
        assert_eq!(millis(Duration::from_secs(60)), 60_000);
        assert_eq!(millis(Duration::MAX), MAX_TTL_MS as i64);
    }

    #[tokio::test]
    async fn debug_never_shows_the_password() {
        let pool = PgPoolOptions::new()
            .connect_lazy("postgres://app:hunter2-secret@127.0.0.1:1/db")
            .unwrap();
        let shown = format!("{:?}", PostgresStore::new(pool));
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("knolyx_webhook_deliveries"), "{shown}");
    }
}
