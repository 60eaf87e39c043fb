//! The scripted sender's full scenario list, played over real HTTP against both receivers:
//! every outcome must be the promised one, and the two must agree exactly (statuses,
//! duplicate markers, handler runs, and the handler's output lines), so the adapters
//! cannot drift apart.

use std::net::SocketAddr;
use std::sync::Arc;

use knolyx_webhook_examples::scenarios::{self, Report, ScenarioSet, SpawnFn};
use knolyx_webhook_examples::{actix_receiver, axum_receiver};

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

pub(crate) fn axum_spawn() -> SpawnFn {
    Arc::new(|receiver, handler| Box::pin(axum_receiver::spawn(receiver, handler, loopback())))
}

pub(crate) fn actix_spawn() -> SpawnFn {
    Arc::new(|receiver, handler| Box::pin(actix_receiver::spawn(receiver, handler, loopback(), 2)))
}

fn check(report: &Report) {
    assert!(
        report.all_ok(),
        "{}: outcomes differ from the design:\n{}",
        report.framework,
        report.table()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_receivers_give_the_promised_outcomes_and_agree() {
    let axum = scenarios::play(&axum_spawn(), ScenarioSet::Full)
        .await
        .unwrap();
    let actix = scenarios::play(&actix_spawn(), ScenarioSet::Full)
        .await
        .unwrap();
    check(&axum);
    check(&actix);
    assert_eq!(axum.framework, "axum");
    assert_eq!(actix.framework, "actix-web");
    assert_eq!(
        axum.outcomes(),
        actix.outcomes(),
        "the receivers disagree:\naxum:\n{}\nactix-web:\n{}",
        axum.table(),
        actix.table()
    );
    let bodies = |r: &Report| {
        r.rows
            .iter()
            .map(|row| row.got.body.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(bodies(&axum), bodies(&actix), "response bodies differ");
    assert_eq!(axum.normalized_lines(), actix.normalized_lines());
    // One line per successful handler run.
    let successful_runs = axum
        .rows
        .iter()
        .filter(|r| r.got.status == Some(200) && r.got.handler_runs > 0)
        .count();
    assert_eq!(axum.lines.len(), successful_runs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_list_passes_on_both() {
    for spawn in [axum_spawn(), actix_spawn()] {
        let report = scenarios::play(&spawn, ScenarioSet::Demo).await.unwrap();
        check(&report);
        assert_eq!(report.rows.len(), 14);
    }
}
