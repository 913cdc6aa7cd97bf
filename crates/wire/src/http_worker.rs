//! The HTTP worker protocol on the wire (`/v1/worker/*`, docs/http-workers.md): what a
//! worker in any language sends to register, lease, heartbeat and report, and what it gets
//! back.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// A worker announcing itself and the kinds it runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "resizer", "queues": [{"name": "images", "concurrency": 8}],
    "kinds": [{"name": "resize", "payload_schema": {"type": "object", "required": ["width"],
    "properties": {"width": {"type": "integer", "minimum": 1}}}}]}))]
pub struct RegisterWorker {
    /// A label for people (`/v1/workers`, the dashboard): 1 to 32 of `A-Z a-z 0-9 _ - . :`.
    pub name: Option<String>,
    /// The queues it leases from, with how many of their tasks it runs at once.
    pub queues: Vec<QueueSpec>,
    /// The kinds it runs, registered as Rust workers' are: submits of them are validated
    /// against `payload_schema` from now on.
    pub kinds: Vec<KindSpec>,
}

/// One queue a worker serves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QueueSpec {
    /// The queue's name.
    #[schema(example = "default")]
    pub name: String,
    /// Most of its tasks the worker runs at once (1 to 10,000).
    #[schema(minimum = 1, maximum = 10000)]
    pub concurrency: usize,
}

/// A kind an HTTP worker runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KindSpec {
    /// Canonical name: 1 to 64 of `A-Z a-z 0-9 _ - . :`.
    pub name: String,
    /// Other names a submit may use.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// One line for people.
    #[serde(default)]
    pub summary: String,
    /// Whether running it twice has the effect of running it once.
    #[serde(default)]
    pub idempotent: bool,
    /// JSON Schema (2020-12) every payload must meet.
    #[schema(value_type = Value)]
    pub payload_schema: Value,
    /// JSON Schema every result must meet (default: any).
    #[schema(value_type = Option<Value>)]
    pub result_schema: Option<Value>,
    /// A payload it accepts, for the docs.
    #[schema(value_type = Option<Value>)]
    pub example: Option<Value>,
}

/// A registered worker: its id, and how often it must be heard from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Registered {
    /// The worker's id: send it with every lease, heartbeat and complete.
    #[schema(example = "http:resizer:01JD6S8Q3M6Z4W1D2K8E9T0ABC")]
    pub worker: String,
    /// How long a lease lasts without a heartbeat.
    pub lease_secs: f64,
    /// How often to send a heartbeat (with or without tasks); the registration lapses after
    /// four missed ones.
    pub heartbeat_secs: f64,
}

/// A request for tasks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LeaseRequest {
    /// The id `register` answered.
    pub worker: String,
    /// Queues to lease from (default: the registered ones).
    pub queues: Option<Vec<String>>,
    /// Most tasks to take (1 to 1,000; default 1): the worker's free slots.
    #[schema(minimum = 1, maximum = 1000)]
    pub max: Option<usize>,
    /// How long to wait for a task when none is ready (0 to 30,000 ms; default 0).
    #[schema(minimum = 0, maximum = 30000)]
    pub wait_ms: Option<u64>,
}

/// Tasks leased.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Leased {
    /// Now `running` under this worker, each with its lease; may be empty.
    pub tasks: Vec<LeasedTask>,
}

/// One leased task: what the worker runs it with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LeasedTask {
    /// The task id.
    pub id: String,
    /// Its queue.
    pub queue: String,
    /// Its kind.
    pub kind: String,
    /// Its input (validated against the kind's schema at submit).
    #[schema(value_type = Value)]
    pub payload: Value,
    /// This attempt's number, 1 for the first.
    pub attempt: u32,
    /// Attempts the task may have in all.
    pub max_attempts: u32,
    /// The claim token of this attempt (opaque): send it with every heartbeat and report.
    pub token: String,
    /// When the lease lapses unless a heartbeat extends it.
    pub lease_expires_at: DateTime<Utc>,
    /// The attempt's time limit in seconds, if the task has one.
    #[schema(required = true)]
    pub timeout_secs: Option<u64>,
    /// The submit's W3C trace context, when it was traced.
    #[schema(required = true)]
    pub traceparent: Option<String>,
    /// The workflow this task is a step of; null for a task of its own (docs/workflows.md).
    #[schema(required = true)]
    pub workflow: Option<String>,
    /// A workflow step's inputs: for each step it runs after, by name, that step's end
    /// (`{"id", "state", "result"}`, or `"error"` in place of `result` when it did not
    /// succeed); `{}` for a first step, null outside a workflow.
    #[schema(required = true, value_type = Option<Object>)]
    pub inputs: Option<Value>,
}

/// A worker's heartbeat: every task it holds, with progress where there is news.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HeartbeatRequest {
    /// The id `register` answered.
    pub worker: String,
    /// Tasks held now (at most 1,000).
    #[serde(default)]
    pub tasks: Vec<HeldTask>,
}

/// A task a worker holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HeldTask {
    /// The task id.
    pub id: String,
    /// The token its lease gave.
    pub token: String,
    /// Progress to record.
    pub progress: Option<ProgressIn>,
}

/// Progress reported by a task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProgressIn {
    /// 0 to 100.
    #[schema(minimum = 0, maximum = 100)]
    pub percent: u8,
    /// What the task says it is doing.
    pub message: Option<String>,
}

/// What a heartbeat found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct HeartbeatAnswer {
    /// Held tasks whose cancel a client requested: stop them and report them `cancelled`.
    pub cancel: Vec<String>,
    /// Tasks no longer held (the lease lapsed and another worker took over, or they were
    /// given back): stop them and report nothing, it would be refused.
    pub lost: Vec<String>,
    /// When the leases extended now lapse.
    pub lease_expires_at: DateTime<Utc>,
}

/// Attempts ended, many at once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompleteRequest {
    /// The id `register` answered.
    pub worker: String,
    /// 1 to 1,000 reports.
    pub reports: Vec<Report>,
}

/// How one attempt ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Report {
    /// The task id (optional in the single-task route, which has it in its path).
    pub id: Option<String>,
    /// The token its lease gave.
    pub token: String,
    /// `succeeded`, `failed` or `cancelled`.
    pub outcome: ReportOutcome,
    /// `succeeded`: the result, checked against the kind's result schema.
    #[schema(value_type = Option<Value>)]
    pub result: Option<Value>,
    /// `failed`: why.
    pub error: Option<ReportError>,
    /// `failed`: whether another attempt may succeed (default true). Retried while
    /// attempts remain.
    pub retryable: Option<bool>,
    /// `failed` and retried: how long to wait first (default: errand's exponential
    /// backoff), 0 to 604,800 s.
    #[schema(minimum = 0, maximum = 604800)]
    pub retry_in_secs: Option<f64>,
    /// `cancelled`: what the task said.
    pub message: Option<String>,
}

/// How an attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReportOutcome {
    Succeeded,
    Failed,
    Cancelled,
}

impl ReportOutcome {
    /// The outcome as the wire spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }
}

/// A failure as a worker reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportError {
    /// A category (`timeout`, `http_status`, an exception's class name …).
    pub kind: String,
    /// For people.
    pub message: String,
}

/// What became of each report, in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CompleteAnswer {
    pub results: Vec<ReportResult>,
}

/// What became of one report: `status` 200 recorded (a replay too), 409 the token no
/// longer holds the task, 422 the report does not fit (a result off its schema: nothing
/// recorded; report the task failed instead).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ReportResult {
    pub id: String,
    pub status: u16,
    /// The problem type, when not 200.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// The field at fault, for a 422.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// The single-task answer: recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Recorded {
    pub recorded: bool,
}
