//! The body limit, declared and streamed.

use axum::http::StatusCode;
use knolyx_webhook_core::testing::TestEvent;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{
    Handler, ROUTE, Server, TOKEN, bounded, builder, deliver, padded, start, text, webhook_app,
};

const LIMIT: usize = 2048;

async fn start_limited(handler: Handler) -> Server {
    let receiver = builder().body_limit(LIMIT).build().unwrap();
    Server::start(webhook_app(receiver, handler)).await
}

#[tokio::test]
async fn the_default_limit_admits_a_body_of_exactly_64_kib() {
    let handler = Handler::ok();
    let server = start(handler.clone()).await;
    let body = padded(&TestEvent::course_completed().to_body(), 64 * 1024);
    let response = deliver(&server.hook(), body).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(handler.runs(), 1);
}

#[tokio::test]
async fn a_declared_length_past_the_limit_is_413() {
    let handler = Handler::ok();
    let server = start_limited(handler.clone()).await;
    let event = TestEvent::course_completed().to_body();

    let response = deliver(&server.hook(), padded(&event, LIMIT + 1)).await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(text(response).await, "payload too large");
    assert_eq!(handler.runs(), 0);

    let response = deliver(&server.hook(), padded(&event, LIMIT)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(handler.runs(), 1);
}

/// Sends a PUT with a chunked body (no `Content-Length`), written by hand so that nothing
/// adds a length, and returns the status and body of the response.
async fn put_chunked(server: &Server, chunks: &[&[u8]]) -> (u16, String) {
    let mut request = format!(
        "PUT {ROUTE} HTTP/1.1\r\nhost: {}\r\nx-webhook-security-token: {TOKEN}\r\n\
         content-type: application/json\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n",
        server.addr()
    )
    .into_bytes();
    for chunk in chunks {
        request.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        request.extend_from_slice(chunk);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");

    let mut stream = TcpStream::connect(server.addr()).await.unwrap();
    stream.write_all(&request).await.unwrap();
    let mut response = Vec::new();
    bounded("the response", stream.read_to_end(&mut response))
        .await
        .unwrap();
    let response = String::from_utf8(response).unwrap();
    let status = response[9..12].parse().unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(
        !head
            .to_ascii_lowercase()
            .contains("x-knolyx-webhook-duplicate"),
        "{head}"
    );
    (status, body.to_owned())
}

#[tokio::test]
async fn a_chunked_body_past_the_limit_is_413() {
    let handler = Handler::ok();
    let server = start_limited(handler.clone()).await;
    let body = padded(&TestEvent::course_completed().to_body(), LIMIT + 1);
    let (first, rest) = body.split_at(LIMIT / 2);

    let (status, text) = put_chunked(&server, &[first, rest]).await;
    assert_eq!(status, 413);
    assert!(text.ends_with("payload too large"), "{text:?}");
    assert_eq!(handler.runs(), 0);
}

#[tokio::test]
async fn a_chunked_body_within_the_limit_is_delivered() {
    let handler = Handler::ok();
    let server = start_limited(handler.clone()).await;
    let body = padded(&TestEvent::course_started().to_body(), LIMIT);
    let (first, rest) = body.split_at(LIMIT / 2);

    let (status, _) = put_chunked(&server, &[first, rest]).await;
    assert_eq!(status, 200);
    assert_eq!(handler.runs(), 1);
}

/// An outer body limit (as tower-http's `RequestBodyLimitLayer` sets one: the body wrapped in
/// `Limited`, then in axum's `Body`) stricter than the receiver's: its error reaches the
/// layer wrapped in `axum::Error`, and is still a 413, not a 400.
#[tokio::test]
async fn an_outer_limit_wrapped_in_another_error_is_still_413() {
    use axum::body::Body;
    use http_body_util::Limited;
    use tower::util::MapRequestLayer;

    let handler = Handler::ok();
    let receiver = builder().body_limit(LIMIT).build().unwrap();
    let app = webhook_app(receiver, handler.clone()).layer(MapRequestLayer::new(
        |request: axum::http::Request<Body>| request.map(|body| Body::new(Limited::new(body, 100))),
    ));
    let server = Server::start(app).await;
    let body = padded(&TestEvent::course_completed().to_body(), LIMIT / 2);
    let (first, rest) = body.split_at(50);

    let (status, text) = put_chunked(&server, &[first, rest]).await;
    assert_eq!(status, 413, "{text:?}");
    assert!(text.ends_with("payload too large"), "{text:?}");
    assert_eq!(handler.runs(), 0);
}

/// `Expect: 100-continue`: hyper sends `100 Continue` only when the body is first read, and
/// the layer reads it only after the token check: a wrong token is answered 401 at once and
/// the sender never uploads its body; a right one gets the `100 Continue`.
#[tokio::test]
async fn expect_100_continue_is_answered_only_after_the_token_check() {
    let handler = Handler::ok();
    let server = start_limited(handler.clone()).await;
    let first_answer = |token: &'static str| {
        let addr = server.addr();
        async move {
            let mut stream = TcpStream::connect(addr).await.unwrap();
            let head = format!(
                "PUT {ROUTE} HTTP/1.1\r\nhost: {addr}\r\nx-webhook-security-token: {token}\r\n\
                 content-type: application/json\r\ncontent-length: 100\r\n\
                 expect: 100-continue\r\n\r\n"
            );
            stream.write_all(head.as_bytes()).await.unwrap();
            let mut buf = vec![0u8; 64];
            let n = bounded("the first answer", stream.read(&mut buf))
                .await
                .unwrap();
            String::from_utf8_lossy(&buf[..n]).into_owned()
        }
    };
    let refused = first_answer("a-wrong-token").await;
    assert!(refused.starts_with("HTTP/1.1 401"), "{refused:?}");
    let accepted = first_answer(TOKEN).await;
    assert!(
        accepted.starts_with("HTTP/1.1 100 Continue"),
        "{accepted:?}"
    );
    assert_eq!(handler.runs(), 0);
}
