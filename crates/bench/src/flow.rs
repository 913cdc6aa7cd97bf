//! W8: flow control under three worker processes (docs/flow-control.md).
//! - a queue limited to 500 tasks/s (burst 50): the rate errand started them at over 10 s,
//!   and the most started in any one-second window, from the records' `started_at`;
//! - a concurrency key limited to 2: the most of its tasks running at once (sampled from
//!   Redis every few ms, and exact from the records' start and finish), while 5,000 tasks
//!   of other keys drain; their drain rate against the same drain with no limits.
//!
//! Every case drains a backlog queued while the queue was paused, so the drain is measured
//! alone.

use std::time::Duration;

use anyhow::ensure;
use errand_testkit::{Proc, wait_for};
use serde_json::{Value, json};

use crate::deploy::Deployment;

const LIMIT: f64 = 500.0;
const BURST: f64 = 50.0;
const WORKERS: usize = 3;

type Figures = Vec<(&'static str, f64)>;

async fn call(
    d: &Deployment,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> anyhow::Result<()> {
    let mut req = d.http.request(method, format!("{}{path}", d.base));
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await?;
    ensure!(
        res.status().is_success(),
        "{path} answered {}",
        res.status()
    );
    res.bytes().await?;
    Ok(())
}

/// Queues `tasks` behind a paused queue, starts the workers, resumes, waits for `n`
/// successes; returns the workers (still running).
async fn drain(d: &Deployment, tasks: Vec<Value>, timeout: Duration) -> anyhow::Result<Vec<Proc>> {
    let n = tasks.len();
    call(d, reqwest::Method::POST, "/v1/queues/default/pause", None).await?;
    d.enqueue(n, |i| tasks[i].clone()).await?;
    let workers: Vec<Proc> = (0..WORKERS).map(|_| d.worker(100)).collect();
    // Every worker registered before the drain starts, so all three share it from the start.
    wait_for("three workers", Duration::from_secs(30), || async {
        let w: Value = d
            .http
            .get(format!("{}/v1/workers", d.base))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        (w["workers"].as_array()?.len() >= WORKERS).then_some(())
    })
    .await;
    call(d, reqwest::Method::POST, "/v1/queues/default/resume", None).await?;
    d.wait_succeeded(n, timeout).await;
    Ok(workers)
}

/// (start ms, end ms, concurrency key) of every succeeded task of `default`, both in Redis's
/// clock: the claim's `started_ms`, and the finish's time as the terminal index holds it
/// (its score is the record's expiry: the finish plus `result_ttl_secs`). The workers'
/// `started_at` and `finished_at` are their own clocks' readings before each call, so
/// overlaps read from them can be off by the calls' flight.
async fn records(d: &Deployment) -> anyhow::Result<Vec<(i64, i64, String)>> {
    let mut c = d.conn.clone();
    let ids: Vec<(String, f64)> = redis::cmd("ZRANGE")
        .arg(format!("{}:{{default}}:idx:succeeded", d.prefix))
        .arg(0)
        .arg(-1)
        .arg("WITHSCORES")
        .query_async(&mut c)
        .await?;
    let mut out = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(5_000) {
        let mut pipe = redis::pipe();
        for (id, _) in chunk {
            pipe.cmd("HMGET")
                .arg(format!("{}:{{default}}:task:{id}", d.prefix))
                .arg("started_ms")
                .arg("result_ttl_secs")
                .arg("concurrency_key");
        }
        let rows: Vec<(i64, i64, Option<String>)> = pipe.query_async(&mut c).await?;
        for ((_, expiry), (started, ttl, k)) in chunk.iter().zip(rows) {
            out.push((started, *expiry as i64 - ttl * 1000, k.unwrap_or_default()));
        }
    }
    Ok(out)
}

async fn stop_all(workers: Vec<Proc>) {
    for w in workers {
        Deployment::stop(w).await;
    }
}

/// W2's one-process drain of `n` noops: plain, with priorities in use (each task one of
/// 1 to 9), or with every limit configured but binding none. Returns tasks/s.
async fn w2_like(n: usize, case: &str) -> anyhow::Result<f64> {
    let d = Deployment::start().await?;
    if case == "idle" {
        call(
            &d,
            reqwest::Method::PUT,
            "/v1/queues/default/limits",
            Some(
                json!({"rate": {"count": 1_000_000, "period_ms": 1000, "burst": 1_000_000},
                "kinds": {"sleep": {"count": 1, "period_ms": 1000}}, "per_key": 100}),
            ),
        )
        .await?;
    }
    let prio = case == "priorities";
    d.enqueue(n, |i| {
        if prio {
            json!({"kind": "noop", "payload": {"i": i}, "priority": 1 + i % 9})
        } else {
            json!({"kind": "noop", "payload": {"i": i}})
        }
    })
    .await?;
    let w = d.worker(100);
    d.wait_succeeded(n, Duration::from_secs(600)).await;
    let (first, last) = d.span().await?;
    Deployment::stop(w).await;
    Ok(n as f64 / ((last - first).num_milliseconds().max(1) as f64 / 1000.0))
}

pub(crate) async fn w8(n: usize) -> anyhow::Result<Figures> {
    let mut out = Figures::new();

    // W2 with flow control in use and idle, against plain W2 in the same run.
    let plain = w2_like(n, "plain").await?;
    let prio = w2_like(n, "priorities").await?;
    let idle = w2_like(n, "idle").await?;
    eprintln!(
        "   W8 W2 drain: plain {plain:.0}/s, priorities 1-9 {prio:.0}/s, limits idle {idle:.0}/s"
    );
    out.push(("w8_w2_priorities_vs_plain", prio / plain));
    out.push(("w8_w2_limits_idle_vs_plain", idle / plain));

    // The rate: 500/s, burst 50, 6,000 tasks (12 s of tokens).
    let d = Deployment::start().await?;
    call(
        &d,
        reqwest::Method::PUT,
        "/v1/queues/default/limits",
        Some(json!({"rate": {"count": LIMIT as u32, "period_ms": 1000, "burst": BURST as u32}})),
    )
    .await?;
    let n = 6_000;
    let tasks = (0..n)
        .map(|i| json!({"kind": "noop", "payload": {"i": i}}))
        .collect();
    let workers = drain(&d, tasks, Duration::from_secs(120)).await?;
    let mut starts: Vec<i64> = records(&d).await?.iter().map(|r| r.0).collect();
    starts.sort_unstable();
    let t0 = starts[0];
    let in_10s = starts.iter().filter(|&&s| s < t0 + 10_000).count();
    let rate = in_10s as f64 / 10.0;
    // The most started in any window of one second (two pointers over the sorted starts).
    let (mut most, mut lo) = (0usize, 0usize);
    for hi in 0..starts.len() {
        while starts[hi] - starts[lo] >= 1000 {
            lo += 1;
        }
        most = most.max(hi - lo + 1);
    }
    eprintln!(
        "   W8 rate: {in_10s} started in the first 10 s ({rate:.1}/s against {LIMIT}), most in any 1 s window {most} (limit + burst {})",
        LIMIT + BURST
    );
    out.push(("w8_rate_tps", rate));
    out.push(("w8_rate_error_pct", (rate / LIMIT - 1.0).abs() * 100.0));
    out.push(("w8_max_1s_window", most as f64));
    stop_all(workers).await;
    drop(d);

    // The key: 100 tasks of 20 ms under key `hot` (limit 2), first in the queue, and 5,000
    // noops of 1,000 other keys behind them.
    let others = 5_000;
    let mixed = |hot: bool| -> Vec<Value> {
        let mut t: Vec<Value> = Vec::new();
        if hot {
            t.extend((0..100).map(|_| {
                json!({"kind": "sleep", "payload": {"duration_secs": 0.02}, "concurrency_key": "hot"})
            }));
        }
        t.extend((0..others).map(|i| {
            json!({"kind": "noop", "payload": {"i": i}, "concurrency_key": format!("k{}", i % 1000)})
        }));
        t
    };
    let d = Deployment::start().await?;
    call(
        &d,
        reqwest::Method::PUT,
        "/v1/queues/default/limits",
        Some(json!({"per_key": 2})),
    )
    .await?;
    let stop = tokio_util::sync::CancellationToken::new();
    let sampler = {
        let (mut c, key, stop) = (
            d.conn.clone(),
            format!("{}:{{default}}:ck:run:hot", d.prefix),
            stop.clone(),
        );
        tokio::spawn(async move {
            let (mut most, mut samples) = (0i64, 0u64);
            while !stop.is_cancelled() {
                if let Ok(n) = redis::cmd("SCARD")
                    .arg(&key)
                    .query_async::<i64>(&mut c)
                    .await
                {
                    most = most.max(n);
                    samples += 1;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            (most, samples)
        })
    };
    let workers = drain(&d, mixed(true), Duration::from_secs(120)).await?;
    stop.cancel();
    let (sampled, samples) = sampler.await?;
    let recs = records(&d).await?;
    // Exact from the records: at a tie an end counts before a start (the key was freed
    // before the next one claimed it).
    let mut events: Vec<(i64, i32)> = recs
        .iter()
        .filter(|r| r.2 == "hot")
        .flat_map(|r| [(r.0, 1), (r.1, -1)])
        .collect();
    events.sort_unstable();
    let (mut now, mut exact) = (0i32, 0i32);
    for (_, e) in events {
        now += e;
        exact = exact.max(now);
    }
    let other: Vec<_> = recs.iter().filter(|r| r.2 != "hot").collect();
    let first = other.iter().map(|r| r.0).min().unwrap();
    let last = other.iter().map(|r| r.1).max().unwrap();
    let keyed_tps = others as f64 / ((last - first).max(1) as f64 / 1000.0);
    stop_all(workers).await;
    drop(d);

    // The same 5,000 with no limit set.
    let d = Deployment::start().await?;
    let workers = drain(&d, mixed(false), Duration::from_secs(120)).await?;
    let (first, last) = d.span().await?;
    let free_tps = others as f64 / ((last - first).num_milliseconds().max(1) as f64 / 1000.0);
    stop_all(workers).await;
    eprintln!(
        "   W8 key: most `hot` running at once {sampled} sampled ({samples} samples), {exact} from the records; other keys {keyed_tps:.0}/s, with no limits {free_tps:.0}/s"
    );
    out.push(("w8_key_max_running_sampled", sampled as f64));
    out.push(("w8_key_max_running_records", f64::from(exact)));
    out.push(("w8_other_keys_tps", keyed_tps));
    out.push(("w8_other_keys_vs_unlimited", keyed_tps / free_tps));
    Ok(out)
}
