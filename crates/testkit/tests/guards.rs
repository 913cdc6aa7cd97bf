//! errand surviving apalis-redis 1.0's known failure modes, end to end with the real
//! binaries (design.md lists the defects; each test names the one it reproduces).

use std::time::{Duration, Instant};

use errand_testkit::{Errand, RedisServer, wait_for};
use nix::sys::signal::Signal;
use serde_json::{Value, json};

async fn submit(http: &reqwest::Client, base: &str, body: Value) -> Value {
    let res = http
        .post(format!("{base}/v1/tasks"))
        .json(&body)
        .send()
        .await
        .expect("submit");
    assert_eq!(res.status(), 202);
    res.json().await.unwrap()
}

async fn get(http: &reqwest::Client, base: &str, id: &str) -> Value {
    http.get(format!("{base}/v1/tasks/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn wait_state(
    http: &reqwest::Client,
    base: &str,
    id: &str,
    state: &str,
    timeout: Duration,
) -> Value {
    wait_for(&format!("task {id} to be {state}"), timeout, || async {
        let r = get(http, base, id).await;
        (r["state"] == state).then_some(r)
    })
    .await
}

/// A worker killed with SIGKILL mid-task: once its lease lapses, another worker runs the
/// task again as attempt 2 and it succeeds. Nothing accepted is lost.
#[tokio::test]
async fn task_of_a_killed_worker_is_rerun_by_another_as_a_new_attempt() {
    let redis = RedisServer::start().await;
    let errand = Errand::new(&redis);
    let _api = errand.spawn_api().await;
    let mut doomed = errand.spawn_worker(&[]);
    let http = reqwest::Client::new();
    let base = errand.base_url();

    let id = submit(
        &http,
        &base,
        json!({"kind": "sleep", "payload": {"duration_secs": 2}}),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let first = wait_state(&http, &base, &id, "running", Duration::from_secs(10)).await;
    doomed.signal(Signal::SIGKILL);
    doomed.wait_exit(Duration::from_secs(5)).await;
    let killed_at = Instant::now();
    let _rescuer = errand.spawn_worker(&[]);

    let done = wait_state(&http, &base, &id, "succeeded", Duration::from_secs(30)).await;
    assert_eq!(done["attempt"], 2, "re-run as a new attempt: {done}");
    assert_ne!(done["worker"], first["worker"]);
    assert_eq!(
        done["error"]["kind"], "worker_lost",
        "the lost attempt is on the record: {done}"
    );
    // Lease is 3 s in tests; recovery within lease + upkeep tick + the 2 s task.
    assert!(
        killed_at.elapsed() < Duration::from_secs(12),
        "recovered in {:?}",
        killed_at.elapsed()
    );
}

/// Defect 4: a job whose stored data does not decode killed the apalis worker (and stranded
/// its batch). Here it fails that one task; the others around it run.
#[tokio::test]
async fn undecodable_job_data_fails_that_task_only() {
    let redis = RedisServer::start().await;
    let errand = Errand::new(&redis);
    let prefix = errand.env[1].1.clone();
    let _api = errand.spawn_api().await;
    let http = reqwest::Client::new();
    let base = errand.base_url();

    let before = submit(&http, &base, json!({"kind": "noop", "payload": {"i": 1}})).await;
    let victim = submit(&http, &base, json!({"kind": "noop", "payload": {"i": 2}})).await;
    let after = submit(&http, &base, json!({"kind": "noop", "payload": {"i": 3}})).await;
    // Corrupt the victim's job data in apalis-redis's hash.
    let mut conn = redis.conn().await;
    let data_key = format!("{prefix}:q:default:data");
    let jobs: Vec<(String, Vec<u8>)> = redis::cmd("HGETALL")
        .arg(&data_key)
        .query_async(&mut conn)
        .await
        .unwrap();
    let (jid, _) = jobs
        .iter()
        .find(|(_, v)| v.as_slice() == victim["id"].as_str().unwrap().as_bytes())
        .expect("victim job");
    let _: () = redis::cmd("HSET")
        .arg(&data_key)
        .arg(jid)
        .arg(b"\xff\xfe{not json".as_slice())
        .query_async(&mut conn)
        .await
        .unwrap();

    let _worker = errand.spawn_worker(&[]);
    for r in [&before, &after] {
        wait_state(
            &http,
            &base,
            r["id"].as_str().unwrap(),
            "succeeded",
            Duration::from_secs(10),
        )
        .await;
    }
    let v = wait_state(
        &http,
        &base,
        victim["id"].as_str().unwrap(),
        "failed",
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(v["error"]["kind"], "corrupt_job", "{v}");
    // The worker is still alive and working.
    let more = submit(&http, &base, json!({"kind": "noop", "payload": {"i": 4}})).await;
    wait_state(
        &http,
        &base,
        more["id"].as_str().unwrap(),
        "succeeded",
        Duration::from_secs(10),
    )
    .await;
}

/// Defect 5: no wake-up on push, so an idle worker only looked on its 30 s heartbeat.
/// errand wakes it on submit: pickup well under a second.
#[tokio::test]
async fn idle_worker_picks_up_a_new_task_in_well_under_a_second() {
    let redis = RedisServer::start().await;
    let errand = Errand::new(&redis).with("ERRAND__WORKER__POLL_INTERVAL_MS", "5000");
    let _api = errand.spawn_api().await;
    let _worker = errand.spawn_worker(&[]);
    let http = reqwest::Client::new();
    let base = errand.base_url();
    // Warm up: the worker is subscribed once it has run one task.
    let w = submit(&http, &base, json!({"kind": "noop"})).await;
    wait_state(
        &http,
        &base,
        w["id"].as_str().unwrap(),
        "succeeded",
        Duration::from_secs(10),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await; // let it go idle
    for _ in 0..5 {
        let t = Instant::now();
        let r = submit(&http, &base, json!({"kind": "noop"})).await;
        wait_state(
            &http,
            &base,
            r["id"].as_str().unwrap(),
            "succeeded",
            Duration::from_secs(5),
        )
        .await;
        // The fallback poll is 5 s here, so only the wake-up can make this fast.
        assert!(
            t.elapsed() < Duration::from_millis(500),
            "round trip took {:?}",
            t.elapsed()
        );
    }
}

/// Defect 2: a stopped worker's name stays registered, so a restart under the same name
/// failed for a heartbeat window. errand names every start uniquely: a worker restarted at
/// once gets straight to work.
#[tokio::test]
async fn worker_restarted_at_once_gets_to_work() {
    let redis = RedisServer::start().await;
    let errand = Errand::new(&redis);
    let _api = errand.spawn_api().await;
    let http = reqwest::Client::new();
    let base = errand.base_url();
    let mut w = errand.spawn_worker(&[]);
    let a = submit(&http, &base, json!({"kind": "noop"})).await;
    wait_state(
        &http,
        &base,
        a["id"].as_str().unwrap(),
        "succeeded",
        Duration::from_secs(10),
    )
    .await;
    w.signal(Signal::SIGTERM);
    assert_eq!(w.wait_exit(Duration::from_secs(10)).await, Some(0));
    let _w = errand.spawn_worker(&[]);
    let b = submit(&http, &base, json!({"kind": "noop"})).await;
    wait_state(
        &http,
        &base,
        b["id"].as_str().unwrap(),
        "succeeded",
        Duration::from_secs(3),
    )
    .await;
}
