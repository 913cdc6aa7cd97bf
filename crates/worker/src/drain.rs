//! The real worker run in this process until its queues are idle: what tests of the worker
//! use instead of spawning the binary (zero2prod's `dispatch_all_pending_emails`).

use std::time::Duration;

use errand_core::{Settings, shutdown::Shutdown, store::QueueStats, task::TaskState};

use errand_kinds::{Catalog, Limits};

use crate::process::{Process, join_deadline};

/// What [`drain`] left behind.
#[derive(Debug)]
pub struct DrainReport {
    /// The figures of every queue once the served ones had nothing ready or in flight.
    pub queues: Vec<QueueStats>,
}

impl DrainReport {
    /// How many tasks of `queue` are in `state`.
    pub fn count(&self, queue: &str, state: TaskState) -> u64 {
        self.queues
            .iter()
            .filter(|q| q.name == queue)
            .flat_map(|q| &q.counts)
            .filter(|(s, _)| *s == state)
            .map(|(_, n)| n)
            .sum()
    }
}

/// Runs the real worker in this process until the queues of `settings.worker.queues` have
/// no task queued, running or retrying (retries are waited for; `scheduled` tasks are not),
/// then stops it as a signal would, with the built-in kinds (or yours:
/// [`WorkerBuilder::drain`](crate::builder::WorkerBuilder::drain)). For tests that need the worker's behaviour but not its
/// process. Fails if that does not happen `within`.
pub async fn drain(settings: Settings, within: Duration) -> anyhow::Result<DrainReport> {
    let catalog = Catalog::new(Limits::from(&settings.tasks));
    with(settings, catalog, within).await
}

/// [`drain`] with the kinds of `catalog`.
pub(crate) async fn with(
    settings: Settings,
    catalog: Catalog,
    within: Duration,
) -> anyhow::Result<DrainReport> {
    let shutdown = Shutdown::new(join_deadline(&settings));
    let served: Vec<String> = settings
        .worker
        .queues
        .iter()
        .map(|q| q.name.clone())
        .collect();
    let worker = Process::start(settings, catalog, &shutdown)
        .await?
        .ok_or_else(|| anyhow::anyhow!("stopped before the worker started"))?;
    let store = worker.store.clone();
    let running = worker.running.clone();
    let idle = async {
        loop {
            if running.is_empty()
                && let Ok(queues) = store.queues(chrono::Utc::now()).await
            {
                let busy = queues
                    .iter()
                    .filter(|q| served.contains(&q.name))
                    .flat_map(|q| &q.counts)
                    .any(|(s, n)| {
                        *n > 0
                            && matches!(
                                s,
                                TaskState::Queued | TaskState::Running | TaskState::Retrying
                            )
                    });
                if !busy && running.is_empty() {
                    return queues;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let drained = tokio::time::timeout(within, idle).await;
    shutdown.trigger();
    worker.stop(shutdown).await?;
    match drained {
        Ok(queues) => Ok(DrainReport { queues }),
        Err(_) => anyhow::bail!("the queues still had work after {within:?}"),
    }
}
