//! The worker's stop in its phases, in-process: what a grace period running out does.

use std::time::{Duration, Instant};

use errand_core::{shutdown::Shutdown, task::TaskState};
use errand_testkit::{RedisServer, wait_for};
use serde_json::json;

use crate::helpers::{record, settings, store_for, submit};

/// A task still running when the grace period ends is abandoned: the worker stops without
/// recording anything for it, so its lease lapses and another worker re-runs it.
#[tokio::test]
async fn grace_over_abandons_the_running_task_to_its_lease() {
    let redis = RedisServer::start().await;
    let mut settings = settings(&redis);
    settings.worker.shutdown_grace_secs = 1;
    let store = store_for(&settings);
    store.migrate().await.expect("migrate");
    let id = submit(&store, "sleep", json!({"duration_secs": 20}), 3, None).await;

    let shutdown = Shutdown::new(errand_worker::join_deadline(&settings));
    let worker = tokio::spawn(errand_worker::run_until_stopped(settings, shutdown.clone()));
    wait_for("the task to run", Duration::from_secs(10), || async {
        (record(&store, &id).await.state == TaskState::Running).then_some(())
    })
    .await;

    let asked = Instant::now();
    shutdown.trigger();
    tokio::time::timeout(Duration::from_secs(10), worker)
        .await
        .expect("the worker stops soon after its grace period")
        .expect("the worker task did not panic")
        .expect("a clean stop");
    assert!(
        asked.elapsed() >= Duration::from_secs(1),
        "the grace period was waited for: {:?}",
        asked.elapsed()
    );
    let r = record(&store, &id).await;
    assert_eq!(
        (r.state, r.attempt, r.error),
        (TaskState::Running, 1, None),
        "nothing recorded for the abandoned attempt"
    );
}
