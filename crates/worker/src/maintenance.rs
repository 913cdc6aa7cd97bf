//! Periodic upkeep every worker process runs. Each step is an atomic, bounded script, so
//! any number of workers may run it at once: at worst they share the work.
//! - queue scheduled and retrying tasks that are due;
//! - re-queue running tasks whose lease lapsed (their worker died);
//! - delete apalis-redis's copies of finished jobs;
//! - drop expired records from the listing indexes.

use std::time::Duration;

use chrono::Utc;
use errand_core::{TaskStore, store::Recover};
use tokio_util::sync::CancellationToken;

const SLICE: usize = 500;

pub async fn run(store: TaskStore, queues: Vec<String>, every: Duration, stop: CancellationToken) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.cancelled() => return,
        }
        if let Err(e) = tick(&store, &queues).await {
            tracing::warn!(error = %e, "maintenance tick failed");
        }
    }
}

async fn tick(store: &TaskStore, queues: &[String]) -> Result<(), errand_core::StoreError> {
    for which in [Recover::Due, Recover::LapsedLeases] {
        // Drain in slices; stop after a few so one tick stays short.
        for _ in 0..20 {
            let (examined, moved) = store.recover(which, SLICE, Utc::now()).await?;
            if moved > 0 {
                tracing::info!(?which, moved, "re-queued tasks");
            }
            if examined < SLICE {
                break;
            }
        }
    }
    for _ in 0..20 {
        if store.expire_indexes(SLICE).await? < SLICE {
            break;
        }
    }
    for q in queues {
        for _ in 0..20 {
            let cleaned = store.clean_finished_jobs(q, SLICE).await?;
            if cleaned < SLICE {
                break;
            }
        }
    }
    Ok(())
}
