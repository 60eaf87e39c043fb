use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use knolyx_webhook_core::store::OwnerToken;
use knolyx_webhook_postgres::PostgresStore;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

pub(crate) fn database_url() -> Option<String> {
    knolyx_webhook_core::testing::service_url("KNOLYX_TEST_DATABASE_URL")
}

/// A table name no other test (or run) uses.
pub(crate) fn unique_table(test: &str) -> String {
    format!("knolyx_test_{test}_{}", OwnerToken::generate())
}

pub(crate) async fn pool(url: &str) -> PgPool {
    PgPoolOptions::new()
        .max_connections(16)
        .acquire_timeout(Duration::from_secs(10))
        .connect(url)
        .await
        .expect("connect to postgres")
}

/// A store on `table`, migrated, with a generous operation timeout (CI machines are small
/// and busy; the failure tests use short limits).
pub(crate) async fn migrated(pool: &PgPool, table: &str) -> PostgresStore {
    let store = PostgresStore::builder(pool.clone())
        .table(table)
        .operation_timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    store.migrate().await.expect("migrate");
    store
}

pub(crate) async fn drop_table(pool: &PgPool, table: &str) {
    sqlx::raw_sql(&format!("DROP TABLE IF EXISTS {table}"))
        .execute(pool)
        .await
        .expect("drop the test table");
}

/// A TCP proxy to the database that the test can stop (closing every connection, refusing
/// new ones) and start again on the same port.
pub(crate) struct Proxy {
    port: u16,
    upstream: SocketAddr,
    task: Option<JoinHandle<()>>,
}

impl Proxy {
    pub(crate) async fn start(url: &str) -> Self {
        let options = PgConnectOptions::from_str(url).expect("a postgres URL");
        let upstream = tokio::net::lookup_host((options.get_host(), options.get_port()))
            .await
            .expect("resolve the database host")
            .next()
            .expect("an address for the database host");
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = Some(tokio::spawn(serve(listener, upstream)));
        Self {
            port,
            upstream,
            task,
        }
    }

    /// Connect options for `url`, through the proxy.
    pub(crate) fn options(&self, url: &str) -> PgConnectOptions {
        PgConnectOptions::from_str(url)
            .unwrap()
            .host("127.0.0.1")
            .port(self.port)
    }

    pub(crate) async fn stop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await; // dropped with it: the listener and every connection
        }
    }

    pub(crate) async fn restart(&mut self) {
        assert!(self.task.is_none(), "the proxy is running");
        let listener = TcpListener::bind(("127.0.0.1", self.port))
            .await
            .expect("bind the proxy's port again");
        self.task = Some(tokio::spawn(serve(listener, self.upstream)));
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

async fn serve(listener: TcpListener, upstream: SocketAddr) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((mut client, _)) = accepted else { continue };
                connections.spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}
