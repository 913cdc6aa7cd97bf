//! The claim fence from the worker's side, in-process: an attempt whose claim is lost is
//! stopped at once and records nothing.

use std::time::{Duration, Instant};

use errand_core::{shutdown::Shutdown, task::TaskState};
use errand_testkit::{RedisServer, wait_for};
use redis::AsyncCommands;
use serde_json::json;

use crate::helpers::{record, settings, store_for, submit};

/// The renewal says the task no longer holds this worker's claim (here: taken over by
/// another worker, as after a partition): the worker stops the attempt within a renewal
/// round, writes nothing over the new holder's record, and no longer counts it as running.
#[tokio::test]
async fn a_lost_claim_stops_its_attempt_at_once_and_records_nothing() {
    let redis = RedisServer::start().await;
    let mut settings = settings(&redis);
    settings.worker.lease_secs = 2;
    settings.worker.shutdown_grace_secs = 30;
    let store = store_for(&settings);
    store.migrate().await.expect("migrate");
    let id = submit(&store, "sleep", json!({"duration_secs": 30}), 3, None).await;

    let shutdown = Shutdown::new(errand_worker::join_deadline(&settings));
    let worker = tokio::spawn(errand_worker::run_until_stopped(settings, shutdown.clone()));
    wait_for("the task to run", Duration::from_secs(10), || async {
        (record(&store, &id).await.state == TaskState::Running).then_some(())
    })
    .await;

    // Another worker takes the task over (its own claim, its own name).
    let key = store.layout().record("default", id.as_str());
    let mut c = redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let _: () = c
        .hset_multiple(&key, &[("claim", "other.1"), ("worker", "other")])
        .await
        .unwrap();
    wait_for(
        "the worker to stop the lost attempt",
        Duration::from_secs(5),
        || async {
            let ws = store.workers().await.unwrap();
            (ws.len() == 1 && ws[0].running == 0 && !ws[0].stopping).then_some(())
        },
    )
    .await;
    let r = record(&store, &id).await;
    assert_eq!(
        r.state,
        TaskState::Running,
        "the new holder's run is untouched"
    );
    assert_eq!(r.worker.as_deref(), Some("other"));
    let claim: String = c.hget(&key, "claim").await.unwrap();
    assert_eq!(claim, "other.1");

    // Nothing runs here any more, so the stop does not wait for the 30 s task.
    let asked = Instant::now();
    shutdown.trigger();
    tokio::time::timeout(Duration::from_secs(10), worker)
        .await
        .expect("the worker stops without waiting for the lost attempt")
        .expect("no panic")
        .expect("a clean stop");
    assert!(asked.elapsed() < Duration::from_secs(10));
    assert_eq!(record(&store, &id).await.error, None, "nothing recorded");
}
