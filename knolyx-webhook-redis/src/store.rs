//! [`RedisStore`] and its builder.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use knolyx_webhook_core::store::{
    ClaimOutcome, IdState, IdempotencyStore, OwnerToken, SettleOutcome, StoreError, StoreErrorKind,
    StoreResult, async_trait, ttl_millis,
};
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::sentinel::{SentinelClient, SentinelServerType};
use redis::{
    AsyncConnectionConfig, Client, ErrorKind, FromRedisValue, RedisError, RedisResult,
    ServerErrorKind, Value,
};

use crate::error;
use crate::scripts::{self, Lua};
use crate::sentinel::SentinelMaster;
use crate::target::{self, SentinelTarget, Target};

/// The URL schemes [`RedisStore::connect`] takes: one server, a cluster's seed nodes, a
/// Sentinel-monitored master, each with or without TLS (and a Unix socket).
pub const URL_SCHEMES: [&str; 7] = [
    "redis://",
    "rediss://",
    "redis+unix://",
    "redis+cluster://",
    "rediss+cluster://",
    "redis+sentinel://",
    "rediss+sentinel://",
];

/// Whether `url` has one of the [`URL_SCHEMES`]: a URL for [`RedisStore::connect`].
pub fn is_redis_url(url: &str) -> bool {
    URL_SCHEMES.iter().any(|scheme| url.starts_with(scheme))
}

/// The default key prefix: `knolyx-webhook:`.
pub const DEFAULT_KEY_PREFIX: &str = "knolyx-webhook:";
/// The default limit on one store operation, connection included: 2 seconds.
pub const DEFAULT_OPERATION_TIMEOUT: Duration = Duration::from_secs(2);
/// The default limit on opening one connection: 1 second.
pub const DEFAULT_CONNECTION_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a sentinel store waits, by default, for a replica to acknowledge each complete:
/// 100 ms (see [`RedisStoreBuilder::wait_for_replica`]).
pub const DEFAULT_SENTINEL_REPLICA_WAIT: Duration = Duration::from_millis(100);

/// The longest lease or retention sent to Redis (about 31,700 years): longer ones are
/// clamped, so that `PX` never overflows.
const MAX_TTL_MS: u64 = 1_000_000_000_000_000;

/// An [`IdempotencyStore`] on Redis, shared by every replica that points at the same
/// server, cluster or sentinel-monitored master. See the [crate docs](crate) for the URL
/// forms, the key layout and the server settings it needs.
///
/// Cloning is cheap: clones share the connections. Behind a `redis://` URL the store uses a
/// [`ConnectionManager`], which re-establishes the connection after the server went away;
/// behind `redis+cluster://`, a [`ClusterConnection`], which follows `MOVED` and `ASK` and
/// reconnects to the nodes; behind `redis+sentinel://`, a connection to the master the
/// sentinels name, found again after a failover.
///
/// `Debug` shows the key prefix, the timeouts and the servers' addresses, never their
/// credentials.
#[derive(Clone)]
pub struct RedisStore {
    conn: Connection,
    prefix: Arc<[u8]>,
    operation_timeout: Duration,
    /// How long a complete waits for a replica's acknowledgement (`WAIT 1 ms`), if at all.
    replica_wait: Option<Duration>,
    server: Option<Arc<str>>,
}

/// The connection of one topology.
#[derive(Clone)]
enum Connection {
    /// One server; `cluster_node` caches whether `INFO cluster` said it is a cluster node.
    Single {
        manager: ConnectionManager,
        cluster_node: Arc<OnceLock<bool>>,
    },
    Cluster(ClusterConnection),
    Sentinel(Arc<SentinelMaster>),
}

impl Connection {
    fn single(manager: ConnectionManager) -> Self {
        Self::Single {
            manager,
            cluster_node: Arc::default(),
        }
    }
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("server", &self.server)
            .field("key_prefix", &String::from_utf8_lossy(&self.prefix))
            .field("operation_timeout", &self.operation_timeout)
            .field("replica_wait", &self.replica_wait)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Connects to `url` with the default settings, and waits until the first connection is
    /// up. `url` is any of the forms of the [crate docs](crate#urls): `redis://…` or
    /// `rediss://…` (one server), `redis+cluster://…` (a Redis Cluster) or
    /// `redis+sentinel://…/MASTER_NAME` (a master behind Redis Sentinel).
    pub async fn connect(url: &str) -> StoreResult<Self> {
        Self::builder().connect(url).await
    }

    /// A store over a connection manager you configured yourself (one server), with the
    /// default key prefix and operation timeout.
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

    /// The connection manager of a store on one server (`redis://`, or
    /// [`build`](RedisStoreBuilder::build)), to share the connection with the rest of the
    /// app; `None` for a cluster or sentinel store.
    pub fn connection_manager(&self) -> Option<&ConnectionManager> {
        match &self.conn {
            Connection::Single { manager, .. } => Some(manager),
            Connection::Cluster(_) | Connection::Sentinel(_) => None,
        }
    }

    /// The key of `id`: the prefix, then the id's bytes.
    fn key(&self, id: &str) -> Vec<u8> {
        let mut key = Vec::with_capacity(self.prefix.len() + id.len());
        key.extend_from_slice(&self.prefix);
        key.extend_from_slice(id.as_bytes());
        key
    }

    /// Runs `script` on the node that holds `key`, within the operation timeout; with
    /// `acknowledged`, waits for a replica as configured (see [`run`]).
    async fn eval<T: FromRedisValue + Send>(
        &self,
        script: &Lua,
        key: &[u8],
        args: &[&[u8]],
        acknowledged: bool,
    ) -> StoreResult<T> {
        let wait = self.replica_wait.filter(|_| acknowledged);
        let limit = self.operation_timeout;
        match &self.conn {
            Connection::Single {
                manager,
                cluster_node,
            } => {
                let mut conn = manager.clone();
                let operation = async {
                    let is_cluster_node = match cluster_node.get() {
                        Some(known) => *known,
                        None => {
                            let found = is_cluster_node(&mut conn).await.map_err(error::map)?;
                            *cluster_node.get_or_init(|| found)
                        }
                    };
                    if is_cluster_node {
                        return Err(error::cluster_node(self.server.as_deref()));
                    }
                    run(&mut conn, script, key, args, wait)
                        .await
                        .map_err(error::map)
                };
                knolyx_webhook_core::store::within(limit, operation, |e| e).await
            }
            Connection::Cluster(conn) => {
                error::within(limit, run(&mut conn.clone(), script, key, args, None)).await
            }
            Connection::Sentinel(master) => {
                // The generation of the connection used (0: none yet), to forget it when it
                // failed: the next operation asks the sentinels for the master again.
                let used = AtomicU64::new(0);
                let result = error::within(limit, async {
                    let (generation, mut conn) = master.connection().await?;
                    used.store(generation, Ordering::Relaxed);
                    run(&mut conn, script, key, args, wait).await
                })
                .await;
                if let Err(e) = &result
                    && matches!(
                        e.kind(),
                        StoreErrorKind::Unavailable
                            | StoreErrorKind::Refused
                            | StoreErrorKind::Timeout
                    )
                {
                    master.forget(used.load(Ordering::Relaxed));
                }
                result
            }
        }
    }

    /// Asks the server of a `redis://` store whether it is a cluster node, and refuses it if
    /// so (start-up check of [`RedisStoreBuilder::connect`]).
    async fn check_topology(&self) -> StoreResult<()> {
        let Connection::Single {
            manager,
            cluster_node,
        } = &self.conn
        else {
            return Ok(());
        };
        let found = error::within(
            self.operation_timeout,
            is_cluster_node(&mut manager.clone()),
        )
        .await?;
        if *cluster_node.get_or_init(|| found) {
            return Err(error::cluster_node(self.server.as_deref()));
        }
        Ok(())
    }
}

/// Whether the server says `cluster_enabled:1` in `INFO cluster`. A server that refuses
/// `INFO` (an ACL without it, a proxy) is taken for a single server; should it be a
/// cluster node after all, its `MOVED` replies say so ([`error::map`]).
async fn is_cluster_node(conn: &mut impl ConnectionLike) -> RedisResult<bool> {
    match redis::cmd("INFO")
        .arg("cluster")
        .query_async::<String>(conn)
        .await
    {
        Ok(info) => Ok(info.lines().any(|line| line.trim() == "cluster_enabled:1")),
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::Server(ServerErrorKind::ResponseError | ServerErrorKind::NoPerm)
            ) =>
        {
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

/// Runs `script` in one round trip (`EVALSHA`); only when the node does not know the
/// script yet (first use, or after a restart or `SCRIPT FLUSH`) a second one sends it whole
/// (`EVAL`, which also caches it). In a cluster both go to the node of `key`, so each node
/// loads the scripts for itself.
///
/// With `wait`, `WAIT 1 <wait>` is pipelined after the script (still one round trip): the
/// reply comes once a replica acknowledged the write, or after `wait` without one.
async fn run<T: FromRedisValue>(
    conn: &mut impl ConnectionLike,
    script: &Lua,
    key: &[u8],
    args: &[&[u8]],
    wait: Option<Duration>,
) -> RedisResult<T> {
    let cmd = |name: &str, first: &[u8]| {
        let mut cmd = redis::cmd(name);
        cmd.arg(first).arg(1).arg(key);
        for arg in args {
            cmd.arg(*arg);
        }
        cmd
    };
    let no_script = |e: &RedisError| e.kind() == ErrorKind::Server(ServerErrorKind::NoScript);
    let evalsha = cmd("EVALSHA", script.hash().as_bytes());
    let Some(wait) = wait else {
        return match evalsha.query_async::<T>(conn).await {
            Err(e) if no_script(&e) => {
                cmd("EVAL", script.body.as_bytes())
                    .query_async::<T>(conn)
                    .await
            }
            other => other,
        };
    };
    // WAIT 0 would block forever: at least 1 ms.
    let wait = ttl_millis(wait, MAX_TTL_MS);
    let acknowledged = |script: redis::Cmd| {
        let mut pipe = redis::pipe();
        pipe.add_command(script)
            .cmd("WAIT")
            .arg(1)
            .arg(wait)
            .ignore_errors();
        pipe
    };
    let first = |replies: Vec<Value>| -> RedisResult<T> {
        let reply = replies.into_iter().next().ok_or_else(|| {
            RedisError::from((ErrorKind::UnexpectedReturnType, "no reply to the script"))
        })?;
        Ok(redis::from_redis_value(reply.extract_error()?)?)
    };
    match first(acknowledged(evalsha).query_async(conn).await?) {
        Err(e) if no_script(&e) => first(
            acknowledged(cmd("EVAL", script.body.as_bytes()))
                .query_async(conn)
                .await?,
        ),
        other => other,
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
            .eval::<i64>(
                &scripts::CLAIM,
                &key,
                &[value.as_bytes(), lease.as_bytes()],
                false,
            )
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
            .eval::<i64>(
                &scripts::COMPLETE,
                &key,
                &[value.as_bytes(), retention.as_bytes()],
                true,
            )
            .await?;
        settled(n)
    }

    async fn release(&self, id: &str, owner: OwnerToken) -> StoreResult<SettleOutcome> {
        let value = in_progress(owner);
        let key = self.key(id);
        let n = self
            .eval::<i64>(&scripts::RELEASE, &key, &[value.as_bytes()], false)
            .await?;
        settled(n)
    }

    async fn inspect(&self, id: &str) -> StoreResult<IdState> {
        let key = self.key(id);
        let (state, ttl_ms) = self
            .eval::<(i64, i64)>(&scripts::INSPECT, &key, &[], false)
            .await?;
        // PTTL: -1 without an expiry (never set by this store), taken as none left.
        let left = Duration::from_millis(u64::try_from(ttl_ms).unwrap_or(0));
        match state {
            0 => Ok(IdState::Absent),
            1 => Ok(IdState::InProgress { lease_left: left }),
            2 => Ok(IdState::Completed {
                retention_left: left,
            }),
            other => Err(unexpected(other)),
        }
    }

    async fn force_release(&self, id: &str) -> StoreResult<bool> {
        let key = self.key(id);
        let n = self
            .eval::<i64>(&scripts::FORCE_RELEASE, &key, &[], true)
            .await?;
        Ok(settled(n)? == SettleOutcome::Settled)
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

/// Builds a [`RedisStore`]: key prefix, timeouts, reconnection, replica acknowledgement.
///
/// ```no_run
/// use std::time::Duration;
/// use knolyx_webhook_redis::RedisStore;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let store = RedisStore::builder()
///     .key_prefix("billing-app:knolyx:")
///     .operation_timeout(Duration::from_millis(500))
///     .connect("redis+sentinel://10.0.0.1:26379,10.0.0.2:26379,10.0.0.3:26379/billing")
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
    /// `None`: the topology's default.
    replica_wait: Option<Option<Duration>>,
}

impl Default for RedisStoreBuilder {
    fn default() -> Self {
        Self {
            prefix: DEFAULT_KEY_PREFIX.as_bytes().to_vec(),
            operation_timeout: DEFAULT_OPERATION_TIMEOUT,
            connection_timeout: DEFAULT_CONNECTION_TIMEOUT,
            response_timeout: None,
            reconnect_retries: 3,
            replica_wait: None,
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
    /// [`StoreErrorKind::Timeout`] and the pipeline answers 503.
    pub fn operation_timeout(mut self, limit: Duration) -> Self {
        self.operation_timeout = limit;
        self
    }

    /// The limit on opening one connection (default [`DEFAULT_CONNECTION_TIMEOUT`]), to a
    /// server, a cluster node, a sentinel or a master. Not applied by
    /// [`build`](Self::build), whose manager has its own.
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

    /// How many times one reconnection of a `redis://` store retries, with exponential
    /// backoff from 100 ms capped at 1 s, before giving up until the next operation
    /// (default 3). Not applied by [`build`](Self::build); a cluster store retries as the
    /// redis crate's cluster client does, within the operation timeout, and a sentinel store
    /// asks the sentinels again on the next operation.
    pub fn reconnect_retries(mut self, retries: usize) -> Self {
        self.reconnect_retries = retries;
        self
    }

    /// After each complete, wait up to `limit` for one replica to acknowledge it (`WAIT 1
    /// <ms>`, pipelined with the complete: still one round trip), so that a failover right
    /// after it does not lose it; `None` does not wait. The complete is applied either way:
    /// past `limit` without a replica it still counts as settled.
    ///
    /// Default: [`DEFAULT_SENTINEL_REPLICA_WAIT`] for a `redis+sentinel://` store, whose
    /// point is failing over to a replica; `None` for a `redis://` store (set it if a
    /// replica stands behind a failover endpoint). A cluster store never waits (`WAIT` is
    /// not routed with the key): see the [crate docs](crate#failover-and-replication).
    ///
    /// `WAIT` holds the connection until it answers, so operations sharing it queue behind
    /// it: a healthy replica answers within a round trip.
    pub fn wait_for_replica(mut self, limit: Option<Duration>) -> Self {
        self.replica_wait = Some(limit);
        self
    }

    /// Connects to `url` and waits until the first connection is up (within the
    /// connection timeout and the reconnection retries). `url` is any of the forms of the
    /// [crate docs](crate#urls).
    ///
    /// A `redis://` URL at a Redis Cluster node is refused here, with an error that says to
    /// use `redis+cluster://`: such a store would fail every key that hashes to another node.
    pub async fn connect(self, url: &str) -> StoreResult<RedisStore> {
        match target::parse(url)? {
            Target::Single(client) => self.connect_with(client).await,
            Target::Cluster { nodes, shown } => {
                let client = self.cluster_client(nodes)?;
                let conn =
                    error::within(self.operation_timeout, client.get_async_connection()).await?;
                Ok(self.finish_cluster(conn, shown))
            }
            Target::Sentinel(target) => {
                let store = self.sentinel(target)?;
                if let Connection::Sentinel(master) = &store.conn {
                    error::within(store.operation_timeout, master.connection()).await?;
                }
                Ok(store)
            }
        }
    }

    /// A store for `url` (any of the forms of the [crate docs](crate#urls)) that connects on
    /// its first operation: the application can start while Redis is down (its deliveries
    /// get 503 until Redis is up). Call it within a Tokio runtime (the connections spawn
    /// tasks).
    ///
    /// A `redis://` URL at a Redis Cluster node fails every operation, saying to use
    /// `redis+cluster://`.
    pub fn connect_lazy(self, url: &str) -> StoreResult<RedisStore> {
        match target::parse(url)? {
            Target::Single(client) => self.connect_lazy_with(client),
            Target::Cluster { nodes, shown } => {
                let conn = self
                    .cluster_client(nodes)?
                    .get_pending_async_connection_with_config(Default::default());
                Ok(self.finish_cluster(conn, shown))
            }
            Target::Sentinel(target) => self.sentinel(target),
        }
    }

    /// Like [`connect`](Self::connect), with a client you opened (TLS settings, etc.) for
    /// one server.
    pub async fn connect_with(self, client: Client) -> StoreResult<RedisStore> {
        let server = server_name(&client);
        let manager = ConnectionManager::new_with_config(client, self.manager_config())
            .await
            .map_err(error::map)?;
        let store = self.finish(Connection::single(manager), Some(server), None);
        store.check_topology().await?;
        Ok(store)
    }

    /// Like [`connect_lazy`](Self::connect_lazy), with a client you opened for one server.
    pub fn connect_lazy_with(self, client: Client) -> StoreResult<RedisStore> {
        let server = server_name(&client);
        let manager = ConnectionManager::new_lazy_with_config(client, self.manager_config())
            .map_err(error::map)?;
        Ok(self.finish(Connection::single(manager), Some(server), None))
    }

    /// A store over a connection manager you configured (one server): only the key prefix,
    /// the operation timeout and the replica wait of this builder apply.
    pub fn build(self, manager: ConnectionManager) -> RedisStore {
        self.finish(Connection::single(manager), None, None)
    }

    fn cluster_client(&self, nodes: Vec<redis::ConnectionInfo>) -> StoreResult<ClusterClient> {
        let mut client = ClusterClient::builder(nodes).connection_timeout(self.connection_timeout);
        if let Some(limit) = self.response_timeout {
            client = client.response_timeout(limit);
        }
        client.build().map_err(error::map)
    }

    fn finish_cluster(mut self, conn: ClusterConnection, shown: String) -> RedisStore {
        // WAIT is not routed with the key in a cluster: a cluster store never waits.
        self.replica_wait = Some(None);
        self.finish(Connection::Cluster(conn), Some(shown.into()), None)
    }

    /// A sentinel store, not connected yet.
    fn sentinel(self, target: SentinelTarget) -> StoreResult<RedisStore> {
        let client = SentinelClient::build(
            target.sentinels,
            target.master,
            Some(target.node),
            SentinelServerType::Master,
        )
        .map_err(error::map)?;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.connection_timeout))
            .set_response_timeout(self.response_timeout);
        let master = SentinelMaster::new(client, config);
        Ok(self.finish(
            Connection::Sentinel(Arc::new(master)),
            Some(target.shown.into()),
            Some(DEFAULT_SENTINEL_REPLICA_WAIT),
        ))
    }

    fn manager_config(&self) -> ConnectionManagerConfig {
        ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.connection_timeout))
            .set_response_timeout(self.response_timeout)
            .set_number_of_retries(self.reconnect_retries)
            .set_max_delay(Duration::from_secs(1))
    }

    /// The store; `replica_wait` is the topology's default.
    fn finish(
        self,
        conn: Connection,
        server: Option<Arc<str>>,
        replica_wait: Option<Duration>,
    ) -> RedisStore {
        RedisStore {
            conn,
            prefix: self.prefix.into(),
            operation_timeout: self.operation_timeout,
            replica_wait: self.replica_wait.unwrap_or(replica_wait),
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

    #[tokio::test]
    async fn cluster_and_sentinel_urls_are_understood_and_debug_hides_their_credentials() {
        for (url, shown_as) in [
            (
                "redis+cluster://user:hunter2-secret@127.0.0.1:1,127.0.0.1:2",
                "cluster 127.0.0.1:1,127.0.0.1:2",
            ),
            (
                "redis+sentinel://user:hunter2-secret@127.0.0.1:1,127.0.0.1:2/billing",
                "sentinel 127.0.0.1:1,127.0.0.1:2/billing",
            ),
            (
                "redis+sentinel://127.0.0.1:1/billing/4",
                "sentinel 127.0.0.1:1/billing/4",
            ),
        ] {
            let store = RedisStore::builder()
                .connect_lazy(url)
                .unwrap_or_else(|e| panic!("{url}: {e:?}"));
            let shown = format!("{store:?}");
            assert!(!shown.contains("hunter2"), "{shown}");
            assert!(shown.contains(shown_as), "{shown}");
        }
    }

    #[tokio::test]
    async fn url_errors_name_the_problem_and_never_the_password() {
        for (url, problem) in [
            ("memcached://user:hunter2-secret@127.0.0.1:1", "scheme"),
            (
                "redis+sentinel://user:hunter2-secret@127.0.0.1:1",
                "master name",
            ),
            (
                "redis+sentinel://user:hunter2-secret@127.0.0.1:1/",
                "master name",
            ),
            ("redis+cluster://user:hunter2-secret@", "no host"),
            (
                "redis+cluster://user:hunter2-secret@127.0.0.1:1,",
                "empty host",
            ),
            ("redis+cluster://user:hunter2-secret@127.0.0.1:x", "port"),
            (
                "redis+cluster://user:hunter2-secret@127.0.0.1:1/3",
                "database",
            ),
            (
                "redis+cluster://user:hunter2-secret@127.0.0.1:1?protocol=3",
                "query",
            ),
            (
                "redis+sentinel://user:hunter2-secret@127.0.0.1:1/m/x",
                "database",
            ),
        ] {
            let err = RedisStore::builder().connect_lazy(url).expect_err(url);
            let mut shown = format!("{err} {err:?}");
            let mut source = std::error::Error::source(&err);
            while let Some(s) = source {
                shown.push_str(&format!(" {s} {s:?}"));
                source = s.source();
            }
            assert!(!shown.contains("hunter2"), "{url}: {shown}");
            assert!(shown.contains(problem), "{url}: {shown}");
        }
    }
}
