//! A receiver started in-process on a loopback port, for the binaries, the demo and the
//! tests, and its graceful shutdown.

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

use knolyx_webhook_core::WebhookReceiver;

use crate::config::ROUTE;

type StopFn = Box<dyn FnOnce() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;
type ForceFn = Box<dyn FnOnce() + Send>;

/// How long [`RunningReceiver::stop`] lets running handlers finish.
pub const STOP_GRACE: Duration = Duration::from_secs(10);
/// How long a shutdown waits for the server itself once the deliveries are settled.
const SERVER_STOP_WAIT: Duration = Duration::from_secs(2);

/// A receiver serving on `addr` until [`shutdown`](Self::shutdown) or
/// [`stop`](Self::stop) (or it is dropped, which stops it without waiting).
pub struct RunningReceiver {
    addr: SocketAddr,
    framework: &'static str,
    receiver: WebhookReceiver,
    stop: Option<StopFn>,
    force: Option<ForceFn>,
}

impl fmt::Debug for RunningReceiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunningReceiver")
            .field("addr", &self.addr)
            .field("framework", &self.framework)
            .finish()
    }
}

/// What a [`RunningReceiver::shutdown`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Every delivery finished and was settled within the grace period.
    pub drained: bool,
    /// Claims of deliveries still running after it, released for another replica.
    pub released: usize,
}

impl RunningReceiver {
    /// Wraps a started server: its address, the framework's name (`"axum"`, `"actix-web"`),
    /// the receiver it serves, a function that stops accepting and resolves once the
    /// server has stopped (it may wait for open connections), and one that stops it at
    /// once.
    pub fn new<F, Fut>(
        addr: SocketAddr,
        framework: &'static str,
        receiver: WebhookReceiver,
        stop: F,
        force: impl FnOnce() + Send + 'static,
    ) -> Self
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        Self {
            addr,
            framework,
            receiver,
            stop: Some(Box::new(move || Box::pin(stop()))),
            force: Some(Box::new(force)),
        }
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The framework serving it.
    pub fn framework(&self) -> &'static str {
        self.framework
    }

    /// The webhook URL: `http://127.0.0.1:PORT/webhooks/knolyx`.
    pub fn url(&self) -> String {
        format!("http://{}{ROUTE}", self.addr)
    }

    /// The graceful shutdown of a deploy (what the binaries do on SIGTERM or SIGINT):
    ///
    /// 1. stop accepting connections;
    /// 2. let running handlers finish and settle, for up to `grace`
    ///    ([`WebhookReceiver::drain`]);
    /// 3. release the claims of those still running
    ///    ([`WebhookReceiver::release_in_flight`]), so that another replica runs their
    ///    retransmissions at once instead of after the lease, and stop the server.
    ///
    /// Releasing comes before the server drops the running handlers: claims are then
    /// freed by this runtime, which is still running, not by runtimes shutting down.
    pub async fn shutdown(mut self, grace: Duration) -> ShutdownReport {
        let stopped = self.stop.take().map(|stop| tokio::spawn(stop()));
        let drained = tokio::time::timeout(grace, self.receiver.drain())
            .await
            .is_ok();
        let released = if drained {
            0
        } else {
            self.receiver.release_in_flight().await
        };
        if !drained && let Some(force) = self.force.take() {
            force();
        }
        if let Some(stopped) = stopped {
            let _ = tokio::time::timeout(SERVER_STOP_WAIT, stopped).await;
        }
        ShutdownReport { drained, released }
    }

    /// [`shutdown`](Self::shutdown) with a grace period of [`STOP_GRACE`].
    pub async fn stop(self) {
        self.shutdown(STOP_GRACE).await;
    }
}

impl Drop for RunningReceiver {
    fn drop(&mut self) {
        if let (Some(stop), Ok(runtime)) = (self.stop.take(), tokio::runtime::Handle::try_current())
        {
            runtime.spawn(stop());
        }
    }
}

impl RunningReceiver {
    /// What the receiver binaries do once serving: wait for SIGTERM or SIGINT, then
    /// [`shutdown`](Self::shutdown) with `grace`, saying on stderr what happened. `name` is
    /// the binary's, for its messages.
    pub async fn run_until_terminated(self, name: &str, grace: Duration) {
        self.run_until(Termination::listen(), name, grace).await
    }

    /// [`run_until_terminated`](Self::run_until_terminated) on listeners installed
    /// earlier: a binary installs them before it prints that it is ready, so that a
    /// SIGTERM sent right after that line is not missed (it would kill the process).
    pub async fn run_until(
        self,
        termination: std::io::Result<Termination>,
        name: &str,
        grace: Duration,
    ) {
        let signal = match termination {
            Ok(mut termination) => Ok(termination.recv().await),
            Err(error) => Err(error),
        };
        match signal {
            Ok(signal) => {
                eprintln!("{signal}: shutting down (running handlers have {grace:?} to finish)")
            }
            Err(error) => eprintln!("{name}: cannot wait for a signal ({error}); shutting down"),
        }
        let report = self.shutdown(grace).await;
        if report.drained {
            eprintln!("stopped: every delivery finished");
        } else {
            eprintln!(
                "stopped: released the claims of {} deliveries still running after the grace \
                 period",
                report.released
            );
        }
    }
}

/// Listeners of SIGTERM (what Kubernetes, systemd and Docker send on a deploy) and SIGINT
/// (Ctrl-C), installed by [`listen`](Self::listen): from then on these signals no longer
/// end the process, and [`recv`](Self::recv) sees them.
#[derive(Debug)]
pub struct Termination {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl Termination {
    /// Installs the listeners (within a Tokio runtime).
    pub fn listen() -> std::io::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Self {
                term: signal(SignalKind::terminate())?,
                int: signal(SignalKind::interrupt())?,
            })
        }
        #[cfg(not(unix))]
        {
            Ok(Self {})
        }
    }

    /// Resolves on the first of the signals since [`listen`](Self::listen), with its name.
    pub async fn recv(&mut self) -> &'static str {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.term.recv() => "SIGTERM",
                _ = self.int.recv() => "SIGINT",
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            "Ctrl-C"
        }
    }
}

/// Resolves on the first SIGTERM (what Kubernetes, systemd and Docker send on a deploy) or
/// SIGINT (Ctrl-C), with the signal's name.
pub async fn terminated() -> std::io::Result<&'static str> {
    Ok(Termination::listen()?.recv().await)
}
