//! errand's HTTP API on the wire: every request body the server reads and every response
//! body it writes, as one set of types. The server (errand-api) serializes these and builds
//! its OpenAPI document from them (`utoipa::ToSchema`); the Rust client (errand-client) and
//! the CLI send and decode the very same types, so a field added to the API reaches them
//! with no copy to keep in step.
//!
//! The crate is light on purpose: serde, chrono and utoipa's derives, nothing of the server
//! (no Redis, no apalis, no OpenTelemetry). The stored types stay in errand-core; the server
//! converts them into these at its edge (errand-api's `views`).
//!
//! Doc comments here are the document's descriptions: a field whose name says it all has
//! none, so the document stays as terse as it was (hence `missing_docs` is allowed here).
//! Component names the document has always used are kept with `#[schema(as = …)]`.
//!
//! # Layout
//! - [`task`]: a task record and its parts, a submit, a page, a batch.
//! - [`schedule`]: a schedule and one to create.
//! - [`workflow`]: a workflow to submit and one as it stands.
//! - [`queue`]: queue counts, pause state, flow-control limits.
//! - [`bulk`]: bulk actions.
//! - [`worker`]: worker processes as their heartbeats describe them.
//! - [`http_worker`]: the HTTP worker protocol: register, lease, heartbeat, complete.
//! - [`kind`]: task kinds from the registry.
//! - [`problem`]: the problem+json body of every refusal.
#![allow(missing_docs)]

pub mod bulk;
pub mod http_worker;
pub mod kind;
pub mod problem;
pub mod queue;
pub mod schedule;
pub mod task;
pub mod worker;
pub mod workflow;

pub use bulk::{BulkAction, BulkJob, StartBulk};
pub use http_worker::{
    CompleteAnswer, CompleteRequest, HeartbeatAnswer, HeartbeatRequest, HeldTask, KindSpec,
    LeaseRequest, Leased, LeasedTask, ProgressIn, QueueSpec, Recorded, RegisterWorker, Registered,
    Report, ReportError, ReportOutcome, ReportResult,
};
pub use kind::KindInfo;
pub use problem::Problem;
pub use queue::{
    Held, KeyWaiting, Limits, QueueInfo, QueueLimits, QueueList, QueuePause, Rate, SetLimits,
};
pub use schedule::{CreateSchedule, Misfire, Schedule, ScheduleId, SchedulePage};
pub use task::{
    BatchItem, BatchResult, Callback, Progress, SubmitBatch, SubmitTask, TaskError, TaskId,
    TaskPage, TaskRecord, TaskState, UnknownName, WebhookEvent, WebhookState, WebhookStatus,
};
pub use worker::{WorkerInfo, WorkerKind, WorkerList, WorkerQueue};
pub use workflow::{
    After, Dependency, OnFailure, StepInfo, StepState, SubmitWorkflow, Workflow, WorkflowPage,
    WorkflowState, WorkflowStep, WorkflowSummary,
};
