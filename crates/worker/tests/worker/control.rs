//! Cancel, retry, failure kinds and watching a task, end to end against the real binaries.

use std::time::{Duration, Instant};

use errand_testkit::api::{get, submit, wait_state};
use errand_testkit::{Errand, Proc, RedisServer, wait_for};
use serde_json::{Value, json};

use crate::helpers::id_of;

struct Env {
    _redis: RedisServer,
    _api: Proc,
    _worker: Option<Proc>,
    errand: Errand,
    http: reqwest::Client,
    base: String,
}

async fn env(worker: bool) -> Env {
    let redis = RedisServer::start().await;
    let errand = Errand::new(&redis);
    let api = errand.spawn_api().await;
    let w = worker.then(|| errand.spawn_worker(&[]));
    let base = errand.base_url();
    Env {
        _redis: redis,
        _api: api,
        _worker: w,
        errand,
        http: reqwest::Client::new(),
        base,
    }
}

/// GET `path` as JSON.
async fn read(e: &Env, path: &str) -> Value {
    e.http
        .get(format!("{}{path}", e.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Waits up to `secs` for task `id` to reach `state`.
async fn wait(e: &Env, id: &str, state: &str, secs: u64) -> Value {
    wait_state(&e.http, &e.base, id, state, Duration::from_secs(secs)).await
}

/// Submits and returns the new task's id.
async fn submit_id(e: &Env, body: Value) -> String {
    id_of(&submit(&e.http, &e.base, body).await)
}

async fn post(e: &Env, path: &str) -> (u16, Value) {
    let res = e
        .http
        .post(format!("{}{path}", e.base))
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// A queued task that is cancelled never starts, even once a worker comes up; a terminal
/// task cannot be cancelled (409); a cancelled task can be retried and then runs.
#[tokio::test]
async fn cancelled_queued_task_never_starts_and_can_be_retried() {
    let e = env(false).await;
    let queued = submit(&e.http, &e.base, json!({"kind": "noop"})).await;
    let scheduled = submit(&e.http, &e.base, json!({"kind": "noop", "delay_secs": 1})).await;
    let control = submit(&e.http, &e.base, json!({"kind": "noop"})).await;
    for t in [&queued, &scheduled] {
        let (status, rec) = post(&e, &format!("/v1/tasks/{}/cancel", id_of(t))).await;
        assert_eq!(status, 200, "{rec}");
        assert_eq!(rec["state"], "cancelled");
        assert_eq!(rec["error"]["kind"], "cancelled");
    }
    let _worker = e.errand.spawn_worker(&[]);
    wait(&e, &id_of(&control), "succeeded", 10).await;
    // Past the scheduled task's due time too.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for t in [&queued, &scheduled] {
        let r = get(&e.http, &e.base, &id_of(t)).await;
        assert_eq!(r["state"], "cancelled", "{r}");
        assert_eq!(r["attempt"], 0, "never started: {r}");
        assert!(r["started_at"].is_null());
    }

    let (status, p) = post(&e, &format!("/v1/tasks/{}/cancel", id_of(&control))).await;
    assert_eq!(status, 409, "{p}");
    assert_eq!(p["type"], "https://errand.dev/problems/conflict");
    let (status, _) = post(&e, &format!("/v1/tasks/{}/retry", id_of(&control))).await;
    assert_eq!(status, 409, "a succeeded task is not retried");

    let (status, rec) = post(&e, &format!("/v1/tasks/{}/retry", id_of(&queued))).await;
    assert_eq!(status, 202, "{rec}");
    assert_eq!(rec["state"], "queued");
    assert!(rec["error"].is_null());
    let done = wait(&e, &id_of(&queued), "succeeded", 10).await;
    assert_eq!(done["attempt"], 1);

    let (status, p) = post(&e, "/v1/tasks/no-such-task/cancel").await;
    assert_eq!(status, 404, "{p}");
}

/// A running task is stopped within a second of the cancel, whether it honours its
/// cancellation token (sleep) or not (chaos ignore_cancel: aborted at an await point).
#[tokio::test]
async fn running_task_is_stopped_within_a_second() {
    let e = env(true).await;
    for body in [
        json!({"kind": "sleep", "payload": {"duration_secs": 60}}),
        json!({"kind": "chaos", "payload": {"mode": "ignore_cancel", "secs": 60}}),
    ] {
        let id = id_of(&submit(&e.http, &e.base, body.clone()).await);
        wait(&e, &id, "running", 10).await;
        let asked = Instant::now();
        let (status, rec) = post(&e, &format!("/v1/tasks/{id}/cancel")).await;
        assert_eq!(status, 202, "{rec}");
        assert_eq!(rec["state"], "running");
        assert_eq!(rec["cancel_requested"], true);
        let done = wait(&e, &id, "cancelled", 5).await;
        let took = asked.elapsed();
        assert!(
            took < Duration::from_secs(1),
            "{body}: stopped after {took:?}"
        );
        assert_eq!(done["error"]["kind"], "cancelled", "{done}");
        assert_eq!(done["attempt"], 1);
    }
}

/// Panics are caught and retried like any failure; a permanent failure is not retried.
#[tokio::test]
async fn panics_are_failures_and_permanent_failures_are_not_retried() {
    let e = env(true).await;
    let panicky = submit(
        &e.http,
        &e.base,
        json!({"kind": "chaos", "payload": {"mode": "panic"}, "max_attempts": 2}),
    )
    .await;
    let permanent = submit(
        &e.http,
        &e.base,
        json!({"kind": "chaos", "payload": {"mode": "fail_permanent"}, "max_attempts": 5}),
    )
    .await;
    let failed = wait(&e, &id_of(&panicky), "failed", 15).await;
    assert_eq!(failed["attempt"], 2, "{failed}");
    assert_eq!(failed["error"]["kind"], "panic");
    assert!(
        failed["error"]["message"]
            .as_str()
            .unwrap()
            .contains("chaos panic on attempt 2"),
        "{failed}"
    );
    let failed = wait(&e, &id_of(&permanent), "failed", 10).await;
    assert_eq!(failed["attempt"], 1, "no retry: {failed}");
    assert_eq!(failed["error"]["kind"], "chaos");

    // The worker survived both: it still runs tasks.
    let ok = submit(
        &e.http,
        &e.base,
        json!({"kind": "noop", "payload": {"after": "panic"}}),
    )
    .await;
    let ok = wait(&e, &id_of(&ok), "succeeded", 10).await;
    assert_eq!(ok["result"], json!({"after": "panic"}));

    // A manual retry of the failed task gets a fresh budget of attempts.
    let (status, rec) = post(&e, &format!("/v1/tasks/{}/retry", id_of(&panicky))).await;
    assert_eq!(status, 202);
    assert_eq!(rec["attempt"], 0);
    let again = wait(&e, &id_of(&panicky), "failed", 15).await;
    assert_eq!(again["attempt"], 2, "{again}");
}

/// `?wait=` answers the moment the task ends (not at the next poll), and with the current
/// record when the wait runs out first.
#[tokio::test]
async fn long_poll_answers_when_the_task_ends() {
    let e = env(true).await;
    let id = submit_id(
        &e,
        json!({"kind": "sleep", "payload": {"duration_secs": 1.5}}),
    )
    .await;
    let t = Instant::now();
    let r: Value = read(&e, &format!("/v1/tasks/{id}?wait=20")).await;
    let took = t.elapsed();
    assert_eq!(r["state"], "succeeded", "{r}");
    assert!(
        took >= Duration::from_millis(1000) && took < Duration::from_millis(2500),
        "{took:?}"
    );

    let id = submit_id(
        &e,
        json!({"kind": "sleep", "payload": {"duration_secs": 30}}),
    )
    .await;
    let t = Instant::now();
    let r: Value = read(&e, &format!("/v1/tasks/{id}?wait=1")).await;
    let took = t.elapsed();
    assert!(r["state"] == "running" || r["state"] == "queued", "{r}");
    assert!(
        took >= Duration::from_millis(950) && took < Duration::from_millis(2000),
        "{took:?}"
    );

    for q in ["wait=abc", "wait=100000", "bogus=1"] {
        let res = e
            .http
            .get(format!("{}/v1/tasks/{id}?{q}", e.base))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400, "{q}");
        let p: Value = res.json().await.unwrap();
        assert!(p["field"] == "wait" || p["field"] == "bogus", "{q}: {p}");
    }
}

/// SSE: the current record first, then progress and state changes, ending at the terminal
/// state.
#[tokio::test]
async fn events_stream_every_change_until_terminal() {
    let e = env(true).await;
    let id = submit_id(
        &e,
        json!({"kind": "sleep", "payload": {"duration_secs": 2.5}}),
    )
    .await;
    let res = e
        .http
        .get(format!("{}/v1/tasks/{id}/events", e.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    let body = tokio::time::timeout(Duration::from_secs(15), res.text())
        .await
        .expect("stream ends after the terminal state")
        .unwrap();
    let events: Vec<(String, Value)> = body
        .split("\n\n")
        .filter_map(|frame| {
            let name = frame.lines().find_map(|l| l.strip_prefix("event: "))?;
            let data = frame.lines().find_map(|l| l.strip_prefix("data: "))?;
            Some((name.to_owned(), serde_json::from_str(data).unwrap()))
        })
        .collect();
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names.last(), Some(&"succeeded"), "{names:?}");
    assert!(names.contains(&"running"), "{names:?}");
    let percents: Vec<u64> = events
        .iter()
        .filter(|(n, _)| n == "progress")
        .filter_map(|(_, r)| r["progress"]["percent"].as_u64())
        .collect();
    assert!(percents.len() >= 2, "progress events: {names:?}");
    assert!(percents.windows(2).all(|w| w[0] <= w[1]), "{percents:?}");
    assert_eq!(events.last().unwrap().1["result"]["slept_secs"], 2.5);

    let res = e
        .http
        .get(format!("{}/v1/tasks/nope/events", e.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
}

/// A terminal record that expired answers 404 with the `task-expired` problem type.
#[tokio::test]
async fn expired_record_says_it_expired() {
    let e = env(true).await;
    let id = submit_id(&e, json!({"kind": "noop", "result_ttl_secs": 1})).await;
    wait(&e, &id, "succeeded", 10).await;
    let p: Value = wait_for("the record to expire", Duration::from_secs(10), || async {
        let res = e
            .http
            .get(format!("{}/v1/tasks/{id}", e.base))
            .send()
            .await
            .ok()?;
        let p: Value = res.json().await.ok()?;
        (p["type"] == "https://errand.dev/problems/task-expired").then_some(p)
    })
    .await;
    assert_eq!(p["status"], 404);
    assert!(p["detail"].as_str().unwrap().contains("expired"), "{p}");
    let unknown: Value = read(&e, "/v1/tasks/never-was").await;
    assert_eq!(
        unknown["type"],
        "https://errand.dev/problems/task-not-found"
    );
}

/// `GET /v1/workers` shows the live worker with its queues and running task, and forgets it
/// once it stops; `GET /v1/queues` counts tasks by state.
#[tokio::test]
async fn workers_and_queues_are_visible() {
    let e = env(false).await;
    let mut worker = e.errand.spawn_worker(&["--queues", "default=3,mail=2"]);
    let id = submit_id(
        &e,
        json!({"kind": "sleep", "payload": {"duration_secs": 30}}),
    )
    .await;
    submit(&e.http, &e.base, json!({"kind": "noop", "queue": "mail"})).await;
    submit(
        &e.http,
        &e.base,
        json!({"kind": "noop", "queue": "idle", "delay_secs": 600}),
    )
    .await;
    wait(&e, &id, "running", 10).await;

    let w: Value = wait_for(
        "the worker to report its running task",
        Duration::from_secs(10),
        || async {
            let v: Value = e
                .http
                .get(format!("{}/v1/workers", e.base))
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            let w = v["workers"].as_array()?.first()?.clone();
            (w["running"] == 1).then_some(w)
        },
    )
    .await;
    assert_eq!(w["running_ids"], json!([id]));
    assert_eq!(
        w["queues"],
        json!([{"name": "default", "concurrency": 3}, {"name": "mail", "concurrency": 2}])
    );
    assert_eq!(w["pid"], worker.child.id().unwrap());

    let q: Value = wait_for("queue counts", Duration::from_secs(10), || async {
        let v: Value = e
            .http
            .get(format!("{}/v1/queues", e.base))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        let mail = v["queues"]
            .as_array()?
            .iter()
            .find(|q| q["name"] == "mail")?
            .clone();
        (mail["counts"]["succeeded"] == 1).then_some(v)
    })
    .await;
    let by_name = |n: &str| {
        q["queues"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["name"] == n)
            .unwrap()
            .clone()
    };
    assert_eq!(by_name("default")["counts"]["running"], 1, "{q}");
    assert_eq!(by_name("idle")["counts"]["scheduled"], 1, "{q}");
    assert_eq!(by_name("default")["counts"]["queued"], 0, "{q}");

    worker.signal(nix::sys::signal::Signal::SIGTERM);
    post(&e, &format!("/v1/tasks/{id}/cancel")).await;
    assert_eq!(worker.wait_exit(Duration::from_secs(15)).await, Some(0));
    let v: Value = read(&e, "/v1/workers").await;
    assert_eq!(v["workers"], json!([]), "a stopped worker leaves at once");
}
