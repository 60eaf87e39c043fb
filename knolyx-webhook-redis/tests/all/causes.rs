//! Store errors say what went wrong, for real: nothing listening (refused), a wrong password
//! (auth), and keep the client's own words in their source chain, never the password.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use knolyx_webhook_core::store::{IdempotencyStore, OwnerToken, StoreError, StoreErrorKind};
use knolyx_webhook_redis::RedisStore;
use knolyx_webhook_redis::testing::free_port;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The error and every source below it, as text.
fn chain(error: &StoreError) -> String {
    knolyx_webhook_core::testing::error_chain(error)
}

/// A private `redis-server` that requires a password; killed on drop.
struct Guarded(Child, u16);

impl Guarded {
    async fn start(password: &str) -> Self {
        let port = free_port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--save",
                "",
                "--appendonly",
                "no",
                "--requirepass",
                password,
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed to run these tests");
        let server = Self(child, port);
        let deadline = Instant::now() + Duration::from_secs(10);
        // Up once it answers (here: that a password is required).
        while !answers(port).await {
            assert!(Instant::now() < deadline, "redis-server did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        server
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn answers(port: u16) -> bool {
    let attempt = async {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        stream.write_all(b"PING\r\n").await?;
        let mut buf = [0u8; 1];
        stream.read_exact(&mut buf).await?;
        Ok::<_, std::io::Error>(buf[0] == b'-')
    };
    matches!(
        tokio::time::timeout(Duration::from_millis(500), attempt).await,
        Ok(Ok(true))
    )
}

#[tokio::test]
async fn nothing_listening_is_refused() {
    let url = format!("redis://127.0.0.1:{}/", free_port());
    let error = RedisStore::connect(&url).await.unwrap_err();
    assert_eq!(error.kind(), StoreErrorKind::Refused, "{}", chain(&error));

    let store = RedisStore::builder().connect_lazy(&url).unwrap();
    let error = store
        .claim("m-refused", OwnerToken::generate(), Duration::from_secs(60))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), StoreErrorKind::Refused, "{}", chain(&error));
    assert!(
        std::error::Error::source(&error).is_some(),
        "the cause is kept: {}",
        chain(&error)
    );
}

#[tokio::test]
#[ignore = "needs redis-server and redis-cli (README: Running the store tests)"]
async fn a_wrong_password_is_an_auth_error_with_the_servers_words() {
    if !knolyx_webhook_redis::testing::redis_server_installed() {
        return;
    }
    let server = Guarded::start("right-horse-battery").await;
    let url = format!("redis://:wrong-pa55word@127.0.0.1:{}/", server.1);
    let error = RedisStore::connect(&url).await.unwrap_err();
    let text = chain(&error);
    assert_eq!(error.kind(), StoreErrorKind::Auth, "{text}");
    assert!(
        text.to_lowercase().contains("authentication failed"),
        "{text}"
    );
    assert!(
        !text.contains("wrong-pa55word"),
        "the password leaked: {text}"
    );

    // No password at all: the server's NOAUTH, also an auth error.
    let url = format!("redis://127.0.0.1:{}/", server.1);
    let store = RedisStore::builder().connect_lazy(&url).unwrap();
    let error = store
        .claim("m-noauth", OwnerToken::generate(), Duration::from_secs(60))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), StoreErrorKind::Auth, "{}", chain(&error));
}
