//! Tasks submitted through the store, drained by the real worker in-process: how each way an
//! attempt ends is recorded.

use std::time::Duration;

use errand_core::task::TaskState;
use errand_testkit::RedisServer;
use serde_json::json;

use crate::helpers::{record, settings, store_for, submit};

#[tokio::test]
async fn drain_runs_each_task_to_its_end_and_records_how_it_ended() {
    let redis = RedisServer::start().await;
    let settings = settings(&redis);
    let store = store_for(&settings);
    // The store's scripts need the current layout before a submit.
    store.migrate().await.expect("migrate");

    let ok = submit(&store, "noop", json!({}), 3, None).await;
    // Fails retryably on every attempt: retried after its backoff, failed after the 2nd.
    let flaky = submit(&store, "chaos", json!({"mode": "fail", "secs": 0}), 2, None).await;
    let slow = submit(&store, "sleep", json!({"duration_secs": 10}), 1, Some(1)).await;

    let report = errand_worker::drain(settings, Duration::from_secs(30))
        .await
        .expect("the queue drains");

    let r = record(&store, &ok).await;
    assert_eq!(r.state, TaskState::Succeeded, "{r:?}");
    assert_eq!((r.attempt, r.error.as_ref()), (1, None), "{r:?}");

    let r = record(&store, &flaky).await;
    assert_eq!(r.state, TaskState::Failed, "{r:?}");
    assert_eq!(r.attempt, 2, "retried once, then out of attempts: {r:?}");
    let e = r.error.expect("the last attempt's error");
    assert_eq!(e.kind, "chaos");
    assert_eq!(e.message, "chaos failure on attempt 2");

    let r = record(&store, &slow).await;
    assert_eq!(r.state, TaskState::Failed, "{r:?}");
    assert_eq!(r.attempt, 1, "{r:?}");
    let e = r.error.expect("the timeout");
    assert_eq!(
        (e.kind.as_str(), e.message.as_str()),
        ("timeout", "attempt ran longer than 1 s")
    );

    assert_eq!(report.count("default", TaskState::Succeeded), 1);
    assert_eq!(report.count("default", TaskState::Failed), 2);
    for busy in [TaskState::Queued, TaskState::Running, TaskState::Retrying] {
        assert_eq!(
            report.count("default", busy),
            0,
            "{busy:?} left: {report:?}"
        );
    }
}
