//! End-to-end: the real errand-api and errand-worker binaries against a real redis-server.

use std::{collections::HashSet, time::Duration};

use errand_testkit::api::{get, wait_state};
use errand_testkit::{Errand, RedisServer, wait_for};
use nix::sys::signal::Signal;
use serde_json::{Value, json};

async fn submit(http: &reqwest::Client, base: &str, body: Value) -> reqwest::Response {
    http.post(format!("{base}/v1/tasks"))
        .json(&body)
        .send()
        .await
        .expect("submit")
}

/// The tutorial's long task: accepted at once, observed queued/running with rising progress,
/// then succeeded with its result; the record outlives an api restart.
#[tokio::test]
async fn sleep_task_runs_reports_progress_and_survives_an_api_restart() {
    let redis = RedisServer::start().await;
    let errand = Errand::new(&redis);
    let mut api = errand.spawn_api().await;
    let _worker = errand.spawn_worker(&[]);
    let http = reqwest::Client::new();
    let base = errand.base_url();

    let res = submit(
        &http,
        &base,
        json!({"kind": "sleep", "payload": {"duration_secs": 2}}),
    )
    .await;
    assert_eq!(res.status(), 202);
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    let rec: Value = res.json().await.unwrap();
    let id = rec["id"].as_str().unwrap().to_owned();
    assert_eq!(location, format!("/v1/tasks/{id}"));
    assert_eq!(rec["state"], "queued");

    let seen = std::cell::RefCell::new(Vec::<u64>::new());
    let done = wait_for("sleep task to succeed", Duration::from_secs(15), || async {
        let r = get(&http, &base, &id).await;
        if r["state"] == "running"
            && let Some(p) = r["progress"]["percent"].as_u64()
        {
            let mut seen = seen.borrow_mut();
            if seen.last() != Some(&p) {
                seen.push(p);
            }
        }
        (r["state"] == "succeeded").then_some(r)
    })
    .await;
    let seen_progress = seen.into_inner();
    assert!(
        seen_progress.iter().any(|p| *p > 0 && *p < 100),
        "saw progress while running: {seen_progress:?}"
    );
    assert!(
        seen_progress.windows(2).all(|w| w[0] < w[1]),
        "progress rises: {seen_progress:?}"
    );
    assert_eq!(done["result"]["message"], format!("task {id} done"));
    assert_eq!(done["result"]["slept_secs"], 2.0);
    assert_eq!(done["attempt"], 1);
    assert_eq!(done["progress"]["percent"], 100);
    assert!(done["finished_at"].is_string() && done["started_at"].is_string());

    api.signal(Signal::SIGTERM);
    assert_eq!(api.wait_exit(Duration::from_secs(10)).await, Some(0));
    let _api = errand.spawn_api().await;
    assert_eq!(
        get(&http, &base, &id).await,
        done,
        "record survives an api restart"
    );
}

/// Two worker processes share 200 tasks: each runs exactly once, and both take part.
#[tokio::test]
async fn two_workers_share_200_tasks_each_run_exactly_once() {
    let redis = RedisServer::start().await;
    let errand = Errand::new(&redis);
    let _api = errand.spawn_api().await;
    let http = reqwest::Client::new();
    let base = errand.base_url();

    // Queue everything first, then start both workers, so neither can drain it alone.
    let mut ids = Vec::new();
    for i in 0..200 {
        let res = submit(
            &http,
            &base,
            json!({"kind": "sleep", "payload": {"duration_secs": 0.02}, "id": format!("job-{i}")}),
        )
        .await;
        assert_eq!(res.status(), 202);
        ids.push(format!("job-{i}"));
    }
    let _w1 = errand.spawn_worker(&["--queues", "default=8"]);
    let _w2 = errand.spawn_worker(&["--queues", "default=8"]);

    let mut workers = HashSet::new();
    for id in &ids {
        let r = wait_state(&http, &base, id, "succeeded", Duration::from_secs(60)).await;
        assert_eq!(r["attempt"], 1, "{id} ran once: {r}");
        let w = r["worker"].as_str().unwrap();
        // the worker process: host:pid:ulid
        workers.insert(w.split(':').take(3).collect::<Vec<_>>().join(":"));
    }
    assert_eq!(
        workers.len(),
        2,
        "both worker processes took part: {workers:?}"
    );

    // Exactly once: every running->succeeded transition was published once per task.
    let mut conn = redis.conn().await;
    let running: i64 = redis::cmd("ZCARD")
        .arg(format!("{}:{{default}}:idx:running", errand.env[1].1))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(running, 0, "no task left holding a lease");
}

/// SIGTERM while a task runs: the worker stops fetching, finishes the task, exits 0.
#[tokio::test]
async fn sigterm_lets_the_running_task_finish_then_exits_zero() {
    let redis = RedisServer::start().await;
    let errand = Errand::new(&redis);
    let _api = errand.spawn_api().await;
    let mut worker = errand.spawn_worker(&[]);
    let http = reqwest::Client::new();
    let base = errand.base_url();

    let rec: Value = submit(
        &http,
        &base,
        json!({"kind": "sleep", "payload": {"duration_secs": 2}}),
    )
    .await
    .json()
    .await
    .unwrap();
    let id = rec["id"].as_str().unwrap().to_owned();
    wait_state(&http, &base, &id, "running", Duration::from_secs(10)).await;
    worker.signal(Signal::SIGTERM);
    // Signal delivery is asynchronous: wait until the worker says it is stopping.
    wait_for(
        "the worker to report it is stopping",
        Duration::from_secs(5),
        || async {
            let v: Value = http
                .get(format!("{base}/v1/workers"))
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            (v["workers"][0]["stopping"] == true).then_some(())
        },
    )
    .await;

    // A task submitted after that must not be taken by the stopping worker.
    let late: Value = submit(
        &http,
        &base,
        json!({"kind": "sleep", "payload": {"duration_secs": 0}}),
    )
    .await
    .json()
    .await
    .unwrap();

    assert_eq!(
        worker.wait_exit(Duration::from_secs(20)).await,
        Some(0),
        "graceful exit code"
    );
    let r = get(&http, &base, &id).await;
    assert_eq!(r["state"], "succeeded", "in-flight task completed: {r}");
    assert_eq!(r["attempt"], 1);
    let l = get(&http, &base, late["id"].as_str().unwrap()).await;
    assert_eq!(l["state"], "queued", "no new work taken after SIGTERM: {l}");

    // And a fresh worker picks the late one up.
    let _w2 = errand.spawn_worker(&[]);
    wait_state(
        &http,
        &base,
        late["id"].as_str().unwrap(),
        "succeeded",
        Duration::from_secs(10),
    )
    .await;
}
