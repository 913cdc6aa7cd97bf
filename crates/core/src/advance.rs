//! The workflow advancer: applies a queue's workflow outbox as soon as a step of it ended
//! in this process, so the next step is created in the same moment rather than at the next
//! upkeep tick. It only hurries what upkeep does anyway (`upkeep` applies every queue's due
//! outbox entries each tick), so a poke that is lost, or a process that dies mid-apply,
//! costs time, never a step.

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::{TaskStore, telemetry::redis_call};

/// Entries taken per call.
const SLICE: usize = 100;

/// A handle that pokes the process's advancer (cheap to clone).
#[derive(Clone, Debug, Default)]
pub struct Advancer {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    queues: Mutex<HashSet<String>>,
    notify: Notify,
}

impl Advancer {
    /// A handle, and the loop that serves it until `stop` (the caller spawns it on its
    /// shutdown's background loops).
    pub fn start(
        store: TaskStore,
        stop: CancellationToken,
    ) -> (Self, impl Future<Output = ()> + Send + 'static) {
        let me = Self::default();
        let inner = me.inner.clone();
        let run = async move {
            loop {
                tokio::select! {
                    () = inner.notify.notified() => {}
                    () = stop.cancelled() => return,
                }
                let queues: Vec<String> = inner
                    .queues
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .drain()
                    .collect();
                for q in queues {
                    loop {
                        match redis_call("workflow_apply", store.apply_workflow_ends(&q, SLICE))
                            .await
                        {
                            Ok(n) if n >= SLICE && !stop.is_cancelled() => {}
                            Ok(_) => break,
                            Err(e) => {
                                // Upkeep applies it at its next tick.
                                tracing::debug!(queue = %q, error = %e, "workflow ends not applied yet");
                                break;
                            }
                        }
                    }
                }
            }
        };
        (me, run)
    }

    /// A workflow step of `queue` ended here: apply the queue's outbox now.
    pub fn step_ended(&self, queue: &str) {
        let mut qs = self.inner.queues.lock().unwrap_or_else(|e| e.into_inner());
        if !qs.contains(queue) {
            qs.insert(queue.to_owned());
        }
        drop(qs);
        self.inner.notify.notify_one();
    }
}
