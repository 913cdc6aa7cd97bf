//! Periodic upkeep every worker process runs, and every api process too (HTTP workers run
//! none of their own). Each step is an atomic, bounded script, so any number of processes
//! may run it at once: at worst they share the work.
//! - queue scheduled and retrying tasks that are due;
//! - re-queue running tasks whose lease lapsed (their worker died);
//! - apply workflow steps' ends no process applied yet, and look at every workflow
//!   nothing touched for a while (`TaskStore::sweep_workflows`), so none waits for good;
//! - drop expired records from the listing indexes (their ids keep tombstones for
//!   `tasks.tombstone_secs`), and a queue that holds nothing from the queue set, so the
//!   next tick no longer visits it.

use std::time::Duration;

use crate::{StoreError, TaskStore, store::Recover, telemetry::redis_call};
use chrono::Utc;
use tokio_util::sync::CancellationToken;

const SLICE: usize = 500;

/// Ticks every `every` until `stop`; `recovered` is told how many lapsed leases each step
/// re-queued (the worker counts them in its metrics).
pub async fn run(
    store: TaskStore,
    every: Duration,
    stop: CancellationToken,
    recovered: impl Fn(u64) + Send + Sync,
) {
    let mut swept = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.cancelled() => return,
        }
        // Each step is an atomic script, so a tick cut short by the stop leaves nothing
        // half done; another worker's next tick does the rest.
        let ticked = tokio::select! {
            r = tick(&store, &recovered) => r,
            () = stop.cancelled() => return,
        };
        if let Err(e) = ticked {
            tracing::warn!(error = %e, "upkeep tick failed");
        }
        if swept.elapsed() >= SWEEP_EVERY {
            swept = tokio::time::Instant::now();
            let sweep = tokio::select! {
                r = redis_call("workflow_sweep", store.sweep_workflows(SLICE)) => r,
                () = stop.cancelled() => return,
            };
            if let Err(e) = sweep {
                tracing::warn!(error = %e, "workflow sweep failed");
            }
        }
    }
}

/// One look at every queue (each queue's keys share a slot: one call per queue and step).
async fn tick(store: &TaskStore, recovered: &impl Fn(u64)) -> Result<(), StoreError> {
    for q in store.queue_names().await? {
        for which in [Recover::Due, Recover::LapsedLeases] {
            let op = match which {
                Recover::Due => "recover_due",
                Recover::LapsedLeases => "recover_lapsed",
            };
            // Drain in slices; stop after a few so one tick stays short.
            for _ in 0..20 {
                let (examined, moved) =
                    redis_call(op, store.recover(&q, which, SLICE, Utc::now())).await?;
                if moved > 0 && matches!(which, Recover::LapsedLeases) {
                    recovered(moved as u64);
                }
                if moved > 0 {
                    tracing::info!(queue = %q, ?which, moved, "re-queued tasks");
                }
                if examined < SLICE {
                    break;
                }
            }
        }
        // Workflow steps' ends the finishing process did not apply (it died, or Redis
        // failed it): due once their applier's lease lapsed (store/workflow_ends.rs).
        for _ in 0..20 {
            match redis_call("workflow_apply", store.apply_workflow_ends(&q, SLICE)).await {
                Ok(n) if n >= SLICE => {}
                Ok(_) => break,
                // One workflow's failure must not hold up the rest of the tick.
                Err(e) => {
                    tracing::warn!(queue = %q, error = %e, "workflow ends not applied");
                    break;
                }
            }
        }
        for _ in 0..20 {
            if redis_call("expire", store.expire_indexes(&q, SLICE)).await? < SLICE {
                break;
            }
        }
    }
    Ok(())
}

/// How often a process looks for stalled workflows (one call per workflow shard).
const SWEEP_EVERY: Duration = Duration::from_secs(5);
