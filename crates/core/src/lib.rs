//! errand-core: the pieces both binaries agree on.
//!
//! # Layout
//! - [`task`]: the task record, its states and ids (the API's truth).
//! - [`store`]: the Redis task store: errand's own records, ready lists and indexes, every
//!   transition a guarded Lua script; its `migrate` converts older layouts (the untagged
//!   one, and what apalis-redis, the backend before errand's own, left behind).
//! - [`advance`]: the workflow advancer: a step's end applied to its workflow at once.
//! - [`prometheus`]: the process's Prometheus recorder (its install, buckets, upkeep).
//! - [`schedule`]: periodic schedules: cron parsing, time zones, the misfire policy.
//! - [`settings`]: layered configuration.
//! - [`shutdown`]: a process's stop in phases, owning every background loop.
//! - [`telemetry`]: tracing setup.
//! - [`workflow`]: workflows (DAGs of steps) as stored: their definition and state.
//! - [`until_ready`]: a start-up call retried while Redis is not ready, until a stop.
//! - [`upkeep`]: the periodic upkeep (due tasks, lapsed leases, expired ids) that worker
//!   and api processes run.

pub mod advance;
pub mod prometheus;
pub mod schedule;
pub mod settings;
pub mod shutdown;
pub mod store;
pub mod task;
pub mod telemetry;
pub mod until_ready;
pub mod upkeep;
pub mod workflow;

pub use settings::Settings;
pub use store::{StoreError, TaskStore};
