//! Test support (feature `testing`): a private PgBouncer in transaction mode in front of a
//! PostgreSQL server, for tests of the store (or of your own code) behind a transaction
//! pooler, as on most managed platforms.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::Connection;
use sqlx::postgres::PgConnectOptions;
use tokio::sync::oneshot;

/// The server connections PgBouncer keeps per database and user by default: 2, so that a
/// client pool of a few connections really shares them and its transactions switch server
/// connections.
pub const DEFAULT_POOL_SIZE: u32 = 2;

/// The `pgbouncer` program: on the `PATH`, or where Debian installs it (`/usr/sbin`, often
/// not on a user's `PATH`).
pub fn pgbouncer_program() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default();
    on_path
        .into_iter()
        .chain(["/usr/sbin", "/usr/local/sbin"].map(PathBuf::from))
        .map(|dir| dir.join("pgbouncer"))
        .find(|program| program.is_file())
}

/// A private PgBouncer child on a free loopback port, in `pool_mode = transaction`, in front
/// of one database of an upstream PostgreSQL server; killed (by its pid) on drop.
///
/// It writes its `pgbouncer.ini` and `userlist.txt` into a directory of its own under the
/// system's temporary directory (removed on drop): `auth_type = trust` for the upstream URL's
/// user, `ignore_startup_parameters = extra_float_digits` (sqlx sends it), and
/// [`DEFAULT_POOL_SIZE`] server connections unless told otherwise. Clients connect to the
/// database of the same name as upstream, with the same user and no password; PgBouncer
/// logs in upstream as that user without a password (trust or peer authentication there,
/// as on a test machine). When started as root (PgBouncer refuses to run as root) it runs
/// as `nobody` (`-u nobody`).
///
/// ```no_run
/// # async fn run() {
/// use knolyx_webhook_postgres::testing::PrivatePgBouncer;
///
/// let upstream = "postgres://postgres@127.0.0.1:5432/test";
/// let Some(bouncer) = PrivatePgBouncer::start(upstream).await else {
///     return; // pgbouncer is not installed: skipped (printed)
/// };
/// let pool = sqlx::PgPool::connect(&bouncer.url()).await.unwrap();
/// # let _ = pool;
/// # }
/// ```
#[derive(Debug)]
pub struct PrivatePgBouncer {
    port: u16,
    user: String,
    database: String,
    dir: PathBuf,
    child: Child,
    log: Arc<Mutex<String>>,
}

impl PrivatePgBouncer {
    /// Starts PgBouncer in front of `upstream_url` with [`DEFAULT_POOL_SIZE`] server
    /// connections, and waits until a client can run a query through it.
    ///
    /// When `pgbouncer` is not installed, prints `skipping: pgbouncer is not installed` and
    /// returns `None`, unless `KNOLYX_TEST_REQUIRE_SERVICES=1` is set (as CI does): then it
    /// panics, as `knolyx_webhook_core::testing::service_url` does. It panics
    /// too when PgBouncer does not start or cannot reach upstream (with its log).
    pub async fn start(upstream_url: &str) -> Option<Self> {
        Self::start_with_pool_size(upstream_url, DEFAULT_POOL_SIZE).await
    }

    /// [`start`](Self::start) with `pool_size` server connections (`default_pool_size`).
    pub async fn start_with_pool_size(upstream_url: &str, pool_size: u32) -> Option<Self> {
        let Some(program) = pgbouncer_program() else {
            if std::env::var("KNOLYX_TEST_REQUIRE_SERVICES").as_deref() == Ok("1") {
                panic!(
                    "pgbouncer is not installed (looked on the PATH and in /usr/sbin), and \
                     KNOLYX_TEST_REQUIRE_SERVICES=1 requires it"
                );
            }
            eprintln!("skipping: pgbouncer is not installed (apt-get install pgbouncer)");
            return None;
        };
        let upstream = PgConnectOptions::from_str(upstream_url).expect("a postgres URL");
        // A port found free may be taken before PgBouncer binds it: try a few.
        let mut last_log = String::new();
        for _ in 0..3 {
            let (bouncer, is_up) = Self::spawn(&program, &upstream, pool_size);
            match bouncer.ready(is_up).await {
                Ok(()) => return Some(bouncer),
                Err(log) => last_log = log,
            }
        }
        panic!("pgbouncer did not start: {last_log}");
    }

    fn spawn(
        program: &Path,
        upstream: &PgConnectOptions,
        pool_size: u32,
    ) -> (Self, oneshot::Receiver<()>) {
        static STARTED: AtomicU32 = AtomicU32::new(0);
        let port = free_port();
        let user = upstream.get_username().to_owned();
        let database = upstream
            .get_database()
            .unwrap_or(upstream.get_username())
            .to_owned();
        let dir = std::env::temp_dir().join(format!(
            "knolyx-pgbouncer-{}-{}-{port}",
            std::process::id(),
            STARTED.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("create the pgbouncer directory");
        let userlist = dir.join("userlist.txt");
        std::fs::write(&userlist, format!("{} \"\"\n", quoted(&user))).expect("userlist");
        let ini = dir.join("pgbouncer.ini");
        let config = format!(
            "[databases]\n\
             {database} = host={host} port={upstream_port} dbname={database}\n\
             \n\
             [pgbouncer]\n\
             listen_addr = 127.0.0.1\n\
             listen_port = {port}\n\
             unix_socket_dir =\n\
             auth_type = trust\n\
             auth_file = {userlist}\n\
             pool_mode = transaction\n\
             default_pool_size = {pool_size}\n\
             max_client_conn = 500\n\
             ignore_startup_parameters = extra_float_digits\n\
             log_connections = 0\n\
             log_disconnections = 0\n",
            host = upstream.get_host(),
            upstream_port = upstream.get_port(),
            userlist = userlist.display(),
        );
        std::fs::write(&ini, config).expect("pgbouncer.ini");

        let mut command = Command::new(program);
        if running_as_root() {
            command.args(["-u", "nobody"]);
        }
        let mut child = command
            .arg(&ini)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run pgbouncer");
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().expect("pgbouncer's stderr");
        let (up, is_up) = oneshot::channel();
        let lines = Arc::clone(&log);
        std::thread::spawn(move || {
            let mut up = Some(up);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let mut log = lines.lock().unwrap_or_else(|e| e.into_inner());
                log.push_str(&line);
                log.push('\n');
                // Logged once listening: the signal that it accepts connections.
                if line.contains("process up")
                    && let Some(up) = up.take()
                {
                    let _ = up.send(());
                }
            }
            // End of its stderr: it exited (`up`, if unsent, is dropped: `is_up` fails).
        });
        let bouncer = Self {
            port,
            user,
            database,
            dir,
            child,
            log,
        };
        (bouncer, is_up)
    }

    /// Waits until PgBouncer says it is up, then runs a query through it (to upstream);
    /// fails with its log when it exited first or took more than 10 seconds.
    async fn ready(&self, is_up: oneshot::Receiver<()>) -> Result<(), String> {
        match tokio::time::timeout(Duration::from_secs(10), is_up).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Err(format!("pgbouncer exited:\n{}", self.log())),
            Err(_) => return Err(format!("pgbouncer not up in 10 s:\n{}", self.log())),
        }
        let query = async {
            let mut conn = sqlx::PgConnection::connect_with(&self.connect_options()).await?;
            sqlx::raw_sql("SELECT 1").execute(&mut conn).await?;
            conn.close().await
        };
        match tokio::time::timeout(Duration::from_secs(10), query).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!(
                "a query through pgbouncer failed: {e}\n{}",
                self.log()
            )),
            Err(_) => Err(format!(
                "a query through pgbouncer took over 10 s\n{}",
                self.log()
            )),
        }
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its URL: `postgres://USER@127.0.0.1:PORT/DATABASE`, the upstream URL's user and
    /// database.
    pub fn url(&self) -> String {
        format!(
            "postgres://{}@127.0.0.1:{}/{}",
            self.user, self.port, self.database
        )
    }

    /// Connect options for a client of it (the same as [`url`](Self::url)).
    pub fn connect_options(&self) -> PgConnectOptions {
        PgConnectOptions::new()
            .host("127.0.0.1")
            .port(self.port)
            .username(&self.user)
            .database(&self.database)
    }

    /// What PgBouncer has logged so far (its standard error), for a test's failure message.
    pub fn log(&self) -> String {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Drop for PrivatePgBouncer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A port nothing listens on (bound, then released).
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("a local address").port()
}

/// `text` as a double-quoted name in PgBouncer's userlist.
fn quoted(text: &str) -> String {
    format!("\"{}\"", text.replace('"', "\"\""))
}

fn running_as_root() -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
    }
    #[cfg(not(unix))]
    {
        false
    }
}
