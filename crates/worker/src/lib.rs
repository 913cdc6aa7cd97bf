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
//! - [`scheduler`]: due schedules fired, each tick exactly once across all workers.
//! - [`webhooks`]: completion webhooks of the served queues delivered, signed, with retries.
//! - [`metrics`]: the Prometheus listener (`worker.metrics_addr`) and what it counts.
//!
//! [`run_until_stopped`] runs the worker and stops it in [`Shutdown`]'s phases; [`drain`]
//! runs it in-process until its queues are idle (for tests).

pub mod backend;
pub mod batch;
pub mod leases;
pub mod maintenance;
pub mod metrics;
pub mod outcome;
pub mod runner;
pub mod scheduler;
pub mod wake;
pub mod webhooks;

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use errand_core::{
    Settings, TaskStore,
    shutdown::Shutdown,
    store::{self, QueueStats, WorkerInfo, WorkerQueue},
    task::TaskState,
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

/// Runs the worker until `shutdown` is requested (a signal, see
/// [`Shutdown::listen_for_signals`]), then stops in its phases: no new tasks; running ones
/// finish for up to `worker.shutdown_grace_secs`, the rest is abandoned to other workers;
/// every loop is joined.
pub async fn run_until_stopped(settings: Settings, shutdown: Shutdown) -> anyhow::Result<()> {
    if let Some(addr) = &settings.worker.metrics_addr {
        metrics::install(addr)?;
    }
    let worker = Worker::start(settings, &shutdown).await?;
    worker.stop(shutdown).await
}

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
/// then stops it as a signal would. For tests that need the worker's behaviour but not its
/// process. Fails if that does not happen `within`.
pub async fn drain(settings: Settings, within: Duration) -> anyhow::Result<DrainReport> {
    let shutdown = Shutdown::new(join_deadline(&settings));
    let served: Vec<String> = settings
        .worker
        .queues
        .iter()
        .map(|q| q.name.clone())
        .collect();
    let worker = Worker::start(settings, &shutdown).await?;
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

/// How long the worker's loops get to end once asked (the [`Shutdown`]'s join deadline): a
/// webhook attempt in flight, a Redis call, and a margin.
pub fn join_deadline(settings: &Settings) -> Duration {
    Duration::from_millis(settings.webhooks.timeout_ms + settings.redis.response_timeout_ms)
        + Duration::from_secs(5)
}

/// A started worker: its loops run on the shutdown's trackers.
struct Worker {
    settings: Settings,
    store: TaskStore,
    running: Running,
    me: WorkerInfo,
    /// Read by the lease thread's heartbeat.
    stopping: Arc<AtomicBool>,
    /// Served queue loops: phase 2 waits for them (each ends once its in-flight attempts
    /// have).
    served: Vec<tokio::task::JoinHandle<()>>,
    /// Cancelled when a served queue ended on its own.
    failed: CancellationToken,
}

impl Worker {
    /// Migrates the layout, then starts every loop on `shutdown`.
    async fn start(settings: Settings, shutdown: &Shutdown) -> anyhow::Result<Self> {
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
        shutdown.join_thread_in_background(leases::spawn(
            settings.clone(),
            running.clone(),
            me.clone(),
            stopping.clone(),
            shutdown.background(),
        )?);
        // A cancel of a running task reaches the process running it at once.
        let cancels = running.clone();
        shutdown.spawn_background(store::subscription(
            clients.clone(),
            store.layout().cancel_channel(),
            shutdown.background(),
            || {},
            move |id| {
                if cancels.cancel(&id) {
                    tracing::info!(task_id = %id, "cancel requested; stopping task");
                }
            },
        ));
        let queues: Vec<String> = settings
            .worker
            .queues
            .iter()
            .map(|q| q.name.clone())
            .collect();
        shutdown.spawn_work(webhooks::run(
            store.clone(),
            settings.webhooks.clone(),
            queues,
            shutdown.work(),
        ));
        shutdown.spawn_background(maintenance::run(
            store.clone(),
            Duration::from_millis(250),
            shutdown.background(),
        ));

        let (reports, ends) = Runner::coalescers(&store, shutdown);
        shutdown.spawn_work(scheduler::run(
            store.clone(),
            settings.schedules.clone(),
            shutdown.work(),
        ));
        let runner = Arc::new(Runner {
            store: store.clone(),
            reports,
            ends,
            catalog,
            settings: settings.clone(),
            running: running.clone(),
            abandon: shutdown.abandon(),
            shutdown: shutdown.clone(),
        });
        let failed = CancellationToken::new();
        let mut served = Vec::new();
        for q in &settings.worker.queues {
            let (runner, client, name, q, shutdown_, failed) = (
                runner.clone(),
                clients.clone(),
                name.clone(),
                q.clone(),
                shutdown.clone(),
                failed.clone(),
            );
            served.push(shutdown.spawn_work(async move {
                if let Err(e) = backend::serve_queue(runner, client, name, q, &shutdown_).await {
                    tracing::error!(error = %e, "a queue stopped being served; shutting down");
                    failed.cancel();
                    shutdown_.trigger();
                }
            }));
        }
        tracing::info!(worker = %name, queues = ?settings.worker.queues.iter().map(|q| &q.name).collect::<Vec<_>>(), "worker started");
        Ok(Self {
            settings,
            store,
            running,
            me,
            stopping,
            served,
            failed,
        })
    }

    /// Waits for the stop to be requested, then runs its phases ([`Shutdown::run`]).
    async fn stop(self, shutdown: Shutdown) -> anyhow::Result<()> {
        let Self {
            settings,
            store,
            running,
            me,
            stopping,
            served,
            failed,
        } = self;
        shutdown.requested().await;
        tracing::info!(
            running = running.len(),
            "shutdown requested: no new tasks; finishing running ones"
        );
        let drained = async {
            // Say so at once (the lease thread repeats it on each beat), so operators and
            // tests see the drain start.
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
            if let Err(e) = store.heartbeat(&last, beat_ttl).await {
                tracing::debug!(error = %e, "stopping heartbeat not recorded");
            }
            for s in served {
                let _ = s.await;
            }
            while !running.is_empty() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        let on_abandon = || {
            tracing::warn!(
                abandoned = running.len(),
                "grace period over; abandoning running tasks to other workers"
            )
        };
        // Attempts in flight finish (each within webhooks.timeout_ms) and record their
        // outcome before the background loops stop.
        shutdown
            .run(settings.worker.shutdown_grace(), drained, on_abandon)
            .await;
        tracing::info!("worker stopped");
        if failed.is_cancelled() {
            anyhow::bail!("a served queue's worker ended on its own");
        }
        Ok(())
    }
}
