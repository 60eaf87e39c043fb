//! Helpers shared by the test modules.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use std::net::SocketAddr;

use knolyx_webhook_core::WebhookReceiver;
use knolyx_webhook_examples::{EventHandler, RunningReceiver, actix_receiver, axum_receiver};

/// A handler that succeeds and counts its runs.
pub(crate) fn counting() -> (EventHandler, Arc<AtomicUsize>) {
    let runs = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&runs);
    let handler: EventHandler = Arc::new(move |_event| {
        counted.fetch_add(1, Ordering::SeqCst);
        Box::pin(async { Ok(()) })
    });
    (handler, runs)
}

/// `receiver` served by `framework` (`"axum"` or `"actix-web"`, one worker) on a free
/// loopback port, with a [`counting`] handler.
pub(crate) async fn serve_counting(
    framework: &str,
    receiver: WebhookReceiver,
) -> (RunningReceiver, Arc<AtomicUsize>) {
    let (handler, runs) = counting();
    let addr = SocketAddr::from(([127, 0, 0, 1], 0));
    let running = match framework {
        "axum" => axum_receiver::spawn(receiver, handler, addr).await.unwrap(),
        _ => actix_receiver::spawn(receiver, handler, addr, 1)
            .await
            .unwrap(),
    };
    (running, runs)
}

/// The test database (`url`) behind a [`TcpProxy`] the test can stall, heal and cut, and a
/// pool of four connections through it.
///
/// [`TcpProxy`]: knolyx_webhook_core::testing::TcpProxy
pub(crate) async fn postgres_behind_proxy(
    url: &str,
) -> (
    knolyx_webhook_core::testing::TcpProxy,
    knolyx_webhook_postgres::sqlx::PgPool,
) {
    use knolyx_webhook_postgres::sqlx;
    use std::str::FromStr;
    let options = sqlx::postgres::PgConnectOptions::from_str(url).unwrap();
    let upstream = tokio::net::lookup_host((options.get_host(), options.get_port()))
        .await
        .unwrap()
        .next()
        .unwrap();
    let proxy = knolyx_webhook_core::testing::TcpProxy::start(upstream)
        .await
        .unwrap();
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .connect_with(options.host("127.0.0.1").port(proxy.addr().port()))
        .await
        .unwrap();
    (proxy, pool)
}

/// Delivers `body` to `url` as Knolyx does (PUT, JSON, `token` in its header): the status,
/// and whether it was answered as a duplicate.
pub(crate) async fn deliver(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    body: impl Into<reqwest::Body>,
) -> (u16, bool) {
    let response = client
        .put(url)
        .header("x-webhook-security-token", token)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let duplicate = response
        .headers()
        .contains_key("x-knolyx-webhook-duplicate");
    (response.status().as_u16(), duplicate)
}
