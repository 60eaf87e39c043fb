//! [`TcpProxy`]: a TCP proxy on a loopback port that a test can stall (hold every byte,
//! both ways, without closing anything: a network partition as a client sees it), heal,
//! or cut (close every connection), to put a store's real client and server through the
//! failures of a real network.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A TCP proxy from a free loopback port to `upstream`. Dropping it closes everything.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// use knolyx_webhook_core::testing::TcpProxy;
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
///
/// // An echo server, and the proxy in front of it.
/// let echo = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// let upstream = echo.local_addr()?;
/// tokio::spawn(async move {
///     let (mut socket, _) = echo.accept().await.unwrap();
///     let (mut read, mut write) = socket.split();
///     tokio::io::copy(&mut read, &mut write).await.unwrap();
/// });
/// let proxy = TcpProxy::start(upstream).await?;
/// let mut client = tokio::net::TcpStream::connect(proxy.addr()).await?;
///
/// proxy.stall(); // bytes are held from now on; nothing is closed
/// client.write_all(b"ping").await?;
/// proxy.heal(); // the held bytes go through
/// let mut echoed = [0; 4];
/// client.read_exact(&mut echoed).await?;
/// assert_eq!(&echoed, b"ping");
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct TcpProxy {
    addr: SocketAddr,
    stalled: watch::Sender<bool>,
    cut: watch::Sender<u64>,
    connections: Arc<AtomicUsize>,
    accept: JoinHandle<()>,
}

impl TcpProxy {
    /// Listens on a free port of 127.0.0.1 and forwards every connection to `upstream`.
    pub async fn start(upstream: SocketAddr) -> io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (stalled, _) = watch::channel(false);
        let (cut, _) = watch::channel(0u64);
        let connections = Arc::new(AtomicUsize::new(0));
        let accept = tokio::spawn(accept_loop(
            listener,
            upstream,
            stalled.clone(),
            cut.clone(),
            Arc::clone(&connections),
        ));
        Ok(Self {
            addr,
            stalled,
            cut,
            connections,
            accept,
        })
    }

    /// The address to connect to instead of the upstream's.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Holds every byte from now on, in both directions and on every connection (new ones
    /// are accepted and held too), without closing anything: what a client sees of a
    /// network partition or a frozen server. Anything written after this returns is held.
    pub fn stall(&self) {
        self.stalled.send_replace(true);
    }

    /// Forwards again, the held bytes first.
    pub fn heal(&self) {
        self.stalled.send_replace(false);
    }

    /// Closes every open connection (new ones are still accepted).
    pub fn cut(&self) {
        self.cut.send_modify(|generation| *generation += 1);
    }

    /// How many connections are open through the proxy.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

async fn accept_loop(
    listener: TcpListener,
    upstream: SocketAddr,
    stalled: watch::Sender<bool>,
    cut: watch::Sender<u64>,
    connections: Arc<AtomicUsize>,
) {
    while let Ok((client, _)) = listener.accept().await {
        let (stalled, mut cut) = (stalled.subscribe(), cut.subscribe());
        let connections = Arc::clone(&connections);
        tokio::spawn(async move {
            cut.mark_unchanged();
            let Ok(server) = TcpStream::connect(upstream).await else {
                return; // the client sees its connection closed
            };
            connections.fetch_add(1, Ordering::SeqCst);
            let (client_read, client_write) = client.into_split();
            let (server_read, server_write) = server.into_split();
            tokio::select! {
                _ = pump(client_read, server_write, stalled.clone()) => {}
                _ = pump(server_read, client_write, stalled) => {}
                _ = cut.changed() => {}
            }
            connections.fetch_sub(1, Ordering::SeqCst);
        });
    }
}

/// Copies `from` to `to`, holding the bytes while stalled. Ends when either side closes.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut stalled: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        if stalled.wait_for(|s| !*s).await.is_err() {
            return;
        }
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        // Read before a stall began, written after it ends: a stall holds what is in
        // flight too.
        if stalled.wait_for(|s| !*s).await.is_err() {
            return;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
