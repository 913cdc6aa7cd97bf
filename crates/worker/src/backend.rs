//! The apalis side: one apalis worker per served queue, on apalis-redis, supervised.
//!
//! Guards against apalis-redis 1.0 (see docs/architecture.md):
//! - job data is passed through a raw codec, so a job whose data does not decode reaches
//!   errand's handler (which fails that task alone) instead of killing the worker;
//! - task locking is off (it scans the whole backlog per task start); errand's claim
//!   script and lease make a double run impossible instead;
//! - each start of an apalis worker gets a fresh unique name (a restarted name is refused
//!   for a heartbeat window);
//! - an apalis worker that dies (any Redis error kills it, and it may even return Ok) is
//!   restarted by the supervisor with a fresh name; its fetched jobs are re-delivered by
//!   apalis-redis's orphan recovery, or re-queued by errand when their leases lapse.

use std::{convert::Infallible, sync::Arc, time::Duration};

use apalis::layers::WorkerBuilderExt;
use apalis_core::{
    backend::{codec::Codec, ext::BackendExt},
    error::BoxDynError,
    task::{data::Data, metadata::MetadataStore, task_id::TaskId},
    worker::builder::WorkerBuilder,
};
use apalis_redis::RedisStorage;
use errand_core::settings::QueueSettings;
use tokio_util::sync::CancellationToken;

use crate::{
    runner::{Delivery, Runner},
    wake::{self, Wake},
};

/// Passes job bytes through untouched: decoding is errand's business, so it can fail one
/// task rather than the worker.
#[derive(Debug, Clone, Copy, Default)]
pub struct RawCodec;

impl Codec<Vec<u8>> for RawCodec {
    type Error = Infallible;
    type Compact = Vec<u8>;

    fn encode(&self, val: &Vec<u8>) -> Result<Vec<u8>, Infallible> {
        Ok(val.clone())
    }

    fn decode(&self, val: &Vec<u8>) -> Result<Vec<u8>, Infallible> {
        Ok(val.clone())
    }
}

#[derive(Clone)]
struct Ctx {
    runner: Arc<Runner>,
}

async fn handle(
    data: Vec<u8>,
    meta: MetadataStore,
    job: TaskId,
    ctx: Data<Ctx>,
) -> Result<(), BoxDynError> {
    let delivery = Delivery {
        job_id: job.to_string(),
        task_id: meta.get("errand_id").map(str::to_owned),
        data,
    };
    // Detached from apalis's future: when apalis drops its in-flight jobs (its worker died
    // after a stalled heartbeat and is being restarted), a claimed attempt still runs to its
    // end and records its outcome, under a lease that keeps every other worker off it.
    let attempt = tokio::spawn(ctx.runner.clone().handle(delivery));
    match attempt.await {
        Ok(r) => Ok(r?),
        Err(e) => {
            tracing::error!(error = %e, job = %job, "attempt task failed");
            Ok(())
        }
    }
}

/// Runs queue `queue` until `stop`, restarting the apalis worker whenever it dies.
pub async fn serve_queue(
    runner: Arc<Runner>,
    client: redis::Client,
    base_name: String,
    queue: QueueSettings,
    stop: CancellationToken,
) {
    let settings = runner.settings.clone();
    let layout = runner.store.layout().clone();
    let wake = Wake::default();
    wake::spawn(
        client,
        layout.wake_channel(&queue.name),
        settings.worker.poll_interval(),
        wake.clone(),
        stop.clone(),
    );

    let mut restarts = 0u32;
    loop {
        // Unique per start: apalis-redis refuses a name that heartbeated recently.
        let name = format!("{base_name}:{}:{}", queue.name, ulid::Ulid::generate());
        let config = layout
            .apalis_config(&queue.name)
            .lock_tasks(false)
            .batch_size(settings.worker.batch_size.min(queue.concurrency.max(1)))
            .heartbeat_interval(Duration::from_secs(settings.worker.heartbeat_secs))
            // Nobody listens to apalis's own completion events: errand publishes its own.
            .emit_events(false)
            .missed_heartbeats(3);
        let storage = RedisStorage::<Vec<u8>>::new(runner.store.connection())
            .with_config(config)
            .with_codec(RawCodec)
            .poll_with_stream(wake.clone());
        let ctx = Ctx {
            runner: runner.clone(),
        };
        let worker = WorkerBuilder::new(name.as_str())
            .backend(storage)
            .data(ctx)
            .concurrency(queue.concurrency)
            .build(handle);
        tracing::info!(worker = %name, queue = %queue.name, concurrency = queue.concurrency, "apalis worker starting");
        let s = stop.clone();
        let started = std::time::Instant::now();
        let result = worker
            .run_until(async move {
                s.cancelled().await;
                Ok::<(), std::io::Error>(())
            })
            .await;
        if stop.is_cancelled() {
            tracing::info!(worker = %name, "apalis worker stopped");
            return;
        }
        // A worker that ran a good while before dying starts the backoff over.
        if started.elapsed() > Duration::from_secs(60) {
            restarts = 0;
        }
        restarts += 1;
        match result {
            Ok(()) => {
                tracing::error!(worker = %name, restarts, "apalis worker ended on its own; restarting")
            }
            Err(e) => {
                tracing::error!(worker = %name, restarts, error = %e, "apalis worker died; restarting")
            }
        }
        let pause = Duration::from_millis(200 * u64::from(restarts.min(10)));
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = stop.cancelled() => return,
        }
    }
}
