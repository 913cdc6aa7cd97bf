//! errand-worker: runs queued tasks.
//!
//! # Layout
//! - `backend`: one apalis worker per served queue, fed by errand's own apalis backend
//!   (fetch and claim in one script call).
//! - `runner`: one claimed attempt run, its outcome recorded.
//! - `outcome`: the retry policy: what an ended attempt means for its task (pure).
//! - `batch`: group commit of progress reports and attempt ends.
//! - `leases`: leases on running tasks, renewed from a dedicated thread.
//! - `wake`: wake-ups on submit (pub/sub) with a fallback tick.
//! - `maintenance`: due and orphaned tasks re-queued, expired ids dropped.
//! - `scheduler`: due schedules fired, each tick exactly once across all workers.
//! - `webhooks`: completion webhooks of the served queues delivered, signed, with retries.
//! - `process`: one worker process: every loop started on a [`Shutdown`], stopped in its
//!   phases.
//! - `drain`: [`drain()`], the same worker run in-process until its queues are idle (for tests).
//! - `metrics`: the Prometheus listener (`worker.metrics_addr`) and what it counts.
//!
//! [`run_until_stopped`] runs the worker and stops it in [`Shutdown`]'s phases; [`drain()`]
//! runs it in-process until its queues are idle (for tests).

mod backend;
mod batch;
mod drain;
mod leases;
mod maintenance;
mod metrics;
mod outcome;
mod process;
mod runner;
mod scheduler;
mod wake;
mod webhooks;

use std::time::Duration;

use errand_core::{Settings, shutdown::Shutdown};

pub use crate::drain::{DrainReport, drain};
use crate::process::Worker;

/// A name unique to this process start: host, pid and a ULID.
pub(crate) fn process_name() -> String {
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

/// Runs the worker until `shutdown` is requested (a signal, see
/// [`Shutdown::listen_for_signals`]), then stops in its phases: no new tasks; running ones
/// finish for up to `worker.shutdown_grace_secs`, the rest is abandoned to other workers;
/// every loop is joined.
pub async fn run_until_stopped(settings: Settings, shutdown: Shutdown) -> anyhow::Result<()> {
    if let Some(addr) = &settings.worker.metrics_addr {
        metrics::install(addr, &shutdown).await?;
    }
    match Worker::start(settings, &shutdown).await? {
        Some(worker) => worker.stop(shutdown).await,
        None => {
            // Stopped while still waiting for Redis: only the metrics listener (and the
            // signal listener) ran; join them.
            tracing::info!("stop requested before the worker started; nothing was taken");
            shutdown.run(Duration::ZERO, async {}, |_| {}).await;
            tracing::info!("worker stopped");
            Ok(())
        }
    }
}

/// How long the worker's loops get to end once asked (the [`Shutdown`]'s join deadline): a
/// webhook attempt in flight, a Redis call, and a margin.
pub fn join_deadline(settings: &Settings) -> Duration {
    Duration::from_millis(settings.webhooks.timeout_ms + settings.redis.response_timeout_ms)
        + Duration::from_secs(5)
}
