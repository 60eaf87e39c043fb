//! Test support (feature `testing`): private Redis servers on free loopback ports, for tests
//! of what happens when Redis goes away and comes back ([`PrivateRedis`]), of a Redis Cluster
//! ([`PrivateCluster`]) and of Redis Sentinel failover ([`PrivateSentinel`]).
//!
//! Every process runs in its own temporary directory and is killed by pid on drop; none
//! touches the machine's own Redis. They need `redis-server` (and `redis-cli` for the
//! cluster) on the `PATH`: check [`redis_server_installed`] first to skip a test with a
//! notice where they are missing.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A port nothing listens on (bound, then released).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().unwrap().port()
}

/// A private `redis-server` child on its own port (no persistence), killed on drop.
///
/// Needs `redis-server` on the `PATH`.
///
/// ```no_run
/// # async fn run() {
/// use knolyx_webhook_redis::testing::PrivateRedis;
///
/// let mut server = PrivateRedis::start().await;
/// let url = server.url(); // redis://127.0.0.1:PORT/
/// server.kill(); // the store now answers Unavailable or Timeout
/// server.restart().await; // same port: the store recovers by itself
/// # let _ = url;
/// # }
/// ```
#[derive(Debug)]
pub struct PrivateRedis {
    /// The port it listens on (127.0.0.1).
    pub port: u16,
    child: Option<Child>,
}

impl PrivateRedis {
    /// Starts a server on a free port and waits until it answers PING.
    pub async fn start() -> Self {
        let mut server = Self {
            port: free_port(),
            child: None,
        };
        server.restart().await;
        server
    }

    /// Its URL, `redis://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Starts the server (again) on its port and waits until it answers PING.
    pub async fn restart(&mut self) {
        assert!(self.child.is_none(), "the server is running");
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed to run these tests");
        self.child = Some(child);
        let port = self.port;
        wait_until("redis-server answers PING", || pong(port)).await;
    }

    /// Kills the server (SIGKILL: no goodbye to the clients) and reaps it.
    pub fn kill(&mut self) {
        reap(&mut self.child);
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn pong(port: u16) -> bool {
    let attempt = async {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        stream.write_all(b"PING\r\n").await?;
        let mut buf = [0u8; 7];
        stream.read_exact(&mut buf).await?;
        Ok::<_, std::io::Error>(&buf == b"+PONG\r\n")
    };
    matches!(
        tokio::time::timeout(Duration::from_millis(500), attempt).await,
        Ok(Ok(true))
    )
}

/// Whether `redis-server` and `redis-cli` can be run. When they cannot, it prints a notice
/// and returns `false` (the test skips), unless `KNOLYX_TEST_REQUIRE_SERVICES=1`, where it
/// panics (CI must run these tests). Mark such tests `#[ignore = "needs redis-server …"]`
/// too, so that a plain `cargo test` reports them as ignored rather than passed.
pub fn redis_server_installed() -> bool {
    let runs = |program: &str| {
        Command::new(program)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    };
    if runs("redis-server") && runs("redis-cli") {
        return true;
    }
    assert!(
        std::env::var("KNOLYX_TEST_REQUIRE_SERVICES").as_deref() != Ok("1"),
        "redis-server and redis-cli are not installed, and KNOLYX_TEST_REQUIRE_SERVICES=1 requires them"
    );
    eprintln!("skipping: redis-server or redis-cli is not installed");
    false
}

/// A directory of its own under the system's temporary directory, removed on drop.
#[derive(Debug)]
struct TempDir(PathBuf);

impl TempDir {
    fn new(what: &str) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!(
            "knolyx-webhook-redis-{what}-{}-{n}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create a temporary directory");
        Self(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One `redis-server` child (data node or sentinel) on a loopback port, killed by pid on
/// drop.
#[derive(Debug)]
struct Node {
    port: u16,
    child: Option<Child>,
}

impl Node {
    /// Writes `config` to `<dir>/<name>.conf` and starts `redis-server` on it (`extra`
    /// arguments after the file), then waits until it answers PING.
    async fn start(dir: &Path, name: &str, port: u16, config: &str, extra: &[&str]) -> Self {
        let file = dir.join(format!("{name}.conf"));
        std::fs::write(&file, config).expect("write a redis config file");
        let child = Command::new("redis-server")
            .arg(&file)
            .args(extra)
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed to run these tests");
        let node = Self {
            port,
            child: Some(child),
        };
        wait_until("redis-server answers PING", || pong(port)).await;
        node
    }

    fn kill(&mut self) {
        reap(&mut self.child);
    }
}

/// Kills `child` (SIGKILL, by pid), if it runs, and waits for it.
fn reap(child: &mut Option<Child>) {
    if let Some(mut child) = child.take() {
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The common settings of a private data node: loopback, no persistence.
fn data_node_config(port: u16, dir: &Path) -> String {
    format!(
        "port {port}\nbind 127.0.0.1\ndir {}\nsave \"\"\nappendonly no\ndaemonize no\n",
        dir.display()
    )
}

/// `127.0.0.1:PORT` of each port.
fn hosts(ports: &[u16]) -> Vec<String> {
    ports.iter().map(|p| format!("127.0.0.1:{p}")).collect()
}

/// Polls `check` every 20 ms until it holds, for at most 30 s (then panics with `what`).
async fn wait_until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs `cmd` on the server on `port` (a fresh connection); `None` when it fails.
async fn query<T: redis::FromRedisValue>(port: u16, cmd: &redis::Cmd) -> Option<T> {
    let attempt = async {
        let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).ok()?;
        let mut conn = client.get_multiplexed_async_connection().await.ok()?;
        cmd.query_async(&mut conn).await.ok()
    };
    tokio::time::timeout(Duration::from_secs(2), attempt)
        .await
        .ok()
        .flatten()
}

/// A private Redis Cluster of 3 masters (no replicas) on free loopback ports, each node in
/// its own directory with its own `nodes.conf`; every node is killed on drop.
///
/// Needs `redis-server` and `redis-cli` on the `PATH` ([`redis_server_installed`]).
///
/// ```no_run
/// # async fn run() {
/// use knolyx_webhook_redis::RedisStore;
/// use knolyx_webhook_redis::testing::PrivateCluster;
///
/// let cluster = PrivateCluster::start().await;
/// // redis+cluster://127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3
/// let store = RedisStore::connect(&cluster.url()).await.unwrap();
/// # let _ = store;
/// # }
/// ```
#[derive(Debug)]
pub struct PrivateCluster {
    nodes: Vec<Node>,
    _dir: TempDir,
}

impl PrivateCluster {
    /// Starts 3 cluster-enabled servers, joins them with `redis-cli --cluster create`
    /// (the 16384 slots split between them) and waits until every node reports
    /// `cluster_state:ok`.
    pub async fn start() -> Self {
        let dir = TempDir::new("cluster");
        let mut nodes = Vec::new();
        for i in 0..3 {
            let node_dir = dir.path().join(format!("node-{i}"));
            std::fs::create_dir_all(&node_dir).expect("create a node directory");
            let port = free_port();
            let config = format!(
                "{}cluster-enabled yes\ncluster-config-file nodes.conf\ncluster-port {}\ncluster-node-timeout 5000\n",
                data_node_config(port, &node_dir),
                free_port()
            );
            nodes.push(Node::start(&node_dir, "redis", port, &config, &[]).await);
        }
        let ports: Vec<u16> = nodes.iter().map(|n| n.port).collect();
        let created = tokio::process::Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(hosts(&ports))
            .arg("--cluster-yes")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await
            .expect("redis-cli must be installed to run these tests");
        assert!(created.success(), "redis-cli --cluster create failed");
        let cluster = Self { nodes, _dir: dir };
        for port in cluster.ports() {
            wait_until(
                "every cluster node reports cluster_state:ok",
                || async move {
                    query::<String>(port, redis::cmd("CLUSTER").arg("INFO"))
                        .await
                        .is_some_and(|info| info.contains("cluster_state:ok"))
                },
            )
            .await;
        }
        // Each node must also know the whole slot map, or a client seeded at it would get
        // an incomplete one.
        for port in cluster.ports() {
            wait_until("every node knows all 3 masters' slots", || async move {
                query::<redis::Value>(port, &redis::cmd("CLUSTER").arg("SLOTS").clone())
                    .await
                    .is_some_and(
                        |slots| matches!(slots, redis::Value::Array(ref a) if a.len() == 3),
                    )
            })
            .await;
        }
        cluster
    }

    /// The masters' ports (127.0.0.1).
    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(|n| n.port).collect()
    }

    /// The store URL with every node as a seed: `redis+cluster://127.0.0.1:P1,…`.
    pub fn url(&self) -> String {
        format!("redis+cluster://{}", hosts(&self.ports()).join(","))
    }

    /// A plain `redis://127.0.0.1:PORT/` URL of one node (`index` 0, 1 or 2).
    pub fn node_url(&self, index: usize) -> String {
        format!("redis://127.0.0.1:{}/", self.nodes[index].port)
    }
}

/// The name under which the sentinels of [`PrivateSentinel`] monitor their master.
pub const SENTINEL_MASTER_NAME: &str = "knolyx-master";

/// A private Redis Sentinel setup on free loopback ports: a master, one replica and 3
/// sentinels (quorum 2, `down-after-milliseconds` 1000, `failover-timeout` 5000: a failover
/// takes a few seconds), each in its own directory; every process is killed on drop.
///
/// Needs `redis-server` on the `PATH` ([`redis_server_installed`]).
///
/// ```no_run
/// # async fn run() {
/// use knolyx_webhook_redis::RedisStore;
/// use knolyx_webhook_redis::testing::PrivateSentinel;
///
/// let mut sentinel = PrivateSentinel::start().await;
/// // redis+sentinel://127.0.0.1:S1,127.0.0.1:S2,127.0.0.1:S3/knolyx-master
/// let store = RedisStore::connect(&sentinel.url()).await.unwrap();
/// sentinel.kill_master();
/// let promoted = sentinel.wait_for_promotion().await; // the replica's port
/// # let _ = (store, promoted);
/// # }
/// ```
#[derive(Debug)]
pub struct PrivateSentinel {
    master: Node,
    replica: Node,
    sentinels: Vec<Node>,
    _dir: TempDir,
}

impl PrivateSentinel {
    /// Starts the master, the replica (`replicaof` the master) and the 3 sentinels, and
    /// waits until the replica is in sync and every sentinel knows the replica and the two
    /// other sentinels (so that a failover can be agreed on).
    pub async fn start() -> Self {
        let dir = TempDir::new("sentinel");
        let master_port = free_port();
        let master = Node::start(
            dir.path(),
            "master",
            master_port,
            &data_node_config(master_port, dir.path()),
            &[],
        )
        .await;
        let replica_port = free_port();
        let replica = Node::start(
            dir.path(),
            "replica",
            replica_port,
            &format!(
                "{}replicaof 127.0.0.1 {master_port}\n",
                data_node_config(replica_port, dir.path())
            ),
            &[],
        )
        .await;
        wait_until("the replica is in sync with the master", || async {
            query::<String>(replica_port, redis::cmd("INFO").arg("replication"))
                .await
                .is_some_and(|info| info.contains("master_link_status:up"))
        })
        .await;
        let mut sentinels = Vec::new();
        for i in 0..3 {
            let port = free_port();
            let config = format!(
                "port {port}\nbind 127.0.0.1\ndir {dir}\ndaemonize no\n\
                 sentinel monitor {name} 127.0.0.1 {master_port} 2\n\
                 sentinel down-after-milliseconds {name} 1000\n\
                 sentinel failover-timeout {name} 5000\n\
                 sentinel parallel-syncs {name} 1\n",
                dir = dir.path().display(),
                name = SENTINEL_MASTER_NAME,
            );
            sentinels.push(
                Node::start(
                    dir.path(),
                    &format!("sentinel-{i}"),
                    port,
                    &config,
                    &["--sentinel"],
                )
                .await,
            );
        }
        let setup = Self {
            master,
            replica,
            sentinels,
            _dir: dir,
        };
        for port in setup.sentinel_ports() {
            wait_until(
                "every sentinel knows the replica and 2 other sentinels",
                || async move {
                    let master = query::<Vec<String>>(
                        port,
                        redis::cmd("SENTINEL")
                            .arg("MASTER")
                            .arg(SENTINEL_MASTER_NAME),
                    )
                    .await
                    .unwrap_or_default();
                    let field = |name: &str| {
                        master
                            .chunks(2)
                            .find(|pair| pair[0] == name)
                            .and_then(|pair| pair.get(1).cloned())
                    };
                    field("num-slaves").as_deref() == Some("1")
                        && field("num-other-sentinels").as_deref() == Some("2")
                },
            )
            .await;
        }
        setup
    }

    /// The store URL: `redis+sentinel://127.0.0.1:S1,127.0.0.1:S2,127.0.0.1:S3/knolyx-master`.
    pub fn url(&self) -> String {
        let sentinels = hosts(&self.sentinel_ports()).join(",");
        format!("redis+sentinel://{sentinels}/{SENTINEL_MASTER_NAME}")
    }

    /// The sentinels' ports.
    pub fn sentinel_ports(&self) -> Vec<u16> {
        self.sentinels.iter().map(|n| n.port).collect()
    }

    /// The port of the master it started with.
    pub fn master_port(&self) -> u16 {
        self.master.port
    }

    /// The port of the replica it started with (the master after a failover).
    pub fn replica_port(&self) -> u16 {
        self.replica.port
    }

    /// Kills the master (SIGKILL, by pid) and reaps it: the sentinels fail over to the
    /// replica after `down-after-milliseconds`.
    pub fn kill_master(&mut self) {
        self.master.kill();
    }

    /// Waits (polling, at most 30 s) until a sentinel answers `SENTINEL
    /// get-master-addr-by-name` with the replica's address, and returns its port.
    pub async fn wait_for_promotion(&self) -> u16 {
        let sentinel = self.sentinels[0].port;
        let replica = self.replica.port;
        wait_until("the sentinels promote the replica", || async move {
            query::<(String, String)>(
                sentinel,
                redis::cmd("SENTINEL")
                    .arg("get-master-addr-by-name")
                    .arg(SENTINEL_MASTER_NAME),
            )
            .await
            .is_some_and(|(_, port)| port == replica.to_string())
        })
        .await;
        replica
    }
}
