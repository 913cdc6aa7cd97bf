//! W5: W2's drain over three queues whose hash tags land on the three masters of a real
//! Redis Cluster (3 masters, 3 replicas), against the same three queues on one Redis, with
//! Redis CPU per task for both (docs/scaling.md: the cost model).

use std::time::{Duration, Instant};

use errand_testkit::{Errand, Proc, RedisServer, cluster::RedisCluster, wait_for};
use serde_json::json;

use crate::deploy::cpu_secs;

type Figures = Vec<(&'static str, f64)>;

/// CPU seconds of the Redis servers on `ports` so far.
async fn cpu(ports: &[u16]) -> anyhow::Result<f64> {
    let mut total = 0.0;
    for p in ports {
        let c = redis::Client::open(format!("redis://127.0.0.1:{p}"))?;
        let mut c = c.get_multiplexed_async_connection().await?;
        let info: String = redis::cmd("INFO").arg("cpu").query_async(&mut c).await?;
        let get = |k: &str| {
            info.lines()
                .find_map(|l| l.strip_prefix(k))
                .and_then(|v| v.trim().parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        total += get("used_cpu_user:") + get("used_cpu_sys:");
    }
    Ok(total)
}

/// Enqueues `n` tasks round-robin over `queues`, drains them with one worker process
/// (concurrency 100 per queue), and returns (tasks/s, Redis µs per task on `masters`,
/// on `replicas`, worker µs per task).
async fn drain(
    url: &str,
    queues: &[String],
    masters: &[u16],
    replicas: &[u16],
    n: usize,
) -> anyhow::Result<(f64, f64, f64, f64)> {
    let errand = Errand::at(url)
        .with("RUST_LOG", "warn")
        .with("ERRAND__WORKER__LEASE_SECS", "10");
    let _api = errand.spawn_api().await;
    let http = reqwest::Client::new();
    let base = errand.base_url();
    let mut i = 0;
    while i < n {
        let end = (i + 1000).min(n);
        let tasks: Vec<_> = (i..end)
            .map(
                |i| json!({"kind": "noop", "queue": queues[i % queues.len()], "payload": {"i": i}}),
            )
            .collect();
        let res = http
            .post(format!("{base}/v1/tasks/batch"))
            .json(&json!({ "tasks": tasks }))
            .send()
            .await?;
        anyhow::ensure!(res.status() == 202, "batch answered {}", res.status());
        i = end;
    }
    let (m0, r0) = (cpu(masters).await?, cpu(replicas).await?);
    let flag = queues
        .iter()
        .map(|q| format!("{q}=100"))
        .collect::<Vec<_>>()
        .join(",");
    let started = Instant::now();
    let worker: Proc = errand.spawn_worker(&["--queues", &flag]);
    wait_for(
        &format!("{n} tasks to succeed"),
        Duration::from_secs(600),
        || {
            let (http, base) = (http.clone(), base.clone());
            async move {
                let qs: serde_json::Value = http
                    .get(format!("{base}/v1/queues"))
                    .send()
                    .await
                    .ok()?
                    .json()
                    .await
                    .ok()?;
                let done: u64 = qs["queues"]
                    .as_array()?
                    .iter()
                    .filter_map(|q| q["counts"]["succeeded"].as_u64())
                    .sum();
                (done as usize >= n).then_some(())
            }
        },
    )
    .await;
    let secs = started.elapsed().as_secs_f64();
    let us = |s: f64| s * 1e6 / n as f64;
    let worker_us = us(cpu_secs(&worker));
    Ok((
        n as f64 / secs,
        us(cpu(masters).await? - m0),
        us(cpu(replicas).await? - r0),
        worker_us,
    ))
}

pub(crate) async fn w5(n: usize) -> anyhow::Result<Figures> {
    let cluster = RedisCluster::start().await;
    let qs = cluster.queues_on_distinct_masters(3).await;
    let masters: Vec<u16> = cluster
        .masters()
        .await
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    let replicas: Vec<u16> = cluster
        .nodes
        .iter()
        .map(|n| n.port)
        .filter(|p| !masters.contains(p))
        .collect();
    let (c_tps, c_redis, c_repl, c_worker) =
        drain(&cluster.url(), &qs, &masters, &replicas, n).await?;
    drop(cluster);
    let single = RedisServer::start().await;
    let (s_tps, s_redis, _, s_worker) = drain(&single.url(), &qs, &[single.port()], &[], n).await?;
    eprintln!(
        "   W5 cluster: {c_tps:.0} tasks/s, masters {c_redis:.1} us/task, replicas {c_repl:.1} us/task, worker {c_worker:.1} us/task"
    );
    eprintln!(
        "   W5 one Redis: {s_tps:.0} tasks/s, redis {s_redis:.1} us/task, worker {s_worker:.1} us/task"
    );
    Ok(vec![
        ("w5_cluster_tps", c_tps),
        ("w5_single_tps", s_tps),
        ("w5_cluster_redis_us_per_task", c_redis),
        ("w5_cluster_replica_us_per_task", c_repl),
        ("w5_single_redis_us_per_task", s_redis),
        ("w5_cluster_worker_us_per_task", c_worker),
        ("w5_single_worker_us_per_task", s_worker),
    ])
}
