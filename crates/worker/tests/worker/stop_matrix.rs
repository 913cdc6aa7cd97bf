//! The worker binary stopped in every state it can be in (docs/deploy.md, "Stopping"): Redis
//! up and idle, Redis unreachable from the start, Redis lost while serving (with and without
//! a task running), a queue paused, tasks running, a webhook attempt in flight, and a second
//! signal. Each must exit 0 within its grace, print no panic, and lose no accepted task.
//! Each test prints a `stop[worker …]` line with what it measured.

use std::time::{Duration, Instant};

use errand_core::{
    Settings, TaskStore,
    task::{TaskId, TaskState},
};
use errand_testkit::{Errand, Output, Proc, RedisServer, free_port, wait_for};
use nix::sys::signal::Signal;
use serde_json::json;
use tokio::io::AsyncReadExt;

use crate::helpers::{record, settings, store_for, submit};

/// Settings reaching the same keys as `errand`'s processes, for the test's own store calls.
fn same_keys(redis: &RedisServer, errand: &Errand) -> Settings {
    let mut s = settings(redis);
    s.redis.key_prefix = errand
        .env
        .iter()
        .rev()
        .find(|(k, _)| k == "ERRAND__REDIS__KEY_PREFIX")
        .map(|(_, v)| v.clone())
        .expect("the deployment has a prefix");
    s
}

/// Sends SIGTERM and waits for the exit; asserts exit 0 within `within` and no panic in the
/// output. Returns how long the stop took, and prints it as `stop[worker <state>]`.
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
            "worker ({state}) still running {within:?} after SIGTERM; output:\n{}",
            out.text()
        );
    };
    let code = code.expect("wait").code();
    assert_eq!(
        code,
        Some(0),
        "worker ({state}) exit; output:\n{}",
        out.text()
    );
    assert!(
        !out.contains("panicked"),
        "worker ({state}) panicked; output:\n{}",
        out.text()
    );
    eprintln!(
        "stop[worker {state}] exit_code=0 stop_ms={}",
        took.as_millis()
    );
    took
}

async fn wait_running(store: &TaskStore, ids: &[TaskId]) {
    wait_for("the tasks to run", Duration::from_secs(10), || async {
        for id in ids {
            if record(store, id).await.state != TaskState::Running {
                return None;
            }
        }
        Some(())
    })
    .await;
}

/// Waits for every task of `ids` to succeed (reads failing meanwhile, as just after a Redis
/// restart, are waited through).
async fn wait_succeeded(store: &TaskStore, ids: &[TaskId], within: Duration) {
    wait_for("the tasks to succeed", within, || async {
        for id in ids {
            let r = store.get(id).await.ok()??;
            if r.state != TaskState::Succeeded {
                return None;
            }
        }
        Some(())
    })
    .await;
}

/// Redis up, nothing to do: the stop is immediate.
#[tokio::test]
async fn idle_with_redis_up() {
    let redis = RedisServer::start().await;
    let errand = Errand::new(&redis);
    let (mut w, out) = errand.spawn_worker_logged(&[]);
    out.wait_for("worker started", Duration::from_secs(20))
        .await;
    let took = stop(&mut w, &out, "idle", Duration::from_secs(5)).await;
    assert!(took < Duration::from_secs(2), "{took:?}");
}

/// Redis unreachable from the start: the worker waits in its layout migration, and a SIGTERM
/// ends that wait at once (it used to be ignored until SIGKILL).
#[tokio::test]
async fn redis_down_at_start() {
    let errand = Errand::at(&format!("redis://127.0.0.1:{}", free_port()));
    let (mut w, out) = errand.spawn_worker_logged(&[]);
    out.wait_for("layout migration failed", Duration::from_secs(20))
        .await;
    let took = stop(&mut w, &out, "redis-down-at-start", Duration::from_secs(5)).await;
    assert!(took < Duration::from_secs(1), "{took:?}");
    assert!(out.contains("stop requested before the worker started"));
}

/// Redis lost while the worker serves, nothing running: its fetch backoff, subscriptions
/// and lease beats all end on the stop.
#[tokio::test]
async fn redis_lost_while_idle() {
    let mut redis = RedisServer::start().await;
    let errand = Errand::new(&redis);
    let (mut w, out) = errand.spawn_worker_logged(&[]);
    out.wait_for("worker started", Duration::from_secs(20))
        .await;
    redis.kill().await;
    out.wait_for("fetch failed; backing off", Duration::from_secs(10))
        .await;
    let took = stop(&mut w, &out, "redis-lost-idle", Duration::from_secs(5)).await;
    assert!(took < Duration::from_secs(3), "{took:?}");
}

/// Redis hangs (frozen: connections open, no replies) while the worker serves: every call
/// in flight is cut short by the stop or bounded by `redis.response_timeout_ms`.
#[tokio::test]
async fn redis_hanging_while_idle() {
    let redis = RedisServer::start().await;
    let errand = Errand::new(&redis);
    let (mut w, out) = errand.spawn_worker_logged(&[]);
    out.wait_for("worker started", Duration::from_secs(20))
        .await;
    redis.pause();
    // Long enough for calls to be in flight against the frozen server.
    out.wait_for("fetch failed; backing off", Duration::from_secs(10))
        .await;
    let took = stop(&mut w, &out, "redis-hanging-idle", Duration::from_secs(8)).await;
    redis.resume();
    // A fetch in flight is let finish (its claims must be given back): at most one
    // response timeout (2 s) and a margin.
    assert!(took < Duration::from_secs(4), "{took:?}");
}

/// Redis lost while a task runs: the task ends, its outcome cannot be recorded, so the
/// worker holds it for the grace (Redis may come back), then abandons it to its lease and
/// exits 0. Once Redis is back the task is run again elsewhere: nothing accepted is lost.
#[tokio::test]
async fn redis_lost_with_a_task_running() {
    let mut redis = RedisServer::start_with(true).await;
    let errand = Errand::new(&redis).with("ERRAND__WORKER__SHUTDOWN_GRACE_SECS", "3");
    let settings = same_keys(&redis, &errand);
    let store = store_for(&settings);
    store.migrate().await.expect("migrate");
    let id = submit(&store, "sleep", json!({"duration_secs": 3}), 3, None).await;
    let (mut w, out) = errand.spawn_worker_logged(&[]);
    wait_running(&store, std::slice::from_ref(&id)).await;
    // The claim is on disk (appendfsync everysec) before the server dies; the task still
    // runs when the stop comes and ends during the grace.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    redis.kill().await;
    let took = stop(
        &mut w,
        &out,
        "redis-lost-task-running",
        Duration::from_secs(8),
    )
    .await;
    assert!(
        took >= Duration::from_secs(3) - Duration::from_millis(100),
        "the grace was given: {took:?}"
    );
    assert!(took < Duration::from_secs(6), "{took:?}");

    redis.restart().await;
    let (mut w2, out2) = errand.spawn_worker_logged(&[]);
    wait_succeeded(&store, std::slice::from_ref(&id), Duration::from_secs(20)).await;
    let r = record(&store, &id).await;
    assert_eq!(r.attempt, 2, "run again once its lease lapsed: {r:?}");
    stop(&mut w2, &out2, "after-redis-back", Duration::from_secs(5)).await;
}

/// A paused queue with tasks waiting: the stop is immediate and the tasks stay queued.
#[tokio::test]
async fn a_queue_paused() {
    let redis = RedisServer::start().await;
    let errand = Errand::new(&redis);
    let settings = same_keys(&redis, &errand);
    let store = store_for(&settings);
    store.migrate().await.expect("migrate");
    store.pause_queue("default").await.expect("pause");
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(submit(&store, "noop", json!({}), 3, None).await);
    }
    let (mut w, out) = errand.spawn_worker_logged(&[]);
    out.wait_for("worker started", Duration::from_secs(20))
        .await;
    let took = stop(&mut w, &out, "queue-paused", Duration::from_secs(5)).await;
    assert!(took < Duration::from_secs(2), "{took:?}");
    for id in &ids {
        assert_eq!(record(&store, id).await.state, TaskState::Queued);
    }
}

/// Tasks running: they finish and are recorded, then the worker exits 0 (well within its
/// grace); none is left behind.
#[tokio::test]
async fn tasks_running() {
    let redis = RedisServer::start().await;
    let errand = Errand::new(&redis);
    let settings = same_keys(&redis, &errand);
    let store = store_for(&settings);
    store.migrate().await.expect("migrate");
    let mut ids = Vec::new();
    for _ in 0..4 {
        ids.push(submit(&store, "sleep", json!({"duration_secs": 1}), 3, None).await);
    }
    let (mut w, out) = errand.spawn_worker_logged(&[]);
    wait_running(&store, &ids).await;
    let took = stop(&mut w, &out, "tasks-running", Duration::from_secs(30)).await;
    assert!(took < Duration::from_secs(3), "{took:?}");
    for id in &ids {
        let r = record(&store, id).await;
        assert_eq!((r.state, r.attempt), (TaskState::Succeeded, 1), "{r:?}");
    }
}

/// A second SIGTERM while tasks run stops at once: the tasks are left to their leases and
/// run again on another worker.
#[tokio::test]
async fn second_signal_stops_at_once() {
    let redis = RedisServer::start().await;
    let errand = Errand::new(&redis);
    let settings = same_keys(&redis, &errand);
    let store = store_for(&settings);
    store.migrate().await.expect("migrate");
    let mut ids = Vec::new();
    for _ in 0..2 {
        ids.push(submit(&store, "sleep", json!({"duration_secs": 3}), 3, None).await);
    }
    let (mut w, out) = errand.spawn_worker_logged(&[]);
    wait_running(&store, &ids).await;
    w.signal(Signal::SIGTERM);
    out.wait_for("shutdown requested", Duration::from_secs(5))
        .await;
    let second = Instant::now();
    w.signal(Signal::SIGTERM);
    let took = exited(
        &mut w,
        &out,
        "second-signal",
        second,
        Duration::from_secs(5),
    )
    .await;
    assert!(took < Duration::from_secs(2), "{took:?}");
    assert!(out.contains("second signal: stopping at once"));
    for id in &ids {
        let r = record(&store, id).await;
        assert_eq!(
            (r.state, r.error),
            (TaskState::Running, None),
            "left to its lease"
        );
    }
    // Another worker takes them over once their leases (3 s) lapse.
    let (mut w2, out2) = errand.spawn_worker_logged(&[]);
    wait_succeeded(&store, &ids, Duration::from_secs(20)).await;
    for id in &ids {
        assert_eq!(record(&store, id).await.attempt, 2);
    }
    stop(
        &mut w2,
        &out2,
        "after-second-signal",
        Duration::from_secs(5),
    )
    .await;
}

/// A webhook attempt in flight to a receiver that never answers: it counts against the
/// grace (1 s here), not after it, and its delivery is sent again later.
#[tokio::test]
async fn a_webhook_attempt_in_flight() {
    let redis = RedisServer::start().await;
    // Accepts, reads, never answers.
    let receiver = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", receiver.local_addr().unwrap());
    let (got, mut seen) = tokio::sync::mpsc::unbounded_channel();
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((mut s, _)) = receiver.accept().await {
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf).await;
            let _ = got.send(());
            held.push(s);
        }
    });
    let errand = Errand::new(&redis)
        .with(
            "ERRAND__WEBHOOKS__SECRETS",
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        )
        .with("ERRAND__WEBHOOKS__DESTINATIONS__ALLOW", "127.0.0.1")
        .with("ERRAND__WEBHOOKS__POLL_MS", "50")
        .with("ERRAND__WORKER__SHUTDOWN_GRACE_SECS", "1");
    let _api = errand.spawn_api().await;
    let (mut w, out) = errand.spawn_worker_logged(&[]);
    let http = reqwest::Client::new();
    let task = errand_testkit::api::submit(
        &http,
        &errand.base_url(),
        json!({"kind": "noop", "callback": {"url": url, "events": ["succeeded"]}}),
    )
    .await;
    let id = task["id"].as_str().unwrap().to_owned();
    errand_testkit::api::wait_state(
        &http,
        &errand.base_url(),
        &id,
        "succeeded",
        Duration::from_secs(10),
    )
    .await;
    tokio::time::timeout(Duration::from_secs(10), seen.recv())
        .await
        .expect("the delivery reached the receiver");
    let took = stop(&mut w, &out, "webhook-in-flight", Duration::from_secs(8)).await;
    // The attempt's own bound is webhooks.timeout_ms (10 s): the stop did not wait for it.
    assert!(took < Duration::from_secs(3), "{took:?}");
    assert!(out.contains("webhook attempts in flight abandoned"));
    holder.abort();
}
