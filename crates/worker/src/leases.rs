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
    store::{self, Claimed, Held, KindDefinition, WorkerInfo},
};
use tokio_util::sync::CancellationToken;

/// The claims this process holds, by task id; each entry one attempt, named by its claim
/// token (after a partition the same process can hold an old and a new attempt of one task,
/// and each attempt's guard removes its own entry only).
#[derive(Clone, Default)]
pub(crate) struct Running(Arc<Mutex<HashMap<String, Vec<Entry>>>>);

struct Entry {
    token: String,
    queue: String,
    /// Cancelled when a client asked to cancel the task, or when its claim was lost.
    cancel: CancellationToken,
    /// Set (before `cancel` fires) when the renewal found the claim lost: the attempt
    /// stops at once and reports nothing.
    lost: Arc<AtomicBool>,
}

impl Running {
    /// Registers the attempt of `claimed`, stopped by `cancel` on a cancel request or when
    /// its claim is lost (the guard's `lost` then says which). The guard removes it (and so
    /// stops renewing its lease) on drop.
    pub(crate) fn enter(&self, claimed: &Claimed, cancel: CancellationToken) -> RunningGuard {
        let lost = Arc::new(AtomicBool::new(false));
        self.lock()
            .entry(claimed.id.clone())
            .or_default()
            .push(Entry {
                token: claimed.token.clone(),
                queue: claimed.queue.clone(),
                cancel,
                lost: lost.clone(),
            });
        RunningGuard {
            running: self.clone(),
            id: claimed.id.clone(),
            token: claimed.token.clone(),
            lost,
        }
    }

    /// Every claim held here: leases are renewed per queue.
    pub(crate) fn held(&self) -> Vec<Held> {
        self.lock()
            .iter()
            .flat_map(|(id, entries)| {
                entries.iter().map(move |e| Held {
                    queue: e.queue.clone(),
                    id: id.clone(),
                    token: e.token.clone(),
                })
            })
            .collect()
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().values().map(Vec::len).sum()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// Cancels the local runs of task `id`, if this process is running it.
    pub(crate) fn cancel(&self, id: &str) -> bool {
        match self.lock().get(id) {
            Some(entries) => {
                entries.iter().for_each(|e| e.cancel.cancel());
                true
            }
            None => false,
        }
    }

    /// Stops the attempt whose claim was lost.
    pub(crate) fn lose(&self, held: &Held) -> bool {
        let map = self.lock();
        let Some(e) = map
            .get(&held.id)
            .and_then(|es| es.iter().find(|e| e.token == held.token))
        else {
            return false;
        };
        e.lost.store(true, Ordering::Release);
        e.cancel.cancel();
        true
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<Entry>>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// One attempt's place in [`Running`].
pub(crate) struct RunningGuard {
    running: Running,
    id: String,
    token: String,
    /// Set when the renewal found the claim lost.
    pub lost: Arc<AtomicBool>,
}

impl RunningGuard {
    /// Whether the renewal found this attempt's claim lost.
    pub(crate) fn is_lost(&self) -> bool {
        self.lost.load(Ordering::Acquire)
    }
}

impl Drop for RunningGuard {
    fn drop(&mut self) {
        let mut map = self.running.lock();
        if let Some(entries) = map.get_mut(&self.id) {
            entries.retain(|e| e.token != self.token);
            if entries.is_empty() {
                map.remove(&self.id);
            }
        }
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
    kinds: Vec<KindDefinition>,
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
                    let ids = running.held();
                    let now = chrono::Utc::now();
                    // A renewal cut short by the stop is harmless: the tasks are done here.
                    let renewed = tokio::select! {
                        r = store.renew_leases(&ids, lease) => r,
                        () = stop.cancelled() => break,
                    };
                    match renewed {
                        Ok(renewed) => {
                            for id in renewed.cancel {
                                if running.cancel(&id) {
                                    tracing::info!(task_id = %id, "cancel requested; stopping task");
                                }
                            }
                            for h in renewed.lost {
                                if running.lose(&h) {
                                    tracing::warn!(task_id = %h.id, "claim lost (the lease lapsed and the task was taken over, or it was given back); stopping the attempt, its outcome will not be recorded");
                                }
                            }
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, tasks = ids.len(), "lease renewal failed");
                        }
                    }
                    me.running = ids.len();
                    // The same snapshot as the count, so the two always agree.
                    me.running_ids = ids.iter().take(100).map(|h| h.id.clone()).collect();
                    me.stopping = stopping.load(Ordering::Relaxed);
                    me.last_seen = now;
                    let beat = tokio::select! {
                        r = store.heartbeat(&me, heartbeat_ttl) => r,
                        () = stop.cancelled() => break,
                    };
                    if let Err(e) = beat {
                        tracing::debug!(error = %e, "heartbeat failed");
                    }
                    // Puts back a registration that is gone (a flushed Redis, a kind
                    // removed while this worker still ran it); never replaces one.
                    let kept = tokio::select! {
                        r = store.register_kinds(&kinds, &me.name, false) => r,
                        () = stop.cancelled() => break,
                    };
                    if let Err(e) = kept {
                        tracing::debug!(error = %e, "kind registration not renewed");
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

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(id: &str, token: &str) -> Claimed {
        Claimed {
            id: id.into(),
            queue: "q".into(),
            token: token.into(),
            kind: "noop".into(),
            payload: Ok(serde_json::Value::Null),
            attempt: 1,
            max_attempts: 1,
            timeout_secs: None,
            traceparent: None,
            queued_at: None,
            workflow: None,
            inputs: None,
        }
    }

    /// After a partition one process can hold an old and a new attempt of one task: the
    /// old attempt's guard must not take the new one's entry (and its lease renewal) away.
    #[test]
    fn two_attempts_of_one_task_are_held_apart() {
        let running = Running::default();
        let old = running.enter(&claim("t", "f1.1"), CancellationToken::new());
        let new = running.enter(&claim("t", "f2.1"), CancellationToken::new());
        assert_eq!(running.len(), 2);
        drop(old);
        let held = running.held();
        assert_eq!(held.len(), 1);
        assert_eq!(held[0].token, "f2.1", "the new attempt is still renewed");
        // Losing a claim stops that attempt only.
        let held = |token: &str| Held {
            queue: "q".into(),
            id: "t".into(),
            token: token.into(),
        };
        assert!(!running.lose(&held("f1.1")));
        assert!(running.lose(&held("f2.1")));
        assert!(new.is_lost());
    }

    #[test]
    fn a_cancel_request_reaches_every_local_attempt_of_the_task() {
        let running = Running::default();
        let (a, b) = (CancellationToken::new(), CancellationToken::new());
        let _g1 = running.enter(&claim("t", "f1.1"), a.clone());
        let _g2 = running.enter(&claim("u", "f1.2"), b.clone());
        assert!(running.cancel("t"));
        assert!(a.is_cancelled() && !b.is_cancelled());
        assert!(!running.cancel("nope"));
    }
}
