//! A receiver started in-process on a loopback port, for the demo and the tests.

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;

use crate::config::ROUTE;

type StopFn = Box<dyn FnOnce() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

/// A receiver serving on `addr` until [`stop`](Self::stop) is called (or it is dropped,
/// which stops it without waiting).
pub struct RunningReceiver {
    addr: SocketAddr,
    framework: &'static str,
    stop: Option<StopFn>,
}

impl fmt::Debug for RunningReceiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunningReceiver")
            .field("addr", &self.addr)
            .field("framework", &self.framework)
            .finish()
    }
}

impl RunningReceiver {
    /// Wraps a started server: its address, the framework's name (`"axum"`, `"actix-web"`)
    /// and a function that stops it gracefully and resolves once it has stopped.
    pub fn new<F, Fut>(addr: SocketAddr, framework: &'static str, stop: F) -> Self
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        Self {
            addr,
            framework,
            stop: Some(Box::new(move || Box::pin(stop()))),
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

    /// Stops the server and waits until it has stopped.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            stop().await;
        }
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
