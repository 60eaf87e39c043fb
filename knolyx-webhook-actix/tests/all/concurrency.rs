//! 100 deliveries of one id at once, across several workers: the handler runs once.

use std::sync::Arc;
use std::time::Duration;

use knolyx_webhook_core::MemoryStore;
use knolyx_webhook_core::testing::TestEvent;
use tokio::sync::Notify;

use crate::support::{Script, Setup, TestServer, receiver_with};

const DELIVERIES: usize = 100;
const WORKERS: usize = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_hundred_concurrent_deliveries_of_one_id_run_the_handler_once() {
    let started = Arc::new(Notify::new());
    let release = Arc::new(Notify::new());
    // The first run holds its claim until every other delivery has been answered; any
    // further run (a bug) returns at once and is counted.
    let script = Script::block_first(&started, &release);
    let server = Arc::new(TestServer::start_with(
        receiver_with(MemoryStore::new()),
        &script,
        Setup::Complete,
        WORKERS,
    ));
    let event = TestEvent::course_payment_received();
    let body = event.to_body();

    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    for _ in 0..DELIVERIES {
        let (server, body, tx) = (Arc::clone(&server), body.clone(), tx.clone());
        tokio::spawn(async move {
            let response = server.deliver(body).await;
            drop(server); // before answering, so the test can stop the server afterwards
            let _ = tx.send(response);
        });
    }
    drop(tx);

    // Whichever delivery won the claim is now inside the handler, holding it.
    tokio::time::timeout(Duration::from_secs(30), started.notified())
        .await
        .expect("a delivery reached the handler");
    let mut in_flight = 0;
    let mut duplicates = 0;
    let mut handled = 0;
    for answered in 0..DELIVERIES {
        if answered == DELIVERIES - 1 {
            // Every other delivery has its answer: let the first one finish.
            release.notify_one();
        }
        let response = tokio::time::timeout(Duration::from_secs(30), rx.recv())
            .await
            .expect("every delivery is answered")
            .expect("every delivery sends its response");
        match (response.status, response.is_duplicate()) {
            (503, false) => in_flight += 1,
            (200, true) => duplicates += 1,
            (200, false) => handled += 1,
            other => panic!("unexpected answer {other:?}: {response:?}"),
        }
    }
    assert_eq!(
        script.runs(event.message_id()),
        1,
        "the handler ran exactly once"
    );
    assert_eq!(handled, 1);
    assert_eq!(in_flight + duplicates, DELIVERIES - 1);
    assert_eq!(
        in_flight,
        DELIVERIES - 1,
        "all overlapped the running handler"
    );

    let late = server.deliver(event.to_body()).await;
    assert!(late.is_duplicate());
    assert_eq!(script.runs(event.message_id()), 1);
    Arc::into_inner(server).unwrap().stop().await;
}
