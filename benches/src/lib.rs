//! Shared pieces of the benchmarks: the fixtures with fresh ids, and a way to run the
//! memory store's futures (which never wait) without a runtime's overhead.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue};
use knolyx_webhook_core::testing::FIXTURES;

/// The token the benchmarks configure and send.
pub const TOKEN: &str = "bench-token-4c1a9e2f7b";

/// Headers carrying [`TOKEN`].
pub fn headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("x-webhook-security-token", HeaderValue::from_static(TOKEN));
    headers
}

/// The five fixtures as `(type, body)`.
pub fn fixtures() -> impl Iterator<Item = (&'static str, &'static [u8])> {
    FIXTURES.iter().copied()
}

/// Makes bodies of one fixture, each with a distinct id of the same length as the original
/// (so every delivery is a first delivery, and the bytes parsed are the same size).
#[derive(Debug)]
pub struct FreshIds {
    template: Vec<u8>,
    id_at: usize,
    id_len: usize,
    next: u64,
}

impl FreshIds {
    /// Bodies made from `fixture`, whose `"id"` is a 36-character UUID.
    pub fn new(fixture: &[u8]) -> Self {
        let value: serde_json::Value = serde_json::from_slice(fixture).expect("fixture is JSON");
        let id = value["id"].as_str().expect("fixture has an id").to_owned();
        let id_at = find(fixture, id.as_bytes()).expect("id appears in the fixture");
        Self {
            template: fixture.to_vec(),
            id_at,
            id_len: id.len(),
            next: 0,
        }
    }

    /// The next body, with an id never used before by this generator.
    pub fn next_body(&mut self) -> Bytes {
        self.next += 1;
        self.body_for(self.next)
    }

    /// The body whose id is `n` in hexadecimal, zero-padded to the original id's length:
    /// distinct `n` give distinct ids (for callers sharing one counter between several
    /// generators or threads).
    pub fn body_for(&self, n: u64) -> Bytes {
        let mut body = self.template.clone();
        let id = &mut body[self.id_at..self.id_at + self.id_len];
        id.fill(b'0');
        let mut n = n;
        for digit in id.iter_mut().rev() {
            if n == 0 {
                break;
            }
            *digit = b"0123456789abcdef"[(n % 16) as usize];
            n /= 16;
        }
        Bytes::from(body)
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Runs a future that completes without waiting (the memory store's), panicking if it
/// would wait.
pub fn now<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    match future.as_mut().poll(&mut cx) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("the future waited: use a runtime"),
    }
}

/// One delivery through the whole pipeline, as a handler that succeeds would see it:
/// verify, parse, claim, then complete (on a store whose futures never wait, such as the
/// memory store).
///
/// # Panics
///
/// When the pipeline rejects the delivery: a benchmark must not time rejections.
pub fn deliver(receiver: &knolyx_webhook_core::WebhookReceiver, headers: &HeaderMap, body: Bytes) {
    use knolyx_webhook_core::Accepted;
    match now(receiver.receive(&http::Method::PUT, headers, body)) {
        Ok(Accepted::Deliver(delivery)) => {
            let (event, settlement) = delivery.into_parts();
            std::hint::black_box(&event);
            now(settlement.settle(200));
        }
        Ok(Accepted::Answered(answer)) => {
            std::hint::black_box(answer);
        }
        Err(rejection) => panic!("{rejection}"),
    }
}

/// An HTTP/1.1 client connection of the load generators (feature `servers`).
#[cfg(feature = "servers")]
pub type Sender = hyper::client::conn::http1::SendRequest<http_body_util::Full<Bytes>>;

/// Opens a keep-alive HTTP/1.1 connection to `addr` (`TCP_NODELAY`), its driver spawned on
/// the current runtime; panics if it cannot.
#[cfg(feature = "servers")]
pub async fn connect(addr: std::net::SocketAddr) -> Sender {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect to the receiver");
    stream.set_nodelay(true).expect("TCP_NODELAY");
    let io = hyper_util::rt::TokioIo::new(stream);
    let (sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .expect("HTTP/1.1 handshake");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    sender
}
