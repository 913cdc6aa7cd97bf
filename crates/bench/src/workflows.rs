//! W7: workflows (docs/workflows.md), one warm worker process, one Redis.
//! - W7a: a chord of 1,000 noop steps into one, from submit to the last step's end, against
//!   what a client does without workflows: submit 1,000 independent noop tasks, wait for
//!   them all, then submit the one more and wait for it.
//! - W7b: a chain of 100 noop steps: each hop's time from a step's end to the next step's
//!   start (from the records), and the whole chain's time per step.

use std::time::{Duration, Instant};

use anyhow::ensure;
use errand_testkit::wait_for;
use serde_json::{Value, json};

use crate::deploy::Deployment;

type Figures = Vec<(&'static str, f64)>;

const WIDTH: usize = 1000;
const LENGTH: usize = 100;

/// A record field, read straight from Redis (cheap enough to poll every millisecond).
async fn field(d: &Deployment, id: &str, f: &str) -> Option<String> {
    let mut c = d.conn.clone();
    redis::cmd("HGET")
        .arg(format!("{}:{{default}}:task:{id}", d.prefix))
        .arg(f)
        .query_async(&mut c)
        .await
        .ok()
        .flatten()
}

async fn until_succeeded(d: &Deployment, id: &str) {
    wait_for(
        &format!("{id} to succeed"),
        Duration::from_secs(120),
        || async { (field(d, id, "state").await.as_deref() == Some("succeeded")).then_some(()) },
    )
    .await;
}

async fn submit_workflow(d: &Deployment, body: Value) -> anyhow::Result<()> {
    let res = d
        .http
        .post(format!("{}/v1/workflows", d.base))
        .json(&body)
        .send()
        .await?;
    ensure!(
        res.status() == 202,
        "workflow submit answered {}",
        res.status()
    );
    res.bytes().await?;
    Ok(())
}

fn ms(t: &str) -> anyhow::Result<i64> {
    Ok(chrono::DateTime::parse_from_rfc3339(t)?.timestamp_millis())
}

pub(crate) async fn w7() -> anyhow::Result<Figures> {
    let d = Deployment::start().await?;
    let worker = d.worker(64);
    // Warm: the worker fetches, the api's kind registry knows noop.
    d.enqueue(100, |i| json!({"kind": "noop", "payload": {"i": i}}))
        .await?;
    d.wait_succeeded(100, Duration::from_secs(30)).await;

    // Without workflows: 1,000 tasks, wait, then one more.
    let t = Instant::now();
    d.enqueue(WIDTH, |i| json!({"kind": "noop", "payload": {"i": i}}))
        .await?;
    d.wait_succeeded(100 + WIDTH, Duration::from_secs(120))
        .await;
    d.enqueue(1, |_| json!({"kind": "noop", "id": "plain-last"}))
        .await?;
    until_succeeded(&d, "plain-last").await;
    let plain = t.elapsed().as_secs_f64();

    // The chord.
    let mut steps: Vec<Value> = (0..WIDTH)
        .map(|i| json!({"name": format!("p{i}"), "kind": "noop", "payload": {"i": i}}))
        .collect();
    let after: Vec<String> = (0..WIDTH).map(|i| format!("p{i}")).collect();
    steps.push(json!({"name": "sum", "kind": "noop", "after": after, "on_failure": "fail"}));
    let t = Instant::now();
    submit_workflow(&d, json!({"id": "chord", "steps": steps})).await?;
    let submitted = t.elapsed().as_secs_f64();
    until_succeeded(&d, "chord.sum").await;
    let chord = t.elapsed().as_secs_f64();
    eprintln!(
        "   W7a: chord of {WIDTH} into 1: {:.0} ms (its submit {:.0} ms); {WIDTH} tasks then one more: {:.0} ms ({:.2}x)",
        chord * 1000.0,
        submitted * 1000.0,
        plain * 1000.0,
        chord / plain
    );

    // The chain.
    let steps: Vec<Value> = (0..LENGTH)
        .map(|i| {
            if i == 0 {
                json!({"name": "s0", "kind": "noop"})
            } else {
                json!({"name": format!("s{i}"), "kind": "noop", "after": [format!("s{}", i - 1)], "on_failure": "fail"})
            }
        })
        .collect();
    let t = Instant::now();
    submit_workflow(&d, json!({"id": "chain", "steps": steps})).await?;
    until_succeeded(&d, &format!("chain.s{}", LENGTH - 1)).await;
    let chain = t.elapsed().as_secs_f64();
    let mut hops = Vec::with_capacity(LENGTH - 1);
    for i in 1..LENGTH {
        let ended = field(&d, &format!("chain.s{}", i - 1), "finished_at").await;
        let started = field(&d, &format!("chain.s{i}"), "started_at").await;
        let (Some(e), Some(s)) = (ended, started) else {
            anyhow::bail!("chain step {i} has no times");
        };
        hops.push((ms(&s)? - ms(&e)?) as f64);
    }
    hops.sort_by(f64::total_cmp);
    let p50 = hops[hops.len() / 2];
    let p99 = hops[hops.len() * 99 / 100];
    eprintln!(
        "   W7b: chain of {LENGTH}: {:.0} ms in all ({:.2} ms a step); hop p50 {p50:.0} ms, p99 {p99:.0} ms",
        chain * 1000.0,
        chain * 1000.0 / LENGTH as f64
    );
    Deployment::stop(worker).await;
    Ok(vec![
        ("w7a_chord_ms", chord * 1000.0),
        ("w7a_plain_ms", plain * 1000.0),
        ("w7a_submit_ms", submitted * 1000.0),
        ("w7a_chord_vs_plain", chord / plain),
        ("w7b_hop_p50_ms", p50),
        ("w7b_hop_p99_ms", p99),
        ("w7b_ms_per_step", chain * 1000.0 / LENGTH as f64),
    ])
}
