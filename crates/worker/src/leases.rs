//! Leases on running tasks, renewed from a dedicated OS thread with its own runtime and
//! connection. A task that blocks an executor thread (against the rules, but it happens)
//! would otherwise stall the renewals, its lease would lapse and upkeep would re-run it on
//! another worker while it still runs here. Renewed from this thread, the lease stays alive
//! as long as this process is, whatever its executor threads are doing.
//!
//! The same thread writes the process's heartbeat (`GET /v1/workers`) and stops tasks whose
//! cancel was requested, in case the cancel message was missed.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use errand_core::{
    Settings, TaskStore,
    store::{self, WorkerInfo},
};
use tokio_util::sync::CancellationToken;

/// Tasks this process is running, with the token that cancels each.
#[derive(Clone, Default)]
/// Task id -> (its queue, its cancel token).
pub(crate) struct Running(Arc<Mutex<HashMap<String, (String, CancellationToken)>>>);

impl Running {
    /// Registers a task; the guard removes it (and so stops renewing its lease) on drop.
    pub(crate) fn enter(&self, queue: &str, id: &str, cancel: CancellationToken) -> RunningGuard {
        self.lock()
            .insert(id.to_owned(), (queue.to_owned(), cancel));
        RunningGuard {
            running: self.clone(),
            id: id.to_owned(),
        }
    }

    /// (queue, id) of every task running here: leases are renewed per queue.
    pub(crate) fn ids(&self) -> Vec<(String, String)> {
        self.lock()
            .iter()
            .map(|(id, (q, _))| (q.clone(), id.clone()))
            .collect()
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Cancels the local run of task `id`, if this process is running it.
    pub(crate) fn cancel(&self, id: &str) -> bool {
        self.lock().get(id).map(|(_, t)| t.cancel()).is_some()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (String, CancellationToken)>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub(crate) struct RunningGuard {
    running: Running,
    id: String,
}

impl Drop for RunningGuard {
    fn drop(&mut self) {
        self.running.lock().remove(&self.id);
    }
}

/// How long the last call, taking this process off `GET /v1/workers`, may take.
const GONE: Duration = Duration::from_secs(1);

/// Starts the renewal thread; it ends when `stop` is cancelled. `me` describes this process
/// for its heartbeat.
pub(crate) fn spawn(
    settings: Settings,
    running: Running,
    me: WorkerInfo,
    stopping: Arc<AtomicBool>,
    stop: CancellationToken,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("errand-leases".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::error!(error = %e, "lease thread cannot start a runtime");
                    return;
                }
            };
            rt.block_on(async move {
                let conn = match store::connect(&settings.redis) {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::error!(error = %e, "lease thread cannot connect");
                        return;
                    }
                };
                let store = TaskStore::new(conn, store::Layout::new(&settings.redis.key_prefix));
                let lease = settings.worker.lease();
                let every = (lease / 4).max(Duration::from_millis(250));
                let heartbeat_ttl = (every * 4).max(Duration::from_secs(5));
                let mut me = me;
                loop {
                    let ids = running.ids();
                    let now = chrono::Utc::now();
                    // A renewal cut short by the stop is harmless: the tasks are done here.
                    let renewed = tokio::select! {
                        r = store.renew_leases(&ids, lease) => r,
                        () = stop.cancelled() => break,
                    };
                    match renewed {
                        Ok(cancel) => {
                            for id in cancel {
                                if running.cancel(&id) {
                                    tracing::info!(task_id = %id, "cancel requested; stopping task");
                                }
                            }
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, tasks = ids.len(), "lease renewal failed");
                        }
                    }
                    me.running = ids.len();
                    // The same snapshot as the count, so the two always agree.
                    me.running_ids = ids.iter().take(100).map(|(_, id)| id.clone()).collect();
                    me.stopping = stopping.load(Ordering::Relaxed);
                    me.last_seen = now;
                    let beat = tokio::select! {
                        r = store.heartbeat(&me, heartbeat_ttl) => r,
                        () = stop.cancelled() => break,
                    };
                    if let Err(e) = beat {
                        tracing::debug!(error = %e, "heartbeat failed");
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(every) => {}
                        _ = stop.cancelled() => break,
                    }
                }
                // Bounded: with Redis gone the entry expires on its own (its TTL).
                let _ = tokio::time::timeout(GONE, store.worker_gone(&me.name)).await;
            });
        })
}
