//! Task lifecycle end to end: timeouts, errand-owned retries, delayed submit, named queues,
//! result TTL.

use std::time::Duration;

use errand_testkit::api::{submit, wait_state};
use errand_testkit::{Errand, RedisServer, wait_for};
use serde_json::{Value, json};

use crate::helpers::time;

async fn get(http: &reqwest::Client, base: &str, id: &str) -> reqwest::Response {
    http.get(format!("{base}/v1/tasks/{id}"))
        .send()
        .await
        .unwrap()
}

/// An attempt over `timeout_secs` is stopped and counts as failed; errand retries it with
/// backoff (state `retrying`, `next_attempt_at` shown) until `max_attempts`, then `failed`.
#[tokio::test]
async fn timed_out_attempts_are_retried_until_max_attempts_then_fail() {
    let redis = RedisServer::start().await;
    let errand = Errand::new(&redis);
    let _api = errand.spawn_api().await;
    let _worker = errand.spawn_worker(&[]);
    let http = reqwest::Client::new();
    let base = errand.base_url();

    let id = submit(&http, &base, json!({"kind": "sleep", "payload": {"duration_secs": 30}, "timeout_secs": 1, "max_attempts": 2}))
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let retrying = wait_state(&http, &base, &id, "retrying", Duration::from_secs(10)).await;
    assert_eq!(retrying["attempt"], 1);
    assert_eq!(retrying["error"]["kind"], "timeout", "{retrying}");
    let next = time(&retrying["next_attempt_at"]);
    let delay = next - time(&retrying["updated_at"]);
    assert!(
        delay >= chrono::Duration::milliseconds(450)
            && delay <= chrono::Duration::milliseconds(1050),
        "first backoff {delay}"
    );

    let failed = wait_state(&http, &base, &id, "failed", Duration::from_secs(15)).await;
    assert_eq!(failed["attempt"], 2, "{failed}");
    assert_eq!(failed["error"]["kind"], "timeout");
    assert!(
        time(&failed["started_at"]) >= next - chrono::Duration::milliseconds(5),
        "attempt 2 waited for its backoff"
    );
}

/// `delay_secs` → `scheduled`, run no earlier than due (and not much later).
#[tokio::test]
async fn delayed_task_waits_scheduled_then_runs_on_time() {
    let redis = RedisServer::start().await;
    let errand = Errand::new(&redis);
    let _api = errand.spawn_api().await;
    let _worker = errand.spawn_worker(&[]);
    let http = reqwest::Client::new();
    let base = errand.base_url();

    let rec = submit(&http, &base, json!({"kind": "noop", "delay_secs": 2})).await;
    assert_eq!(rec["state"], "scheduled");
    let due = time(&rec["scheduled_for"]);
    assert_eq!((due - time(&rec["created_at"])).num_milliseconds(), 2000);
    let id = rec["id"].as_str().unwrap();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let mid: Value = get(&http, &base, id).await.json().await.unwrap();
    assert_eq!(mid["state"], "scheduled", "not before due");
    let done = wait_state(&http, &base, id, "succeeded", Duration::from_secs(10)).await;
    let started = time(&done["started_at"]);
    assert!(started >= due, "started {started} before due {due}");
    assert!(
        started - due < chrono::Duration::seconds(1),
        "started {started}, due {due}"
    );
}

/// Each worker serves only its configured queues.
#[tokio::test]
async fn named_queues_are_served_only_by_workers_configured_for_them() {
    let redis = RedisServer::start().await;
    let errand = Errand::new(&redis);
    let _api = errand.spawn_api().await;
    let _default_only = errand.spawn_worker(&["--queues", "default=4"]);
    let http = reqwest::Client::new();
    let base = errand.base_url();

    let email = submit(&http, &base, json!({"kind": "noop", "queue": "emails"})).await;
    let plain = submit(&http, &base, json!({"kind": "noop"})).await;
    wait_state(
        &http,
        &base,
        plain["id"].as_str().unwrap(),
        "succeeded",
        Duration::from_secs(10),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let e: Value = get(&http, &base, email["id"].as_str().unwrap())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        e["state"], "queued",
        "default-only worker leaves the emails queue alone"
    );

    let _emails = errand.spawn_worker(&["--queues", "emails=2"]);
    let e = wait_state(
        &http,
        &base,
        email["id"].as_str().unwrap(),
        "succeeded",
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(e["queue"], "emails");
}

/// A terminal record is readable for its TTL, then gone (404).
#[tokio::test]
async fn terminal_record_expires_after_its_result_ttl() {
    let redis = RedisServer::start().await;
    let errand = Errand::new(&redis);
    let _api = errand.spawn_api().await;
    let _worker = errand.spawn_worker(&[]);
    let http = reqwest::Client::new();
    let base = errand.base_url();

    let rec = submit(&http, &base, json!({"kind": "noop", "result_ttl_secs": 1})).await;
    let id = rec["id"].as_str().unwrap();
    wait_state(&http, &base, id, "succeeded", Duration::from_secs(10)).await;
    wait_for("record to expire", Duration::from_secs(5), || async {
        (get(&http, &base, id).await.status() == 404).then_some(())
    })
    .await;
}
