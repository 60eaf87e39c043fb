//! Many deliveries of one id at once: the handler runs exactly once.

use axum::http::StatusCode;
use knolyx_webhook_core::testing::TestEvent;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::support::{Handler, bounded, deliver, header, start};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hundred_concurrent_deliveries_of_one_id_run_the_handler_once() {
    const N: usize = 100;
    // The handler holds its claim until every other delivery has been answered, so they
    // all overlap with it.
    let (go, go_rx) = watch::channel(false);
    let handler = Handler::new(move |_, _| {
        let mut go_rx = go_rx.clone();
        async move {
            go_rx.wait_for(|go| *go).await.unwrap();
            StatusCode::OK
        }
    });
    let server = start(handler.clone()).await;
    let event = TestEvent::course_completed();

    let mut deliveries = JoinSet::new();
    for _ in 0..N {
        let (url, body) = (server.hook(), event.to_body());
        deliveries.spawn(async move {
            let response = deliver(&url, body).await;
            let duplicate = header(&response, "x-knolyx-webhook-duplicate").is_some();
            let retry_after = header(&response, "retry-after");
            (response.status(), duplicate, retry_after)
        });
    }

    let mut in_flight = 0;
    let mut handled = 0;
    let mut duplicates = 0;
    for answered in 1..=N {
        if answered == N {
            // Only the delivery running the handler is left: let it finish.
            go.send_replace(true);
        }
        let (status, duplicate, retry_after) = bounded("a delivery", deliveries.join_next())
            .await
            .unwrap()
            .unwrap();
        match (status, duplicate) {
            (StatusCode::SERVICE_UNAVAILABLE, false) => {
                assert_eq!(retry_after.as_deref(), Some("5"));
                in_flight += 1;
            }
            (StatusCode::OK, true) => duplicates += 1,
            (StatusCode::OK, false) => handled += 1,
            other => panic!("unexpected answer {other:?}"),
        }
    }
    assert_eq!(handler.runs(), 1);
    assert_eq!(handled, 1);
    // The claim is held until the others are answered: none of them can see it completed.
    assert_eq!((in_flight, duplicates), (N - 1, 0));

    // Once handled, concurrent retransmissions are all duplicates.
    let mut retries = JoinSet::new();
    for _ in 0..20 {
        let (url, body) = (server.hook(), event.to_body());
        retries.spawn(async move { deliver(&url, body).await });
    }
    while let Some(response) = bounded("a retransmission", retries.join_next()).await {
        let response = response.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            header(&response, "x-knolyx-webhook-duplicate").as_deref(),
            Some("true")
        );
    }
    assert_eq!(handler.runs(), 1);
}
