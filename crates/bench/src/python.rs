//! W6: one process of the Python SDK (`sdks/python`, docs/http-workers.md) draining a
//! backlog of noop tasks over the HTTP worker protocol, and where its time goes: HTTP
//! requests per task and the api's CPU per task (the api stands where a Rust worker's
//! own Redis client would).

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::{Context, ensure};
use errand_testkit::{Proc, wait_for};
use serde_json::{Value, json};
use tokio::process::Command;

use crate::deploy::{Deployment, cpu_secs};

const QUEUE: &str = "bench";
const KIND: &str = "py_noop";

/// The workspace root: two levels above this crate's manifest.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The SDK's venv (the one `just sdk-test` makes), made here when it is missing.
async fn python() -> anyhow::Result<PathBuf> {
    let venv = root().join("target/sdk-venv");
    let py = venv.join("bin/python");
    if !py.exists() {
        eprintln!("   making {} for the SDK", venv.display());
        let ok = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .await?
            .success();
        ensure!(ok, "python3 -m venv failed");
    }
    // Installed (editable) on every run: cheap when it already is, and never stale.
    let ok = Command::new(venv.join("bin/pip"))
        .args(["install", "-q", "-e"])
        .arg(root().join("sdks/python"))
        .status()
        .await?
        .success();
    ensure!(ok, "pip install -e sdks/python failed");
    Ok(py)
}

/// Requests the api answered on the worker protocol's routes, from its /metrics.
async fn worker_requests(d: &Deployment) -> anyhow::Result<f64> {
    let text = d
        .http
        .get(format!("{}/metrics", d.base))
        .send()
        .await?
        .text()
        .await?;
    Ok(text
        .lines()
        .filter(|l| l.starts_with("errand_http_requests_total{") && l.contains("/v1/worker/"))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum())
}

async fn post(d: &Deployment, path: &str) -> anyhow::Result<()> {
    let res = d.http.post(format!("{}{path}", d.base)).send().await?;
    ensure!(
        res.status().is_success(),
        "{path} answered {}",
        res.status()
    );
    Ok(())
}

pub(crate) async fn w6(n: usize) -> anyhow::Result<Vec<(&'static str, f64)>> {
    let py = python().await?;
    let d = Deployment::start().await?;
    let script = root().join("sdks/python/examples/noop_worker.py");
    let mut cmd = Command::new(&py);
    cmd.arg(&script)
        .args(["--url", &d.base, "--queue", QUEUE])
        .kill_on_drop(true);
    if std::env::var_os("TEST_LOG").is_none() {
        cmd.stdout(Stdio::null()).stderr(Stdio::null());
    }
    let child = cmd
        .spawn()
        .with_context(|| format!("{}", script.display()))?;
    let worker = Proc {
        child,
        name: "noop_worker.py".into(),
    };
    // Its kind registered: submits of it are accepted from here on.
    wait_for(
        "the SDK worker to register py_noop",
        Duration::from_secs(60),
        || async {
            let kinds: Value = d
                .http
                .get(format!("{}/v1/kinds", d.base))
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            kinds
                .as_array()?
                .iter()
                .any(|k| k["name"] == KIND)
                .then_some(())
        },
    )
    .await;
    // The backlog is queued while the queue is paused, so the drain is measured alone.
    post(&d, &format!("/v1/queues/{QUEUE}/pause")).await?;
    d.enqueue(n, |i| -> Value {
        json!({"kind": KIND, "queue": QUEUE, "payload": {"n": i}})
    })
    .await?;
    let requests = worker_requests(&d).await?;
    let api_cpu = cpu_secs(&d.api);
    let worker_cpu = cpu_secs(&worker);
    let t = Instant::now();
    post(&d, &format!("/v1/queues/{QUEUE}/resume")).await?;
    wait_for(
        &format!("{n} SDK tasks to succeed"),
        Duration::from_secs(600),
        || async { (d.count_in(QUEUE, "succeeded").await.ok()? >= n).then_some(()) },
    )
    .await;
    let wall = t.elapsed().as_secs_f64();
    let per_task = |x: f64| x / n as f64;
    let api_us = per_task(cpu_secs(&d.api) - api_cpu) * 1e6;
    let worker_us = per_task(cpu_secs(&worker) - worker_cpu) * 1e6;
    let reqs = per_task(worker_requests(&d).await? - requests);
    let (first, last) = d.span_in(QUEUE).await?;
    let secs = (last - first).num_milliseconds().max(1) as f64 / 1000.0;
    eprintln!(
        "   W6: {n} tasks in {wall:.2} s (records: {secs:.2} s), {reqs:.4} worker requests/task, api {api_us:.1} us/task, python {worker_us:.1} us/task"
    );
    Deployment::stop(worker).await;
    Ok(vec![
        ("w6_python_drain_tps", n as f64 / secs),
        ("w6_http_requests_per_1000_tasks", reqs * 1000.0),
        ("w6_api_cpu_us_per_task", api_us),
        ("w6_python_cpu_us_per_task", worker_us),
    ])
}
