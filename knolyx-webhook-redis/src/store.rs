//! [`RedisStore`] and its builder.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use knolyx_webhook_core::store::{
    ClaimOutcome, IdempotencyStore, OwnerToken, SettleOutcome, StoreError, StoreResult,
    async_trait, ttl_millis,
};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, ErrorKind, ServerErrorKind};

use crate::error;
use crate::scripts::{self, Lua};

/// The default key prefix: `knolyx-webhook:`.
pub const DEFAULT_KEY_PREFIX: &str = "knolyx-webhook:";
/// The default limit on one store operation, connection included: 2 seconds.
pub const DEFAULT_OPERATION_TIMEOUT: Duration = Duration::from_secs(2);
/// The default limit on opening one connection: 1 second.
pub const DEFAULT_CONNECTION_TIMEOUT: Duration = Duration::from_secs(1);

/// The longest lease or retention sent to Redis (about 31,700 years): longer ones are
/// clamped, so that `PX` never overflows.
const MAX_TTL_MS: u64 = 1_000_000_000_000_000;

/// An [`IdempotencyStore`] on Redis, shared by every replica that points at the same
/// server. See the [crate docs](crate) for the key layout and the server settings it needs.
///
/// Cloning is cheap: clones share one multiplexed connection, which a
/// [`ConnectionManager`] re-establishes after the server went away.
///
/// `Debug` shows the key prefix, the timeouts and the server's address, never its
/// credentials.
#[derive(Clone)]
pub struct RedisStore {
    conn: ConnectionManager,
    prefix: Arc<[u8]>,
    operation_timeout: Duration,
    server: Option<Arc<str>>,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("server", &self.server)
            .field("key_prefix", &String::from_utf8_lossy(&self.prefix))
            .field("operation_timeout", &self.operation_timeout)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Connects to the server at `url` (`redis://[user:password@]host[:port][/db]`) with
    /// the default settings, and waits until the first connection is up.
    pub async fn connect(url: &str) -> StoreResult<Self> {
        Self::builder().connect(url).await
    }

    /// A store over a connection manager you configured yourself, with the default key
    /// prefix and operation timeout.
    pub fn new(manager: ConnectionManager) -> Self {
        Self::builder().build(manager)
    }

    /// A builder, to choose the key prefix and the timeouts.
    pub fn builder() -> RedisStoreBuilder {
        RedisStoreBuilder::default()
    }

    /// The prefix of every key this store writes.
    pub fn key_prefix(&self) -> &[u8] {
        &self.prefix
    }

    /// The limit on one store operation.
    pub fn operation_timeout(&self) -> Duration {
        self.operation_timeout
    }

    /// The connection manager, to share the connection with the rest of the app.
    pub fn connection_manager(&self) -> &ConnectionManager {
        &self.conn
    }

    /// The key of `id`: the prefix, then the id's bytes.
    fn key(&self, id: &str) -> Vec<u8> {
        let mut key = Vec::with_capacity(self.prefix.len() + id.len());
        key.extend_from_slice(&self.prefix);
        key.extend_from_slice(id.as_bytes());
        key
    }

    /// Runs `script` in one round trip (`EVALSHA`); only when the server does not know the
    /// script yet (first use, or after a restart or `SCRIPT FLUSH`) a second one sends it
    /// whole (`EVAL`, which also caches it).
    async fn eval(&self, script: &Lua, key: &[u8], args: &[&[u8]]) -> StoreResult<i64> {
        let mut conn = self.conn.clone();
        let cmd = |name: &str, first: &[u8]| {
            let mut cmd = redis::cmd(name);
            cmd.arg(first).arg(1).arg(key);
            for arg in args {
                cmd.arg(*arg);
            }
            cmd
        };
        let evalsha = cmd("EVALSHA", script.hash().as_bytes());
        error::within(self.operation_timeout, async {
            match evalsha.query_async::<i64>(&mut conn).await {
                Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                    cmd("EVAL", script.body.as_bytes())
                        .query_async::<i64>(&mut conn)
                        .await
                }
                other => other,
            }
        })
        .await
    }
}

/// The `p:<owner>` value of a key in progress.
fn in_progress(owner: OwnerToken) -> String {
    format!("p:{owner}")
}

/// A duration as whole milliseconds for `PX`: at least 1 (Redis refuses 0), at most
/// [`MAX_TTL_MS`].
fn millis(d: Duration) -> String {
    ttl_millis(d, MAX_TTL_MS).to_string()
}

#[async_trait]
impl IdempotencyStore for RedisStore {
    async fn claim(
        &self,
        id: &str,
        owner: OwnerToken,
        lease: Duration,
    ) -> StoreResult<ClaimOutcome> {
        let value = in_progress(owner);
        let lease = millis(lease);
        let key = self.key(id);
        match self
            .eval(&scripts::CLAIM, &key, &[value.as_bytes(), lease.as_bytes()])
            .await?
        {
            0 => Ok(ClaimOutcome::Claimed),
            1 => Ok(ClaimOutcome::InProgress),
            2 => Ok(ClaimOutcome::Completed),
            other => Err(unexpected(other)),
        }
    }

    async fn complete(
        &self,
        id: &str,
        owner: OwnerToken,
        retention: Duration,
    ) -> StoreResult<SettleOutcome> {
        let value = in_progress(owner);
        let retention = millis(retention);
        let key = self.key(id);
        let n = self
            .eval(
                &scripts::COMPLETE,
                &key,
                &[value.as_bytes(), retention.as_bytes()],
            )
            .await?;
        settled(n)
    }

    async fn release(&self, id: &str, owner: OwnerToken) -> StoreResult<SettleOutcome> {
        let value = in_progress(owner);
        let key = self.key(id);
        let n = self
            .eval(&scripts::RELEASE, &key, &[value.as_bytes()])
            .await?;
        settled(n)
    }
}

fn settled(n: i64) -> StoreResult<SettleOutcome> {
    match n {
        1 => Ok(SettleOutcome::Settled),
        0 => Ok(SettleOutcome::NotOwner),
        other => Err(unexpected(other)),
    }
}

fn unexpected(reply: i64) -> StoreError {
    StoreError::backend(format!(
        "unexpected reply from a knolyx-webhook script: {reply}"
    ))
}

/// Builds a [`RedisStore`]: key prefix, timeouts, reconnection.
///
/// ```no_run
/// use std::time::Duration;
/// use knolyx_webhook_redis::RedisStore;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let store = RedisStore::builder()
///     .key_prefix("billing-app:knolyx:")
///     .operation_timeout(Duration::from_millis(500))
///     .connect("redis://127.0.0.1:6379/")
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct RedisStoreBuilder {
    prefix: Vec<u8>,
    operation_timeout: Duration,
    connection_timeout: Duration,
    response_timeout: Option<Duration>,
    reconnect_retries: usize,
}

impl Default for RedisStoreBuilder {
    fn default() -> Self {
        Self {
            prefix: DEFAULT_KEY_PREFIX.as_bytes().to_vec(),
            operation_timeout: DEFAULT_OPERATION_TIMEOUT,
            connection_timeout: DEFAULT_CONNECTION_TIMEOUT,
            response_timeout: None,
            reconnect_retries: 3,
        }
    }
}

impl RedisStoreBuilder {
    /// The prefix of every key (default [`DEFAULT_KEY_PREFIX`]). Give each application
    /// sharing one Redis its own prefix; replicas of one application share theirs.
    pub fn key_prefix(mut self, prefix: impl AsRef<[u8]>) -> Self {
        self.prefix = prefix.as_ref().to_vec();
        self
    }

    /// The limit on one operation (claim, complete or release), waiting for a connection
    /// included (default [`DEFAULT_OPERATION_TIMEOUT`]). Past it the operation fails with
    /// [`StoreErrorKind::Timeout`](knolyx_webhook_core::store::StoreErrorKind::Timeout)
    /// and the pipeline answers 503.
    pub fn operation_timeout(mut self, limit: Duration) -> Self {
        self.operation_timeout = limit;
        self
    }

    /// The limit on opening one connection (default [`DEFAULT_CONNECTION_TIMEOUT`]).
    /// Not applied by [`build`](Self::build), whose manager has its own.
    pub fn connection_timeout(mut self, limit: Duration) -> Self {
        self.connection_timeout = limit;
        self
    }

    /// The limit the connection puts on each reply (default: none; the operation timeout
    /// bounds every operation anyway). Not applied by [`build`](Self::build).
    pub fn response_timeout(mut self, limit: Duration) -> Self {
        self.response_timeout = Some(limit);
        self
    }

    /// How many times one reconnection retries, with exponential backoff from 100 ms
    /// capped at 1 s, before giving up until the next operation (default 3). Not applied by
    /// [`build`](Self::build).
    pub fn reconnect_retries(mut self, retries: usize) -> Self {
        self.reconnect_retries = retries;
        self
    }

    /// Connects to `url` and waits until the first connection is up (within the
    /// connection timeout and the reconnection retries).
    pub async fn connect(self, url: &str) -> StoreResult<RedisStore> {
        let client = Client::open(url).map_err(error::map)?;
        self.connect_with(client).await
    }

    /// A store for `url` that connects on its first operation: the application can start
    /// while Redis is down (its deliveries get 503 until Redis is up). Call it within a
    /// Tokio runtime (the connection manager spawns a task).
    pub fn connect_lazy(self, url: &str) -> StoreResult<RedisStore> {
        let client = Client::open(url).map_err(error::map)?;
        self.connect_lazy_with(client)
    }

    /// Like [`connect`](Self::connect), with a client you opened (TLS settings, etc.).
    pub async fn connect_with(self, client: Client) -> StoreResult<RedisStore> {
        let server = server_name(&client);
        let manager = ConnectionManager::new_with_config(client, self.manager_config())
            .await
            .map_err(error::map)?;
        Ok(self.finish(manager, Some(server)))
    }

    /// Like [`connect_lazy`](Self::connect_lazy), with a client you opened.
    pub fn connect_lazy_with(self, client: Client) -> StoreResult<RedisStore> {
        let server = server_name(&client);
        let manager = ConnectionManager::new_lazy_with_config(client, self.manager_config())
            .map_err(error::map)?;
        Ok(self.finish(manager, Some(server)))
    }

    /// A store over a connection manager you configured: only the key prefix and the
    /// operation timeout of this builder apply.
    pub fn build(self, manager: ConnectionManager) -> RedisStore {
        self.finish(manager, None)
    }

    fn manager_config(&self) -> ConnectionManagerConfig {
        ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.connection_timeout))
            .set_response_timeout(self.response_timeout)
            .set_number_of_retries(self.reconnect_retries)
            .set_max_delay(Duration::from_secs(1))
    }

    fn finish(self, conn: ConnectionManager, server: Option<Arc<str>>) -> RedisStore {
        RedisStore {
            conn,
            prefix: self.prefix.into(),
            operation_timeout: self.operation_timeout,
            server,
        }
    }
}

/// `host:port/db` (or the socket path), without credentials.
fn server_name(client: &Client) -> Arc<str> {
    let info = client.get_connection_info();
    format!("{}/{}", info.addr(), info.redis_settings().db()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_clamped_for_px() {
        assert_eq!(millis(Duration::ZERO), "1");
        assert_eq!(millis(Duration::from_micros(1500)), "1");
        assert_eq!(millis(Duration::from_secs(60)), "60000");
        assert_eq!(millis(Duration::MAX), MAX_TTL_MS.to_string());
    }

    #[tokio::test]
    async fn debug_never_shows_the_password() {
        let store = RedisStore::builder()
            .key_prefix("app:")
            .connect_lazy("redis://user:hunter2-secret@127.0.0.1:1/3")
            .unwrap();
        let shown = format!("{store:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("127.0.0.1:1/3"), "{shown}");
        assert!(shown.contains("app:"), "{shown}");
    }
}
