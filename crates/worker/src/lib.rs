//! errand-worker: runs queued tasks, as the `errand-worker` binary or as a library in your
//! own binary with your own kinds:
//!
//! ```no_run
//! use errand_worker::{Settings, Worker, kinds::{Failure, TaskContext, TaskKind}};
//! use serde::{Deserialize, Serialize};
//!
//! /// Says hello.
//! #[derive(Debug)]
//! struct Greet;
//!
//! /// Payload of `greet`.
//! #[derive(Debug, Deserialize, utoipa::ToSchema)]
//! #[serde(deny_unknown_fields)]
//! struct GreetPayload {
//!     /// Who to greet.
//!     name: String,
//! }
//!
//! /// Result of `greet`.
//! #[derive(Debug, Serialize, utoipa::ToSchema)]
//! struct Greeting {
//!     /// The greeting.
//!     text: String,
//! }
//!
//! impl TaskKind for Greet {
//!     type Payload = GreetPayload;
//!     type Output = Greeting;
//!     const NAME: &'static str = "greet";
//!     const SUMMARY: &'static str = "Says hello to `name`.";
//!     const IDEMPOTENT: bool = true;
//!
//!     fn example() -> serde_json::Value {
//!         serde_json::json!({"name": "Ada"})
//!     }
//!
//!     async fn run(_ctx: TaskContext, p: GreetPayload) -> Result<Greeting, Failure> {
//!         Ok(Greeting { text: format!("hello, {}", p.name) })
//!     }
//! }
//!
//! #[tokio::main]
//! async fn main() -> anyhow::Result<()> {
//!     let settings = Settings::load()?;
//!     let _telemetry = errand_worker::telemetry::init(
//!         "my-worker", &settings.log, &settings.telemetry, std::io::stdout,
//!     )?;
//!     Worker::builder(settings).kind::<Greet>().run_until_stopped().await
//! }
//! ```
//!
//! The worker registers each kind's definition in Redis when it starts, and the stock
//! errand-api validates submits against it (docs/writing-kinds.md).
//!
//! # Layout
//! - `builder`: [`Worker::builder`], the kinds a worker runs and how it stops.
//! - `backend`: one apalis worker per served queue, fed by errand's own apalis backend
//!   (fetch and claim in one script call).
//! - `runner`: one claimed attempt run, its outcome recorded.
//! - `outcome`: the retry policy: what an ended attempt means for its task (pure).
//! - `batch`: group commit of progress reports and attempt ends.
//! - `leases`: leases on running tasks, renewed from a dedicated thread.
//! - `wake`: wake-ups on submit (pub/sub) with a fallback tick.
//! - `scheduler`: due schedules fired, each tick exactly once across all workers.
//! - `webhooks`: completion webhooks of the served queues delivered, signed, with retries.
//! - `process`: one worker process: every loop started on a [`Shutdown`], stopped in its
//!   phases.
//! - `identity`: the process's name, as its heartbeat and claims carry it.
//! - `drain`: [`drain()`], the same worker run in-process until its queues are idle (for tests).
//! - `metrics`: the Prometheus listener (`worker.metrics_addr`) and what it counts.
//!
//! [`run_until_stopped`] runs the worker and stops it in [`Shutdown`]'s phases; [`drain()`]
//! runs it in-process until its queues are idle (for tests).

mod backend;
mod batch;
mod builder;
mod drain;
mod identity;
mod leases;
mod metrics;
mod outcome;
mod process;
mod runner;
mod scheduler;
mod wake;
mod webhooks;

pub use errand_core::{Settings, shutdown::Shutdown, telemetry};
/// The kind API: [`TaskKind`](kinds::TaskKind), [`TaskContext`](kinds::TaskContext),
/// [`Failure`](kinds::Failure), and the built-in kinds.
pub use errand_kinds as kinds;

pub use crate::builder::{Worker, WorkerBuilder};
pub use crate::drain::{DrainReport, drain};
pub use crate::process::join_deadline;

/// Runs the worker with errand's built-in kinds until `shutdown` is requested (a signal,
/// see [`Shutdown::listen_for_signals`]), then stops in its phases: what the
/// `errand-worker` binary runs. [`Worker::builder`] runs your own kinds.
pub async fn run_until_stopped(settings: Settings, shutdown: Shutdown) -> anyhow::Result<()> {
    Worker::builder(settings)
        .builtin()
        .shutdown(shutdown)
        .run_until_stopped()
        .await
}
