//! One worker process: every loop it runs, started on a [`Shutdown`] (none detached), and
//! its stop in the shutdown's phases.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use errand_core::{
    Settings, TaskStore,
    shutdown::{Abandoned, Shutdown},
    store::{self, WorkerInfo, WorkerKind, WorkerQueue},
    until_ready,
};
use errand_kinds::Catalog;
use tokio_util::sync::CancellationToken;

use crate::{
    backend,
    identity::{host_name, process_name},
    leases,
    leases::Running,
    metrics,
    runner::Runner,
    scheduler, webhooks,
};

/// How long the stop's own heartbeat ("stopping") may take.
const ANNOUNCE: Duration = Duration::from_secs(1);

/// How long the worker's loops get to end once asked (the [`Shutdown`]'s join deadline): a
/// webhook attempt in flight, a Redis call, and a margin.
pub fn join_deadline(settings: &Settings) -> Duration {
    Duration::from_millis(settings.webhooks.timeout_ms + settings.redis.response_timeout_ms)
        + Duration::from_secs(5)
}

/// A started worker: its loops run on the shutdown's trackers.
pub(crate) struct Process {
    settings: Settings,
    pub(crate) store: TaskStore,
    pub(crate) running: Running,
    me: WorkerInfo,
    /// Read by the lease thread's heartbeat.
    stopping: Arc<AtomicBool>,
    /// Served queue loops and the webhook loop: phase 2 waits for them (each ends once its
    /// in-flight attempts have).
    served: Vec<tokio::task::JoinHandle<()>>,
    /// Cancelled when a served queue ended on its own.
    failed: CancellationToken,
}

impl Process {
    /// Migrates the layout, then starts every loop on `shutdown`. `None` when the stop was
    /// requested before the migration could be done (Redis unreachable): nothing was
    /// started then.
    pub(crate) async fn start(
        settings: Settings,
        catalog: Catalog,
        shutdown: &Shutdown,
    ) -> anyhow::Result<Option<Self>> {
        for q in &settings.worker.queues {
            metrics::serve(&q.name, q.concurrency);
        }
        let conn = store::connect(&settings.redis)?;
        let layout = store::Layout::new(&settings.redis.key_prefix);
        let store =
            TaskStore::new(conn, layout).with_retention(store::Retention::from_settings(&settings));
        let clients = settings.redis.clients()?;
        // An older layout is converted before any of its tasks is fetched. While Redis is
        // unreachable this waits, and a stop ends the wait (a migration step is one atomic
        // script: one cut short is redone by the next start).
        let migrated =
            until_ready::retry("layout migration", shutdown.requested(), || store.migrate());
        if migrated.await.is_none() {
            return Ok(None);
        }
        let catalog = catalog.with_email(settings.email.clone());
        let name = process_name();
        // The kinds are registered before the first fetch, so the api accepts them by the
        // time this worker could run them; with Redis unreachable this waits, like the
        // migration.
        let kinds = catalog.definitions();
        let registered = until_ready::retry("kind registration", shutdown.requested(), || {
            store.register_kinds(&kinds, &name, true)
        });
        if registered.await.is_none() {
            return Ok(None);
        }
        tracing::info!(kinds = ?kinds.iter().map(|k| &k.name).collect::<Vec<_>>(), "kinds registered");
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
            kinds: kinds
                .iter()
                .map(|k| WorkerKind {
                    name: k.name.clone(),
                    digest: k.digest(),
                })
                .collect(),
        };
        let stopping = Arc::new(AtomicBool::new(false));
        shutdown.join_thread_in_background(leases::spawn(
            settings.clone(),
            running.clone(),
            me.clone(),
            kinds,
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
        let webhooks = shutdown.spawn_work(webhooks::run(
            store.clone(),
            settings.webhooks.clone(),
            queues,
            shutdown.work(),
            shutdown.abandon(),
        ));
        // Due and orphaned tasks re-queued, expired ids dropped (errand_core::upkeep).
        shutdown.spawn_background(errand_core::upkeep::run(
            store.clone(),
            Duration::from_millis(250),
            shutdown.background(),
            |n| metrics::recovered(n as usize),
        ));

        let (reports, ends) = Runner::coalescers(&store, shutdown);
        shutdown.spawn_work(scheduler::run(
            store.clone(),
            settings.schedules.clone(),
            shutdown.work(),
        ));
        // A workflow step's end applied to its workflow at once (errand_core::advance).
        let (advancer, advancing) =
            errand_core::advance::Advancer::start(store.clone(), shutdown.background());
        shutdown.spawn_background(advancing);
        let runner = Arc::new(Runner {
            advancer,
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
        // Phase 2 waits for the webhook attempts in flight too, so they count against the
        // grace rather than after it.
        let mut served = vec![webhooks];
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
        Ok(Some(Self {
            settings,
            store,
            running,
            me,
            stopping,
            served,
            failed,
        }))
    }

    /// Waits for the stop to be requested, then runs its phases ([`Shutdown::run`]).
    pub(crate) async fn stop(self, shutdown: Shutdown) -> anyhow::Result<()> {
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
            // tests see the drain start; alongside the wait, and briefly, since with Redis
            // gone the call would only delay the stop.
            stopping.store(true, Ordering::Relaxed);
            let mut last = me;
            last.stopping = true;
            last.running = running.len();
            last.running_ids = running.held().into_iter().take(100).map(|h| h.id).collect();
            last.last_seen = chrono::Utc::now();
            let beat_ttl = (settings.worker.lease() / 4 * 4).max(Duration::from_secs(5));
            let announce = async {
                match tokio::time::timeout(ANNOUNCE, store.heartbeat(&last, beat_ttl)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => tracing::debug!(error = %e, "stopping heartbeat not recorded"),
                    Err(_) => tracing::debug!("stopping heartbeat not recorded in time"),
                }
            };
            let finish = async {
                for s in served {
                    let _ = s.await;
                }
                while !running.is_empty() {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            };
            futures::join!(announce, finish);
        };
        let on_abandon = |why| {
            let reason = match why {
                Abandoned::GraceOver => "grace period over",
                Abandoned::Forced => "stop forced",
            };
            tracing::warn!(
                abandoned = running.len(),
                reason,
                "abandoning running tasks to their leases (other workers take them over)"
            );
        };
        // Attempts in flight finish (each within webhooks.timeout_ms) and record their
        // outcome before the background loops stop.
        let began = std::time::Instant::now();
        let stopped = shutdown
            .run(settings.worker.shutdown_grace(), drained, on_abandon)
            .await;
        tracing::info!(
            stop_ms = began.elapsed().as_millis() as u64,
            abandoned = stopped.abandoned,
            forced = stopped.forced,
            "worker stopped"
        );
        if failed.is_cancelled() {
            anyhow::bail!("a served queue's worker ended on its own");
        }
        Ok(())
    }
}
