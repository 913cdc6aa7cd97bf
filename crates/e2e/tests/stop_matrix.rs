//! The api binary, and the whole deployment, stopped in every state (docs/deploy.md,
//! "Stopping"): Redis up, unreachable from the start, lost or hanging while serving, a
//! queue paused, a long-poll and an event stream open, a second signal; then api and
//! worker stopped together during an outage. Each process must exit 0 within its grace,
//! print no panic, and no accepted task may be lost. (The worker's own states are in
//! crates/worker's suite, `stop_matrix`.) Each test prints `stop[…]` lines with what it
//! measured.

use std::time::{Duration, Instant};

use errand_testkit::{
    Errand, Output, Proc, RedisServer,
    api::{submit, wait_state},
    free_port, wait_for,
};
use nix::sys::signal::Signal;
use serde_json::{Value, json};

/// Sends SIGTERM and waits for the exit: exit 0 within `within`, no panic in the output.
/// Returns how long it took, printed as `stop[<state>]`.
async fn stop(p: &mut Proc, out: &Output, state: &str, within: Duration) -> Duration {
    p.signal(Signal::SIGTERM);
    exited(p, out, state, Instant::now(), within).await
}

async fn exited(
    p: &mut Proc,
    out: &Output,
    state: &str,
    since: Instant,
    within: Duration,
) -> Duration {
    let code = tokio::time::timeout(within, p.child.wait()).await;
    let took = since.elapsed();
    let Ok(code) = code else {
        panic!(
            "{} ({state}) still running {within:?} after SIGTERM; output:\n{}",
            p.name,
            out.text()
        );
    };
    let code = code.expect("wait").code();
    assert_eq!(
        code,
        Some(0),
        "{} ({state}) exit; output:\n{}",
        p.name,
        out.text()
    );
    assert!(
        !out.contains("panicked"),
        "{} ({state}) panicked; output:\n{}",
        p.name,
        out.text()
    );
    eprintln!(
        "stop[{} {state}] exit_code=0 stop_ms={}",
        p.name.trim_start_matches("errand-"),
        took.as_millis()
    );
    took
}

fn id_of(v: &Value) -> String {
    v["id"].as_str().expect("an id").to_owned()
}

/// How many HGETALLs Redis has served: a long-poll or stream has read its record once this
/// grows (the handler is then waiting).
async fn hgetalls(redis: &RedisServer) -> u64 {
    let mut conn = redis.conn().await;
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut conn)
        .await
        .expect("INFO");
    info.lines()
        .find_map(|l| l.strip_prefix("cmdstat_hgetall:calls="))
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

async fn wait_hgetalls_above(redis: &RedisServer, before: u64) {
    wait_for(
        "the request to read its record",
        Duration::from_secs(5),
        || async { (hgetalls(redis).await > before).then_some(()) },
    )
    .await;
}

/// How many sockets process `p` has open (Linux: `/proc/<pid>/fd`).
fn sockets(p: &Proc) -> usize {
    std::fs::read_dir(format!("/proc/{}/fd", p.pid()))
        .map(|fds| {
            fds.filter_map(Result::ok)
                .filter(|fd| {
                    std::fs::read_link(fd.path())
                        .is_ok_and(|t| t.to_string_lossy().starts_with("socket:"))
                })
                .count()
        })
        .unwrap_or(0)
}

/// Sends `GET path` on a connection of its own and returns once the api has accepted that
/// connection (a socket more in the process), the request still unanswered.
async fn in_flight(
    api: &Proc,
    base: &str,
    path: &str,
) -> tokio::task::JoinHandle<Result<u16, String>> {
    let before = sockets(api);
    let url = format!("{base}{path}");
    let req = tokio::spawn(async move {
        // A fresh client: a fresh connection.
        let http = reqwest::Client::new();
        http.get(url)
            .send()
            .await
            .map(|r| r.status().as_u16())
            .map_err(|e| e.to_string())
    });
    wait_for(
        "the api to accept the request's connection",
        Duration::from_secs(5),
        || async { (sockets(api) > before).then_some(()) },
    )
    .await;
    assert!(!req.is_finished(), "Redis is frozen: no answer yet");
    req
}

/// Redis up, a few requests served: the stop is immediate.
#[tokio::test]
async fn api_idle_with_redis_up() {
    let redis = RedisServer::start().await;
    let errand = Errand::new(&redis);
    let (mut api, out) = errand.spawn_api_logged().await;
    let http = reqwest::Client::new();
    let base = errand.base_url();
    let r = http.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    submit(&http, &base, json!({"kind": "noop"})).await;
    let took = stop(&mut api, &out, "idle", Duration::from_secs(10)).await;
    assert!(took < Duration::from_secs(2), "{took:?}");
}

/// Redis unreachable from the start, requests answered 503 meanwhile: the stop is
/// immediate and nothing panics on the way out (it used to, in tokio's timer, every time).
#[tokio::test]
async fn api_redis_down_at_start() {
    let errand = Errand::at(&format!("redis://127.0.0.1:{}", free_port()));
    let (mut api, out) = errand.spawn_api_logged().await;
    let http = reqwest::Client::new();
    let base = errand.base_url();
    // Several rounds, so reconnects are under way on every HTTP worker thread.
    for _ in 0..2 {
        for path in ["/readyz", "/v1/tasks/x", "/v1/queues"] {
            let r = http.get(format!("{base}{path}")).send().await.unwrap();
            assert!(
                r.status() == 503 || r.status() == 400,
                "{path}: {}",
                r.status()
            );
        }
    }
    out.wait_for("layout migration failed", Duration::from_secs(5))
        .await;
    let took = stop(
        &mut api,
        &out,
        "redis-down-at-start",
        Duration::from_secs(10),
    )
    .await;
    assert!(took < Duration::from_secs(2), "{took:?}");
}

/// Redis lost while serving: 503s meanwhile, then a clean stop.
#[tokio::test]
async fn api_redis_lost_while_serving() {
    let mut redis = RedisServer::start().await;
    let errand = Errand::new(&redis);
    let (mut api, out) = errand.spawn_api_logged().await;
    let http = reqwest::Client::new();
    let base = errand.base_url();
    submit(&http, &base, json!({"kind": "noop"})).await;
    redis.kill().await;
    for _ in 0..4 {
        let r = http.get(format!("{base}/readyz")).send().await.unwrap();
        assert_eq!(r.status(), 503);
        let r = http
            .post(format!("{base}/v1/tasks"))
            .json(&json!({"kind": "noop"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 503);
    }
    let took = stop(&mut api, &out, "redis-lost", Duration::from_secs(10)).await;
    assert!(took < Duration::from_secs(2), "{took:?}");
}

/// Redis hanging (no replies) with a request in flight: the request gets its answer (503
/// at `redis.response_timeout_ms`) within the grace, then the api exits.
#[tokio::test]
async fn api_redis_hanging_with_a_request_in_flight() {
    let redis = RedisServer::start().await;
    let errand = Errand::new(&redis);
    let (mut api, out) = errand.spawn_api_logged().await;
    let http = reqwest::Client::new();
    let base = errand.base_url();
    submit(&http, &base, json!({"kind": "noop"})).await;
    redis.pause();
    let inflight = in_flight(&api, &base, "/v1/queues").await;
    let took = stop(&mut api, &out, "redis-hanging", Duration::from_secs(10)).await;
    redis.resume();
    assert_eq!(inflight.await.unwrap().ok(), Some(503));
    // Bounded by the request's Redis calls (each `redis.response_timeout_ms`, 2 s; this
    // route makes two in a row), inside the grace (10 s).
    assert!(took < Duration::from_secs(6), "{took:?}");
}

/// A second SIGTERM while a request waits on a hanging Redis stops at once, rather than
/// after the grace.
#[tokio::test]
async fn api_second_signal_stops_at_once() {
    let redis = RedisServer::start().await;
    let errand = Errand::new(&redis).with("ERRAND__REDIS__RESPONSE_TIMEOUT_MS", "30000");
    let (mut api, out) = errand.spawn_api_logged().await;
    let http = reqwest::Client::new();
    let base = errand.base_url();
    submit(&http, &base, json!({"kind": "noop"})).await;
    redis.pause();
    let inflight = in_flight(&api, &base, "/v1/queues").await;
    api.signal(Signal::SIGTERM);
    out.wait_for("stopping: no new connections", Duration::from_secs(5))
        .await;
    let second = Instant::now();
    api.signal(Signal::SIGTERM);
    let took = exited(
        &mut api,
        &out,
        "second-signal",
        second,
        Duration::from_secs(5),
    )
    .await;
    redis.resume();
    assert!(took < Duration::from_secs(2), "{took:?}");
    assert!(out.contains("second signal: stopping at once"));
    // The request in flight had its connection closed.
    assert!(inflight.await.unwrap().is_err());
}

/// A long-poll open: it is answered at once with the record as it is (200, still
/// `queued`), and the api exits without waiting out the poll.
#[tokio::test]
async fn api_with_a_long_poll_open() {
    let redis = RedisServer::start().await;
    let errand = Errand::new(&redis);
    let (mut api, out) = errand.spawn_api_logged().await;
    let http = reqwest::Client::new();
    let base = errand.base_url();
    // No worker: the task stays queued.
    let id = id_of(&submit(&http, &base, json!({"kind": "noop"})).await);
    let before = hgetalls(&redis).await;
    let poll = {
        let (http, url) = (http.clone(), format!("{base}/v1/tasks/{id}?wait=30"));
        tokio::spawn(async move {
            let res = http.get(url).send().await.expect("long-poll answered");
            let status = res.status().as_u16();
            (status, res.json::<Value>().await.unwrap(), Instant::now())
        })
    };
    wait_hgetalls_above(&redis, before).await;
    let term = Instant::now();
    let took = stop(&mut api, &out, "long-poll-open", Duration::from_secs(10)).await;
    let (status, rec, answered) = poll.await.unwrap();
    assert_eq!(status, 200, "{rec}");
    assert_eq!(rec["state"], "queued", "{rec}");
    let answered_after = answered.duration_since(term);
    eprintln!(
        "stop[api long-poll-open] long_poll_answered_after_ms={}",
        answered_after.as_millis()
    );
    assert!(
        answered_after < Duration::from_secs(1),
        "{answered_after:?}"
    );
    assert!(took < Duration::from_secs(2), "{took:?}");
}

/// An event stream open: it ends (after the frames already sent) and the api exits.
#[tokio::test]
async fn api_with_an_event_stream_open() {
    let redis = RedisServer::start().await;
    let errand = Errand::new(&redis);
    let (mut api, out) = errand.spawn_api_logged().await;
    let http = reqwest::Client::new();
    let base = errand.base_url();
    let id = id_of(&submit(&http, &base, json!({"kind": "noop"})).await);
    let mut res = http
        .get(format!("{base}/v1/tasks/{id}/events"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let first = res.chunk().await.unwrap().expect("a first frame");
    assert!(
        String::from_utf8_lossy(&first).starts_with("event: queued"),
        "{first:?}"
    );
    let term = Instant::now();
    let rest = tokio::spawn(async move {
        let mut rest = Vec::new();
        loop {
            match res.chunk().await {
                Ok(Some(c)) => rest.extend_from_slice(&c),
                Ok(None) => return Ok((rest, Instant::now())),
                Err(e) => return Err(e.to_string()),
            }
        }
    });
    let took = stop(&mut api, &out, "event-stream-open", Duration::from_secs(10)).await;
    let (rest, ended) = rest
        .await
        .unwrap()
        .expect("the stream ends cleanly, not cut");
    assert!(rest.is_empty(), "{:?}", String::from_utf8_lossy(&rest));
    let ended_after = ended.duration_since(term);
    eprintln!(
        "stop[api event-stream-open] stream_ended_after_ms={}",
        ended_after.as_millis()
    );
    assert!(ended_after < Duration::from_secs(1), "{ended_after:?}");
    assert!(took < Duration::from_secs(2), "{took:?}");
}

/// A queue paused with tasks waiting: the stop is immediate and the tasks are still there,
/// queued, for the next api.
#[tokio::test]
async fn api_with_a_queue_paused() {
    let redis = RedisServer::start().await;
    let errand = Errand::new(&redis);
    let (mut api, out) = errand.spawn_api_logged().await;
    let http = reqwest::Client::new();
    let base = errand.base_url();
    let r = http
        .post(format!("{base}/v1/queues/default/pause"))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let id = id_of(&submit(&http, &base, json!({"kind": "noop"})).await);
    let took = stop(&mut api, &out, "queue-paused", Duration::from_secs(10)).await;
    assert!(took < Duration::from_secs(2), "{took:?}");
    let (mut api, out) = errand.spawn_api_logged().await;
    let rec = errand_testkit::api::get(&http, &base, &id).await;
    assert_eq!(rec["state"], "queued", "{rec}");
    stop(
        &mut api,
        &out,
        "after-queue-paused",
        Duration::from_secs(10),
    )
    .await;
}

/// The deployment stopped during an outage (`docker compose stop` with Redis down): api and
/// worker both exit 0 within their graces, nothing panics, and once Redis is back every task
/// the api accepted runs.
#[tokio::test]
async fn deployment_stopped_during_an_outage_loses_nothing() {
    let mut redis = RedisServer::start_with(true).await;
    let errand = Errand::new(&redis).with("ERRAND__WORKER__SHUTDOWN_GRACE_SECS", "3");
    let (mut api, api_out) = errand.spawn_api_logged().await;
    let (mut worker, worker_out) = errand.spawn_worker_logged(&[]);
    worker_out
        .wait_for("worker started", Duration::from_secs(20))
        .await;
    let http = reqwest::Client::new();
    let base = errand.base_url();
    let mut ids = Vec::new();
    for i in 0..20 {
        // Some still running when Redis goes.
        let secs = if i % 4 == 0 { 2.5 } else { 0.0 };
        ids.push(id_of(
            &submit(
                &http,
                &base,
                json!({"kind": "sleep", "payload": {"duration_secs": secs}}),
            )
            .await,
        ));
    }
    wait_state(&http, &base, &ids[0], "running", Duration::from_secs(10)).await;
    // On disk (appendfsync everysec) before the outage.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    redis.kill().await;
    let r = http.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 503);
    // Both at once, as `docker compose stop` does.
    let term = Instant::now();
    api.signal(Signal::SIGTERM);
    worker.signal(Signal::SIGTERM);
    let api_took = exited(
        &mut api,
        &api_out,
        "deployment-outage",
        term,
        Duration::from_secs(15),
    )
    .await;
    let worker_took = exited(
        &mut worker,
        &worker_out,
        "deployment-outage",
        term,
        Duration::from_secs(10),
    )
    .await;
    assert!(api_took < Duration::from_secs(2), "{api_took:?}");
    assert!(worker_took < Duration::from_secs(6), "{worker_took:?}");

    redis.restart().await;
    let (mut api, api_out) = errand.spawn_api_logged().await;
    let (mut worker, worker_out) = errand.spawn_worker_logged(&[]);
    for id in &ids {
        wait_state(&http, &base, id, "succeeded", Duration::from_secs(30)).await;
    }
    stop(
        &mut worker,
        &worker_out,
        "after-outage",
        Duration::from_secs(10),
    )
    .await;
    stop(&mut api, &api_out, "after-outage", Duration::from_secs(10)).await;
}
