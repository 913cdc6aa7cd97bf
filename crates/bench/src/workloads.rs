//! The workloads (docs/performance.md). Each run starts a fresh deployment (own redis-server,
//! api, workers), so runs do not inherit each other's keys, caches or connections.

use std::time::{Duration, Instant};

use anyhow::ensure;
use errand_core::store::KindDefinition;
use serde_json::{Value, json};

use crate::deploy::{Deployment, cpu_secs, peak_rss_mb};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Workload {
    /// Submit throughput over HTTP: one client, 64 connections, batches.
    #[value(name = "W1", alias = "w1")]
    W1,
    /// Drain a queued backlog with one and with two worker processes.
    #[value(name = "W2", alias = "w2")]
    W2,
    /// 2,000 tasks of 50 ms I/O each at concurrency 100.
    #[value(name = "W3", alias = "w3")]
    W3,
    /// Submit-to-terminal latency on an idle, warm worker.
    #[value(name = "W4", alias = "w4")]
    W4,
    /// W2 over three queues on a Redis Cluster's three masters, and on one Redis.
    #[value(name = "W5", alias = "w5")]
    W5,
    /// One Python SDK process draining noop tasks over the HTTP worker protocol.
    #[value(name = "W6", alias = "w6")]
    W6,
    /// Workflows: a chord of 1,000 into one, and a chain of 100.
    #[value(name = "W7", alias = "w7")]
    W7,
    /// Flow control: a 500/s queue rate and a concurrency key of 2, three workers.
    #[value(name = "W8", alias = "w8")]
    W8,
}

impl Workload {
    pub(crate) const ALL: [Workload; 8] = [
        Self::W1,
        Self::W2,
        Self::W3,
        Self::W4,
        Self::W5,
        Self::W6,
        Self::W7,
        Self::W8,
    ];
}

type Figures = Vec<(&'static str, f64)>;

pub(crate) async fn run(w: Workload, tasks: usize) -> anyhow::Result<Figures> {
    match w {
        Workload::W1 => w1(tasks).await,
        Workload::W2 => w2(tasks).await,
        Workload::W3 => w3().await,
        Workload::W4 => w4().await,
        Workload::W5 => crate::cluster::w5(tasks).await,
        Workload::W6 => crate::python::w6(tasks).await,
        Workload::W7 => crate::workflows::w7().await,
        Workload::W8 => crate::flow::w8(tasks).await,
    }
}

fn noop(i: usize) -> Value {
    json!({"kind": "noop", "payload": {"i": i}})
}

/// W1d's kind: rows of numbers with a title, bounded like a real kind's payload.
fn rows_kind() -> KindDefinition {
    KindDefinition {
        name: "bench.rows".into(),
        aliases: vec![],
        summary: "Rows of numbers (the benchmark's registered kind).".into(),
        idempotent: true,
        payload_schema: json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["rows"],
            "properties": {
                "rows": {"type": "array", "minItems": 1, "maxItems": 100, "items": {
                    "type": "object", "additionalProperties": false, "required": ["n"],
                    "properties": {"n": {"type": "integer", "minimum": 0}}}},
                "title": {"type": "string", "maxLength": 64}
            }
        }),
        result_schema: json!({}),
        example: json!({"rows": [{"n": 1}]}),
        payload_name: "BenchRowsPayload".into(),
        result_name: "BenchRowsResult".into(),
    }
}

fn rows(i: usize) -> Value {
    json!({"kind": "bench.rows", "payload": {"rows": [{"n": i}, {"n": i + 1}, {"n": i + 2}], "title": "bench"}})
}

async fn post_one(d: &Deployment, body: &Value) -> anyhow::Result<()> {
    let res = d
        .http
        .post(format!("{}/v1/tasks", d.base))
        .json(body)
        .send()
        .await?;
    ensure!(res.status() == 202, "submit answered {}", res.status());
    // Read the body so the connection goes back to the pool.
    res.bytes().await?;
    Ok(())
}

async fn w1(n: usize) -> anyhow::Result<Figures> {
    let d = Deployment::start().await?;
    let mut out = Figures::new();

    let t = Instant::now();
    for i in 0..n {
        post_one(&d, &noop(i)).await?;
    }
    out.push(("w1_single_tps", n as f64 / t.elapsed().as_secs_f64()));

    let t = Instant::now();
    let cpu = cpu_secs(&d.api);
    let per = n / 64;
    let clients = (0..64).map(|c| {
        let d = &d;
        async move {
            for i in 0..per {
                post_one(d, &noop(c * per + i)).await?;
            }
            anyhow::Ok(())
        }
    });
    for r in futures::future::join_all(clients).await {
        r?;
    }
    let noop_tps = (per * 64) as f64 / t.elapsed().as_secs_f64();
    let noop_us = (cpu_secs(&d.api) - cpu) * 1e6 / (per * 64) as f64;
    out.push(("w1_conc64_tps", noop_tps));
    out.push(("w1_api_cpu_us_per_submit", noop_us));

    // Batches of 1,000 from 4 concurrent senders, so the api always has one to work on.
    let t = Instant::now();
    let quarter = n / 4;
    let senders = (0..4).map(|_| d.enqueue(quarter, noop));
    for r in futures::future::join_all(senders).await {
        r?;
    }
    out.push((
        "w1_batch_tps",
        (quarter * 4) as f64 / t.elapsed().as_secs_f64(),
    ));

    // W1d: W1b again with a kind only the registry knows, so each submit is validated by its
    // JSON Schema (as a worker of the user's own would have registered it). Last, so W1a–c
    // meet the Redis they always did.
    d.register_kind(rows_kind()).await?;
    let t = Instant::now();
    let cpu = cpu_secs(&d.api);
    let clients = (0..64).map(|c| {
        let d = &d;
        async move {
            for i in 0..per {
                post_one(d, &rows(c * per + i)).await?;
            }
            anyhow::Ok(())
        }
    });
    for r in futures::future::join_all(clients).await {
        r?;
    }
    let registered_tps = (per * 64) as f64 / t.elapsed().as_secs_f64();
    out.push(("w1_registered_conc64_tps", registered_tps));
    out.push(("w1_registered_vs_noop", registered_tps / noop_tps));
    let registered_us = (cpu_secs(&d.api) - cpu) * 1e6 / (per * 64) as f64;
    out.push(("w1_registered_api_cpu_us_per_submit", registered_us));

    Ok(out)
}

async fn w2(n: usize) -> anyhow::Result<Figures> {
    let mut out = Figures::new();
    for procs in [1usize, 2] {
        // A fresh deployment per case: the api's peak RSS is this case's alone.
        let d = Deployment::start().await?;
        let before = d.used_memory().await?;
        d.enqueue(n, noop).await?;
        // Command stats from here on are the drain's alone.
        d.reset_command_stats().await?;
        let redis_cpu = d.redis_cpu_secs().await?;
        let api_cpu = cpu_secs(&d.api);
        let workers: Vec<_> = (0..procs).map(|_| d.worker(100)).collect();
        d.wait_succeeded(n, Duration::from_secs(600)).await;
        // Where the drain's CPU went, per task: what limits the figure.
        let per_task_us = |secs: f64| secs * 1e6 / n as f64;
        let redis_us = per_task_us(d.redis_cpu_secs().await? - redis_cpu);
        let worker_us = per_task_us(workers.iter().map(cpu_secs).sum::<f64>());
        let api_us = per_task_us(cpu_secs(&d.api) - api_cpu);
        eprintln!(
            "   cpu per task ({procs} proc): redis {redis_us:.1} us, workers {worker_us:.1} us, api {api_us:.1} us"
        );
        // Before span(): its own reads would count.
        let commands = d.top_commands(16).await?;
        let (first, last) = d.span().await?;
        let secs = (last - first).num_milliseconds().max(1) as f64 / 1000.0;
        if procs == 1 {
            out.push(("w2_redis_cpu_us_per_task", redis_us));
            out.push(("w2_worker_cpu_us_per_task", worker_us));
            // Top-level calls only: a script's usec already holds the commands it ran.
            let scripts: u64 = commands
                .iter()
                .filter(|(c, _, _)| c == "evalsha" || c == "eval")
                .map(|(_, _, usec)| usec)
                .sum();
            let script_calls: u64 = commands
                .iter()
                .filter(|(c, _, _)| c == "evalsha" || c == "eval")
                .map(|(_, calls, _)| calls)
                .sum();
            out.push(("w2_redis_script_us_per_task", scripts as f64 / n as f64));
            out.push((
                "w2_redis_script_calls_per_task",
                script_calls as f64 / n as f64,
            ));
            for (cmd, calls, usec) in commands {
                eprintln!(
                    "   redis {cmd:<18} calls {calls:>8}  usec/call {:>7.2}  usec/task {:>7.2}",
                    usec as f64 / calls as f64,
                    usec as f64 / n as f64
                );
            }
            out.push(("w2_drain_1proc_tps", n as f64 / secs));
            out.push(("worker_rss_mb", peak_rss_mb(&workers[0])));
            out.push(("api_rss_mb", peak_rss_mb(&d.api)));
            let after = d.used_memory().await?;
            out.push(("redis_bytes_per_task", (after - before) / n as f64));
        } else {
            let two = n as f64 / secs;
            out.push(("w2_drain_2proc_tps", two));
            if let Some((_, one)) = out.iter().find(|(k, _)| *k == "w2_drain_1proc_tps") {
                let ratio = two / one;
                out.push(("w2_2proc_vs_1proc", ratio));
            }
        }
        for w in workers {
            Deployment::stop(w).await;
        }
        if procs == 1 {
            let (on, on_cpu_us) = w2_metrics_on(n).await?;
            out.push(("w2_drain_1proc_metrics_tps", on));
            // Steadier than the throughput ratio: a drain lasts well under a second.
            out.push(("w2_worker_cpu_metrics_us_per_task", on_cpu_us));
            out.push(("w2_metrics_on_vs_off", on / (n as f64 / secs)));
            // The backend alone on the same Redis (errand's workers stopped), for errand's
            // overhead over it.
            let raw = crate::raw::drain(&d.redis_url(), n).await?;
            out.push(("w2_raw_apalis_tps", raw));
            out.push(("w2_errand_vs_raw", (n as f64 / secs) / raw));
        }
    }
    Ok(out)
}

/// W2's one-process drain with metrics on: the worker's listener, and Prometheus's load
/// (the worker's and the api's /metrics scraped every second while it drains).
/// Returns the drain's tasks/s and the worker's CPU per task (µs), scrapes included.
async fn w2_metrics_on(n: usize) -> anyhow::Result<(f64, f64)> {
    let d = Deployment::start().await?;
    d.enqueue(n, noop).await?;
    let (worker, addr) = d.worker_with_metrics(100).await;
    let stop = tokio_util::sync::CancellationToken::new();
    let scraper = {
        let (http, stop) = (d.http.clone(), stop.clone());
        let urls = [
            format!("http://{addr}/metrics"),
            format!("{}/metrics", d.base),
        ];
        tokio::spawn(async move {
            let mut scrapes = 0usize;
            loop {
                for u in &urls {
                    if let Ok(r) = http.get(u).send().await
                        && r.bytes().await.is_ok()
                    {
                        scrapes += 1;
                    }
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = stop.cancelled() => return scrapes,
                }
            }
        })
    };
    d.wait_succeeded(n, Duration::from_secs(600)).await;
    stop.cancel();
    let scrapes = scraper.await?;
    let (first, last) = d.span().await?;
    let secs = (last - first).num_milliseconds().max(1) as f64 / 1000.0;
    let cpu_us = cpu_secs(&worker) * 1e6 / n as f64;
    eprintln!("   metrics on: {scrapes} scrapes during the drain, worker {cpu_us:.1} us per task");
    Deployment::stop(worker).await;
    Ok((n as f64 / secs, cpu_us))
}

async fn w3() -> anyhow::Result<Figures> {
    let d = Deployment::start().await?;
    let n = 2_000;
    d.enqueue(
        n,
        |i| json!({"kind": "sleep", "payload": {"duration_secs": 0.05}, "id": format!("w3-{i}")}),
    )
    .await?;
    let w = d.worker(100);
    d.wait_succeeded(n, Duration::from_secs(120)).await;
    let (first, last) = d.span().await?;
    Deployment::stop(w).await;
    Ok(vec![(
        "w3_wall_s",
        (last - first).num_milliseconds() as f64 / 1000.0,
    )])
}

async fn w4() -> anyhow::Result<Figures> {
    let d = Deployment::start().await?;
    let w = d.worker(16);
    let mut times = Vec::with_capacity(200);
    for i in 0..210 {
        let t = Instant::now();
        let res = d
            .http
            .post(format!("{}/v1/tasks", d.base))
            .json(&noop(i))
            .send()
            .await?;
        ensure!(res.status() == 202, "submit answered {}", res.status());
        let rec: Value = res.json().await?;
        let id = rec["id"].as_str().unwrap_or_default().to_owned();
        let done: Value = d
            .http
            .get(format!("{}/v1/tasks/{id}?wait=10", d.base))
            .send()
            .await?
            .json()
            .await?;
        ensure!(
            done["state"] == "succeeded",
            "task {id} ended {}",
            done["state"]
        );
        // The first 10 warm up connections, caches and the worker.
        if i >= 10 {
            times.push(t.elapsed().as_secs_f64() * 1000.0);
        }
    }
    Deployment::stop(w).await;
    times.sort_by(f64::total_cmp);
    let pct = |p: f64| times[((times.len() as f64 * p).ceil() as usize).min(times.len()) - 1];
    Ok(vec![("w4_p50_ms", pct(0.50)), ("w4_p99_ms", pct(0.99))])
}
