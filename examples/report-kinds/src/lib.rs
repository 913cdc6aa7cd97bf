//! report-kinds: task kinds of your own, run by a worker binary of your own
//! (`report-worker`), against the stock errand-api. The api is not rebuilt: the worker
//! registers each kind's definition (name, summary, payload and result JSON Schema) in Redis
//! when it starts, and the api validates submits against that schema. Copy this crate to
//! start yours; docs/writing-kinds.md walks through it.
//!
//! Both kinds are pure functions of their payload (idempotent), CPU-bound (they run on
//! tokio's blocking pool, never on the executor that fetches and heartbeats), report
//! progress and stop when the task is cancelled.
//!
//! # Layout
//! - [`csv_summary`]: `csv_summary`, per-column statistics of a CSV text; its bounds are
//!   written into the schema by `document`.
//! - [`thumbnail`]: `thumbnail`, a PNG scaled down to fit a square; its bounds are utoipa
//!   attributes.
//! - `src/main.rs`: the `report-worker` binary: settings, telemetry and the builder.
//! - `tests/stock_api.rs`: the stock errand-api and `report-worker` end to end, on a real
//!   Redis.

pub mod csv_summary;
pub mod thumbnail;

pub use csv_summary::CsvSummary;
pub use thumbnail::Thumbnail;

use errand_worker::kinds::Failure;

/// The failure both kinds end with once the task is cancelled (by a client, its timeout or
/// the worker's shutdown): permanent, and of errand's own kind `cancelled`, so the task ends
/// `cancelled` rather than `failed`.
fn cancelled(kind: &str) -> Failure {
    Failure::permanent("cancelled", format!("{kind} was cancelled"))
}

/// What became of a blocking-pool job: its thread panicked (a bug, retried like any
/// panic) or it ran.
fn joined<T>(
    kind: &str,
    r: Result<Result<T, Failure>, tokio::task::JoinError>,
) -> Result<T, Failure> {
    r.map_err(|e| Failure::retryable("panic", format!("{kind} thread failed: {e}")))?
}

#[cfg(test)]
mod testing {
    //! A [`TaskContext`] outside any worker, as the kinds' unit tests need it.

    use errand_worker::kinds::TaskContext;
    use tokio_util::sync::CancellationToken;

    /// A context, a look at its latest progress report (percent and message) and its
    /// cancellation token.
    pub(crate) fn context() -> (
        TaskContext,
        impl Fn() -> Option<(u8, Option<String>)>,
        CancellationToken,
    ) {
        let (tx, rx) = tokio::sync::watch::channel(None);
        let cancel = CancellationToken::new();
        let ctx = TaskContext::new("t-1".into(), 1, tx, cancel.clone());
        let latest = move || rx.borrow().as_ref().map(|p| (p.percent, p.message.clone()));
        (ctx, latest, cancel)
    }
}
