//! Delivery: one apalis worker per served queue, fed by errand's own apalis backend.
//!
//! apalis is the runtime (`WorkerBuilder`, bounded concurrency, graceful stop); the source
//! of tasks is [`ErrandBackend`], which fetches and claims in one script call (see
//! `source.rs`). The task's own code runs in a tokio task of its own (panics are caught and
//! recorded); apalis never drops a handler's future before it ends: its worker only stops
//! after its in-flight handlers are done, and errand's backend never ends it.

mod slots;
mod source;

use std::{convert::Infallible, sync::Arc};

use apalis::layers::WorkerBuilderExt;
use apalis_core::{task::data::Data, worker::builder::WorkerBuilder};
use errand_core::{settings::QueueSettings, shutdown::Shutdown};

pub(crate) use self::{
    slots::Slots,
    source::{Delivery, ErrandBackend},
};
use crate::{
    runner::Runner,
    wake::{self, Wake},
};

#[derive(Clone)]
struct Ctx {
    runner: Arc<Runner>,
}

async fn handle(d: Delivery, ctx: Data<Ctx>) -> Result<(), Infallible> {
    let Delivery { claimed, slot } = d;
    ctx.runner.clone().run(claimed).await;
    // The slot is free once the task's work has ended (its outcome may still be on its way
    // to Redis, under its lease).
    drop(slot);
    Ok(())
}

/// Serves queue `queue` until the process stops taking work. Returns `Err` if the apalis worker ended on its own,
/// which nothing in errand's backend can cause; the process then shuts down rather than
/// serve fewer queues than it says.
pub(crate) async fn serve_queue(
    runner: Arc<Runner>,
    client: Vec<redis::Client>,
    worker_name: String,
    queue: QueueSettings,
    shutdown: &Shutdown,
) -> anyhow::Result<()> {
    let stop = shutdown.work();
    let settings = runner.settings.clone();
    let layout = runner.store.layout().clone();
    let wake = Wake::default();
    wake::spawn(
        shutdown,
        client,
        layout.wake_channel(&queue.name),
        settings.worker.poll_interval(),
        wake.clone(),
    );
    let backend = ErrandBackend::new(
        runner.store.clone(),
        &queue.name,
        &worker_name,
        settings.worker.lease(),
        settings.worker.batch_size,
        Slots::new(queue.concurrency),
        wake,
        shutdown,
    );
    let name = format!("{worker_name}:{}", queue.name);
    let worker = WorkerBuilder::new(name.as_str())
        .backend(backend)
        .data(Ctx { runner })
        .concurrency(queue.concurrency)
        .build(handle);
    tracing::info!(worker = %name, queue = %queue.name, concurrency = queue.concurrency, "serving queue");
    let s = stop.clone();
    let result = worker
        .run_until(async move {
            s.cancelled().await;
            Ok::<(), std::io::Error>(())
        })
        .await;
    if stop.is_cancelled() {
        tracing::info!(worker = %name, "queue no longer served");
        return Ok(());
    }
    anyhow::bail!("apalis worker {name} ended on its own: {result:?}")
}
