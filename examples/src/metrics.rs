//! `KNOLYX_METRICS_PORT`: the receivers' metrics in Prometheus text format, on a listener of
//! their own (`http://127.0.0.1:$KNOLYX_METRICS_PORT/metrics`), never on the webhook's.
//!
//! The pipeline records through the `metrics` facade (names in
//! [`knolyx_webhook_core::metrics`]); [`serve`] installs `metrics-exporter-prometheus` as
//! the process's recorder, with [`DURATION_BUCKETS`] for the histograms, and serves its
//! rendering with a small axum app.

use std::net::{Ipv4Addr, SocketAddr};

use axum::Router;
use axum::routing::get;
use knolyx_webhook_core::metrics::DURATION_BUCKETS;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// The recorder could not be installed, or the port not bound.
#[derive(Debug)]
pub struct MetricsError(String);

impl std::fmt::Display for MetricsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for MetricsError {}

/// Installs the Prometheus recorder for this process and serves `GET /metrics` on
/// `127.0.0.1:port` (0: a free port); returns the address bound. Call it once, before the
/// receiver takes deliveries.
pub async fn serve(port: u16) -> Result<SocketAddr, MetricsError> {
    let handle = PrometheusBuilder::new()
        .set_buckets(DURATION_BUCKETS)
        .map_err(|e| MetricsError(format!("cannot configure the metrics: {e}")))?
        .install_recorder()
        .map_err(|e| MetricsError(format!("cannot install the metrics recorder: {e}")))?;
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port))
        .await
        .map_err(|e| MetricsError(format!("cannot listen on KNOLYX_METRICS_PORT {port}: {e}")))?;
    let addr = listener
        .local_addr()
        .map_err(|e| MetricsError(e.to_string()))?;
    let app = Router::new()
        .route("/metrics", get(render))
        .with_state(handle);
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            tracing::error!(%error, "the metrics listener failed");
        }
    });
    Ok(addr)
}

async fn render(
    axum::extract::State(handle): axum::extract::State<PrometheusHandle>,
) -> ([(axum::http::header::HeaderName, &'static str); 1], String) {
    // Histograms are kept in buckets drained on upkeep: run it before each rendering.
    handle.run_upkeep();
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        handle.render(),
    )
}

/// Starts the metrics listener when `port` is set, printing its URL on stderr as
/// `metrics on http://127.0.0.1:PORT/metrics`.
pub async fn serve_if_configured(port: Option<u16>) -> Result<(), MetricsError> {
    if let Some(port) = port {
        let addr = serve(port).await?;
        eprintln!("metrics on http://{addr}/metrics");
    }
    Ok(())
}
