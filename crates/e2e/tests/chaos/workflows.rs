//! Workflows through faults (docs/workflows.md): a worker SIGKILLed mid-workflow, and Redis
//! SIGKILLed and started again (AOF on) mid-workflow. Every workflow must end, none may
//! hang, and here (every step can succeed) every one must succeed.

use std::time::{Duration, Instant};

use errand_testkit::{Errand, Proc, RedisServer, wait_for};
use nix::sys::signal::Signal;
use serde_json::{Value, json};

/// A workflow of every shape: a group of four sleeps, a chord into a `gather`, a map step
/// spawning three sleeps, and a chain of two after both.
fn workflow(i: usize) -> Value {
    let sleep = |s: f64| json!({"duration_secs": s});
    json!({"id": format!("wf-{i}"), "steps": [
        {"name": "a", "kind": "sleep", "payload": sleep(0.3), "max_attempts": 5},
        {"name": "b", "kind": "sleep", "payload": sleep(0.5), "max_attempts": 5},
        {"name": "c", "kind": "sleep", "payload": sleep(0.2), "max_attempts": 5},
        {"name": "d", "kind": "sleep", "payload": sleep(0.4), "max_attempts": 5},
        {"name": "join", "kind": "gather", "max_attempts": 5,
         "after": ["a", "b", "c", {"step": "d", "on_failure": "run"}], "on_failure": "fail"},
        {"name": "split", "kind": "noop", "map": true, "max_attempts": 5, "payload": {"spawn": [
            {"kind": "sleep", "payload": sleep(0.3), "max_attempts": 5},
            {"kind": "sleep", "payload": sleep(0.3), "max_attempts": 5},
            {"kind": "sleep", "payload": sleep(0.3), "max_attempts": 5}
        ]}},
        {"name": "then", "kind": "noop", "max_attempts": 5, "after": ["join", "split"], "on_failure": "fail"},
        {"name": "last", "kind": "gather", "max_attempts": 5, "after": ["then"], "on_failure": "fail"}
    ]})
}

async fn submit_all(http: &reqwest::Client, base: &str, n: usize) {
    for i in 0..n {
        let res = http
            .post(format!("{base}/v1/workflows"))
            .json(&workflow(i))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 202, "{}", res.text().await.unwrap());
    }
}

/// Every workflow's state once all have ended (or the deadline passed: then the test fails
/// naming the ones still running), and how long that took.
async fn settle(
    http: &reqwest::Client,
    base: &str,
    n: usize,
    limit: Duration,
) -> (Vec<Value>, Duration) {
    let t = Instant::now();
    let all = wait_for("every workflow to end", limit, || async {
        let mut all = Vec::with_capacity(n);
        for i in 0..n {
            let w: Value = http
                .get(format!("{base}/v1/workflows/wf-{i}"))
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            if w["state"] == "running" {
                return None;
            }
            all.push(w);
        }
        Some(all)
    })
    .await;
    (all, t.elapsed())
}

fn tally(all: &[Value]) -> (usize, usize, usize) {
    let ok = all.iter().filter(|w| w["state"] == "succeeded").count();
    let steps: usize = all
        .iter()
        .map(|w| w["steps"].as_array().unwrap().len())
        .sum();
    let retried = all
        .iter()
        .flat_map(|w| w["steps"].as_array().unwrap().clone())
        .filter(|s| s["state"] == "succeeded" && !s["skipped"].as_bool().unwrap())
        .count();
    (ok, steps, retried)
}

/// 40 workflows on two workers; one worker is SIGKILLed while it runs their steps, and a
/// new one takes its place. Its lost attempts run again once their leases lapse; every
/// workflow ends `succeeded`, and the last step of each received the ends it waited for.
#[tokio::test]
#[ignore = "chaos: heavy; `just chaos` runs it"]
async fn a_worker_killed_mid_workflow_leaves_no_workflow_waiting() {
    let redis = RedisServer::start().await;
    let errand = Errand::new(&redis).with("ERRAND__WORKER__LEASE_SECS", "2");
    let _api = errand.spawn_api().await;
    let mut victim = errand.spawn_worker(&["--queues", "default=16"]);
    let _survivor = errand.spawn_worker(&["--queues", "default=16"]);
    let http = reqwest::Client::new();
    let base = errand.base_url();
    let n = 40;
    let t = Instant::now();
    submit_all(&http, &base, n).await;
    // Mid-workflow: some steps ended, many running.
    wait_for("steps to be under way", Duration::from_secs(20), || async {
        let w: Value = http
            .get(format!("{base}/v1/workflows/wf-{}", n / 2))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        w["steps"]
            .as_array()?
            .iter()
            .any(|s| s["state"] == "succeeded")
            .then_some(())
    })
    .await;
    victim.signal(Signal::SIGKILL);
    assert_eq!(victim.wait_exit(Duration::from_secs(5)).await, None);
    let killed_at = t.elapsed();
    let _replacement: Proc = errand.spawn_worker(&["--queues", "default=16"]);
    let (all, took) = settle(&http, &base, n, Duration::from_secs(120)).await;
    let (ok, steps, ran) = tally(&all);
    let lost: usize = {
        let mut lost = 0;
        for w in &all {
            for s in w["steps"].as_array().unwrap() {
                let t: Value = http
                    .get(format!(
                        "{base}/v1/tasks/{}",
                        s["task_id"].as_str().unwrap()
                    ))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                if t["attempt"].as_u64().unwrap_or(0) > 1 {
                    lost += 1;
                }
            }
        }
        lost
    };
    eprintln!(
        "chaos[workflow-worker-kill] workflows={n} succeeded={ok} steps={steps} steps_succeeded={ran} \
         steps_run_again_after_the_kill={lost} killed_at_ms={} ended_all_ms={}",
        killed_at.as_millis(),
        (killed_at + took).as_millis()
    );
    assert_eq!(
        ok,
        n,
        "every workflow succeeds: {:?}",
        all.iter()
            .filter(|w| w["state"] != "succeeded")
            .collect::<Vec<_>>()
    );
    assert!(lost > 0, "the kill hit running steps");
    for w in &all {
        let last = w["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == "last")
            .unwrap();
        assert_eq!(
            last["result"]["inputs"]["then"]["state"], "succeeded",
            "{w}"
        );
    }
}

/// 40 workflows while Redis (AOF, fsync always) is SIGKILLed for 2 s and started again.
/// api and workers reconnect on their own; ends applied before the kill are in the AOF, and
/// what was in flight is applied again from the outboxes: every workflow ends `succeeded`.
#[tokio::test]
#[ignore = "chaos: heavy; `just chaos` runs it"]
async fn redis_restarted_mid_workflow_leaves_no_workflow_waiting() {
    let mut redis = RedisServer::start_with(true).await;
    let errand = Errand::new(&redis);
    let _api = errand.spawn_api().await;
    let _workers: Vec<Proc> = (0..2)
        .map(|_| errand.spawn_worker(&["--queues", "default=16"]))
        .collect();
    let http = reqwest::Client::new();
    let base = errand.base_url();
    let n = 40;
    let t = Instant::now();
    submit_all(&http, &base, n).await;
    wait_for("steps to be under way", Duration::from_secs(20), || async {
        let w: Value = http
            .get(format!("{base}/v1/workflows/wf-{}", n / 2))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        w["steps"]
            .as_array()?
            .iter()
            .any(|s| s["state"] == "succeeded")
            .then_some(())
    })
    .await;
    redis.kill().await;
    let killed_at = t.elapsed();
    // The outage itself: a fixed span of fault, not a wait for anything.
    tokio::time::sleep(Duration::from_secs(2)).await;
    redis.restart().await;
    let (all, took) = settle(&http, &base, n, Duration::from_secs(120)).await;
    let (ok, steps, ran) = tally(&all);
    eprintln!(
        "chaos[workflow-redis-restart] workflows={n} succeeded={ok} steps={steps} steps_succeeded={ran} \
         killed_at_ms={} ended_all_ms={}",
        killed_at.as_millis(),
        (killed_at + took).as_millis()
    );
    assert_eq!(
        ok,
        n,
        "every workflow succeeds: {:?}",
        all.iter()
            .filter(|w| w["state"] != "succeeded")
            .collect::<Vec<_>>()
    );
}
