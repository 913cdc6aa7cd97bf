//! errand-worker: runs queued tasks.
//!
//! # Layout
//! - [`backend`]: one apalis worker per served queue, fed by errand's own apalis backend
//!   (fetch and claim in one script call).
//! - [`runner`]: one claimed attempt run, its outcome recorded.
//! - [`outcome`]: the retry policy: what an ended attempt means for its task (pure).
//! - [`batch`]: group commit of progress reports and attempt ends.
//! - [`leases`]: leases on running tasks, renewed from a dedicated thread.
//! - [`wake`]: wake-ups on submit (pub/sub) with a fallback tick.
//! - [`maintenance`]: due and orphaned tasks re-queued, expired ids dropped.
//! - [`schedules`]: periodic schedules fired, each tick exactly once across all workers.
//! - [`webhooks`]: completion webhooks of the served queues delivered, signed, with retries.
//! - [`metrics`]: the Prometheus listener (`worker.metrics_addr`) and what it counts.
//!
//! [`run_until_stopped`] owns shutdown: stop fetching, drain, stop the background loops.

pub mod backend;
pub mod batch;
pub mod leases;
pub mod maintenance;
pub mod metrics;
pub mod outcome;
pub mod runner;
pub mod schedules;
pub mod wake;
pub mod webhooks;

use std::{
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use errand_core::{
    Settings, TaskStore,
    store::{self, WorkerInfo, WorkerQueue},
};
use errand_tasks::{Catalog, Limits};
use tokio_util::sync::CancellationToken;

use crate::{leases::Running, runner::Runner};

/// A name unique to this process start: host, pid and a ULID.
pub fn process_name() -> String {
    format!(
        "{}:{}:{}",
        host_name(),
        std::process::id(),
        ulid::Ulid::generate()
    )
}

fn host_name() -> String {
    hostname::get()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "host".into())
}

/// Runs the worker until `shutdown` resolves, then stops fetching and lets running tasks
/// finish for up to `worker.shutdown_grace_secs`.
pub async fn run_until_stopped(
    settings: Settings,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    if let Some(addr) = &settings.worker.metrics_addr {
        metrics::install(addr)?;
    }
    for q in &settings.worker.queues {
        metrics::serve(&q.name, q.concurrency);
    }
    let conn = store::connect(&settings.redis)?;
    let layout = store::Layout::new(&settings.redis.key_prefix);
    let store = TaskStore::new(conn, layout);
    let clients = settings.redis.clients()?;
    // An older layout is converted before any of its tasks is fetched.
    let mut pause = Duration::from_millis(200);
    while let Err(e) = store.migrate().await {
        tracing::warn!(error = %e, "layout migration failed; trying again");
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(5));
    }
    let catalog = Catalog::new(Limits::from(&settings.tasks));
    let catalog = catalog.with_email(settings.email.clone());
    let name = process_name();
    let running = Running::default();
    let stop_fetching = CancellationToken::new();
    let abandon = CancellationToken::new();
    let stop_background = CancellationToken::new();

    let me = WorkerInfo {
        name: name.clone(),
        host: host_name(),
        pid: std::process::id(),
        queues: settings
            .worker
            .queues
            .iter()
            .map(|q| WorkerQueue {
                name: q.name.clone(),
                concurrency: q.concurrency,
            })
            .collect(),
        running: 0,
        running_ids: Vec::new(),
        stopping: false,
        started_at: chrono::Utc::now(),
        last_seen: chrono::Utc::now(),
    };
    let stopping = Arc::new(AtomicBool::new(false));
    let lease_thread = leases::spawn(
        settings.clone(),
        running.clone(),
        me.clone(),
        stopping.clone(),
        stop_background.clone(),
    )?;
    // A cancel of a running task reaches the process running it at once.
    let cancels = running.clone();
    store::listen(
        clients.clone(),
        store.layout().cancel_channel(),
        stop_background.clone(),
        || {},
        move |id| {
            if cancels.cancel(&id) {
                tracing::info!(task_id = %id, "cancel requested; stopping task");
            }
        },
    );
    let queues: Vec<String> = settings
        .worker
        .queues
        .iter()
        .map(|q| q.name.clone())
        .collect();
    let webhooks = tokio::spawn(webhooks::run(
        store.clone(),
        settings.webhooks.clone(),
        queues.clone(),
        stop_fetching.clone(),
    ));
    let upkeep = tokio::spawn(maintenance::run(
        store.clone(),
        Duration::from_millis(250),
        stop_background.clone(),
    ));

    let (reports, ends) = Runner::coalescers(&store);
    tokio::spawn(schedules::run(
        store.clone(),
        settings.schedules.clone(),
        stop_fetching.clone(),
    ));
    let runner = Arc::new(Runner {
        store,
        reports,
        ends,
        catalog,
        settings: settings.clone(),
        running: running.clone(),
        abandon: abandon.clone(),
    });
    let failed = CancellationToken::new();
    let mut served = Vec::new();
    for q in &settings.worker.queues {
        let (runner, client, name, q, stop, failed) = (
            runner.clone(),
            clients.clone(),
            name.clone(),
            q.clone(),
            stop_fetching.clone(),
            failed.clone(),
        );
        served.push(tokio::spawn(async move {
            if let Err(e) = backend::serve_queue(runner, client, name, q, stop).await {
                tracing::error!(error = %e, "a queue stopped being served; shutting down");
                failed.cancel();
            }
        }));
    }
    tracing::info!(worker = %name, queues = ?settings.worker.queues.iter().map(|q| &q.name).collect::<Vec<_>>(), "worker started");

    tokio::select! {
        _ = shutdown => {}
        _ = failed.cancelled() => {}
    }
    tracing::info!(
        running = running.len(),
        "shutdown requested: no new tasks; finishing running ones"
    );
    stop_fetching.cancel();
    // Say so at once (the lease thread repeats it on each beat), so operators and tests see
    // the drain start.
    stopping.store(true, Ordering::Relaxed);
    let mut last = me;
    last.stopping = true;
    last.running = running.len();
    last.running_ids = running
        .ids()
        .into_iter()
        .take(100)
        .map(|(_, id)| id)
        .collect();
    last.last_seen = chrono::Utc::now();
    let beat_ttl = (settings.worker.lease() / 4 * 4).max(Duration::from_secs(5));
    if let Err(e) = runner.store.heartbeat(&last, beat_ttl).await {
        tracing::debug!(error = %e, "stopping heartbeat not recorded");
    }
    let grace = settings.worker.shutdown_grace();
    let drained = tokio::time::timeout(grace, async {
        for s in served {
            let _ = s.await;
        }
        while !running.is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            abandoned = running.len(),
            "grace period over; abandoning running tasks to other workers"
        );
        abandon.cancel();
    }
    // Attempts in flight finish (each within webhooks.timeout_ms) and record their outcome.
    let _ = webhooks.await;
    stop_background.cancel();
    let _ = upkeep.await;
    let _ = tokio::task::spawn_blocking(move || lease_thread.join()).await;
    tracing::info!("worker stopped");
    if failed.is_cancelled() {
        anyhow::bail!("a served queue's worker ended on its own");
    }
    Ok(())
}
