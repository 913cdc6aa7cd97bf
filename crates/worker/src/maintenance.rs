//! Periodic upkeep every worker process runs. Each step is an atomic, bounded script, so
//! any number of workers may run it at once: at worst they share the work.
//! - queue scheduled and retrying tasks that are due;
//! - re-queue running tasks whose lease lapsed (their worker died);
//! - drop expired records from the listing indexes;
//! - delete what the previous layout (apalis-redis delivery) left of the served queues,
//!   until nothing is left.

use std::time::Duration;

use chrono::Utc;
use errand_core::{TaskStore, store::Recover, telemetry::redis_call};
use tokio_util::sync::CancellationToken;

const SLICE: usize = 500;

pub async fn run(store: TaskStore, queues: Vec<String>, every: Duration, stop: CancellationToken) {
    // Queues whose previous-layout leftovers may remain; each leaves once found clean.
    let mut legacy = queues;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.cancelled() => return,
        }
        if let Err(e) = tick(&store, &mut legacy).await {
            tracing::warn!(error = %e, "maintenance tick failed");
        }
    }
}

async fn tick(store: &TaskStore, legacy: &mut Vec<String>) -> Result<(), errand_core::StoreError> {
    for which in [Recover::Due, Recover::LapsedLeases] {
        // Drain in slices; stop after a few so one tick stays short.
        for _ in 0..20 {
            let op = match which {
                Recover::Due => "recover_due",
                Recover::LapsedLeases => "recover_lapsed",
            };
            let (examined, moved) = redis_call(op, store.recover(which, SLICE, Utc::now())).await?;
            if moved > 0 && matches!(which, Recover::LapsedLeases) {
                crate::metrics::recovered(moved);
            }
            if moved > 0 {
                tracing::info!(?which, moved, "re-queued tasks");
            }
            if examined < SLICE {
                break;
            }
        }
    }
    for _ in 0..20 {
        if redis_call("expire", store.expire_indexes(SLICE)).await? < SLICE {
            break;
        }
    }
    if let Some(q) = legacy.last() {
        let cleaned = store.clean_legacy(q, SLICE).await?;
        if cleaned == 0 {
            legacy.pop();
        } else {
            tracing::info!(queue = %q, cleaned, "deleted keys of the previous layout");
        }
    }
    Ok(())
}
