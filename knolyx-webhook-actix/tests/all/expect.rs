//! `Expect: 100-continue`, over a raw connection: actix-web's HTTP layer answers
//! `100 Continue` before any service of the app runs (its dispatcher calls the expect
//! handler, which `HttpServer` does not let an app replace), so a sender that waits for it
//! uploads the body of a request the pipeline then refuses. This test pins that down so that
//! the crate's docs stay true; the refusal itself still comes before the body is read.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{ROUTE, Script, TestServer, receiver_with};
use knolyx_webhook_core::store::MemoryStore;

/// Sends the head of a PUT with `Expect: 100-continue` and waits for the first interim or
/// final response head.
async fn first_answer(server: &TestServer, token: &str) -> String {
    let mut stream = TcpStream::connect(server.addr()).await.unwrap();
    let head = format!(
        "PUT {ROUTE} HTTP/1.1\r\nhost: {}\r\nx-webhook-security-token: {token}\r\n\
         content-type: application/json\r\ncontent-length: 100\r\nexpect: 100-continue\r\n\r\n",
        server.addr()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 64];
    let n = stream.read(&mut buf).await.unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[tokio::test]
async fn actix_web_answers_100_continue_before_the_token_is_checked() {
    let script = Script::ok();
    let server = TestServer::start(receiver_with(MemoryStore::new()), &script);
    let answer = first_answer(&server, "a-wrong-token").await;
    assert!(answer.starts_with("HTTP/1.1 100 Continue"), "{answer:?}");
    assert_eq!(script.total(), 0);
    server.stop().await;
}
