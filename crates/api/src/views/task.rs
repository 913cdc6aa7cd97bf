//! Tasks as the API serves them.

use chrono::{DateTime, Utc};
use errand_core::task::{
    Callback, Progress, TaskError, TaskId, TaskRecord, TaskState, WebhookEvent, WebhookState,
    WebhookStatus,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// A task's id: server-made (UUIDv7, so ids sort by creation time) or given by the client,
/// which makes the submit idempotent. Restricted to a URL- and key-safe alphabet so it can
/// sit in a path segment and a Redis key unescaped.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(transparent)]
#[schema(as = TaskId, value_type = String, example = "0193a0c4-5bd2-7c1e-9f3e-6c1d2b7a9e10", pattern = "^[A-Za-z0-9._:-]{1,128}$")]
pub(crate) struct TaskIdView(String);

impl From<&TaskId> for TaskIdView {
    fn from(id: &TaskId) -> Self {
        Self(id.as_str().to_owned())
    }
}

/// Where a task is in its life. Who moves it:
/// - `scheduled`: submitted with a delay; the worker-side promoter queues it when due.
/// - `queued`: waiting for a worker; a worker moves it to `running`.
/// - `running`: a worker holds its lease; the worker ends it, or another worker takes it over
///   (as a new attempt) when the lease lapses.
/// - `retrying`: the last attempt failed and attempts remain; re-queued at `next_attempt_at`.
/// - `succeeded`, `failed`, `cancelled`: terminal, kept for the result TTL, then deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = TaskState)]
pub(crate) enum TaskStateView {
    Scheduled,
    Queued,
    Running,
    Retrying,
    Succeeded,
    Failed,
    Cancelled,
}

impl From<TaskState> for TaskStateView {
    fn from(s: TaskState) -> Self {
        match s {
            TaskState::Scheduled => Self::Scheduled,
            TaskState::Queued => Self::Queued,
            TaskState::Running => Self::Running,
            TaskState::Retrying => Self::Retrying,
            TaskState::Succeeded => Self::Succeeded,
            TaskState::Failed => Self::Failed,
            TaskState::Cancelled => Self::Cancelled,
        }
    }
}

/// How far a running task has got, as reported by the task itself.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = Progress)]
pub(crate) struct ProgressView {
    /// 0 to 100.
    #[schema(minimum = 0, maximum = 100, example = 40)]
    pub percent: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, example = "slept 2 of 5 s")]
    pub message: Option<String>,
}

impl From<&Progress> for ProgressView {
    fn from(p: &Progress) -> Self {
        Self {
            percent: p.percent,
            message: p.message.clone(),
        }
    }
}

/// Why the last attempt failed.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = TaskError)]
pub(crate) struct TaskErrorView {
    /// A stable, machine-readable category: `timeout`, `panic`, `worker_lost`,
    /// `invalid_payload`, or one a task kind defines.
    #[schema(example = "timeout")]
    pub kind: String,
    #[schema(example = "attempt ran longer than 30 s")]
    pub message: String,
}

impl From<&TaskError> for TaskErrorView {
    fn from(e: &TaskError) -> Self {
        Self {
            kind: e.kind.clone(),
            message: e.message.clone(),
        }
    }
}

/// A task event a callback can ask for: the terminal states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = WebhookEvent)]
pub enum WebhookEventView {
    Succeeded,
    Failed,
    Cancelled,
}

impl From<WebhookEvent> for WebhookEventView {
    fn from(e: WebhookEvent) -> Self {
        match e {
            WebhookEvent::Succeeded => Self::Succeeded,
            WebhookEvent::Failed => Self::Failed,
            WebhookEvent::Cancelled => Self::Cancelled,
        }
    }
}

impl From<WebhookEventView> for WebhookEvent {
    fn from(e: WebhookEventView) -> Self {
        match e {
            WebhookEventView::Succeeded => Self::Succeeded,
            WebhookEventView::Failed => Self::Failed,
            WebhookEventView::Cancelled => Self::Cancelled,
        }
    }
}

fn all_events() -> Vec<WebhookEventView> {
    WebhookEvent::ALL.into_iter().map(Into::into).collect()
}

/// Where to POST when the task ends, and for which endings.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Callback, example = json!({"url": "https://hooks.example.com/errand", "events": ["succeeded", "failed"]}))]
pub struct CallbackView {
    /// `http` or `https` URL; checked at submit against `webhooks.destinations`. The
    /// bound is `settings::MAX_CALLBACK_URL_BYTES` (a unit test holds them together).
    #[schema(example = "https://hooks.example.com/errand", max_length = 2048)]
    pub url: String,
    /// The endings to be told about; default all three.
    #[serde(default = "all_events")]
    #[schema(min_items = 1)]
    pub events: Vec<WebhookEventView>,
}

impl From<&Callback> for CallbackView {
    fn from(c: &Callback) -> Self {
        Self {
            url: c.url.clone(),
            events: c.events.iter().copied().map(Into::into).collect(),
        }
    }
}

impl From<CallbackView> for Callback {
    fn from(c: CallbackView) -> Self {
        Self {
            url: c.url,
            events: c.events.into_iter().map(Into::into).collect(),
        }
    }
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = WebhookState)]
pub(crate) enum WebhookStateView {
    /// Waiting for its first attempt or for a retry.
    Pending,
    /// The receiver answered 2xx.
    Delivered,
    /// Given up: the retry window ran out or the destination is refused.
    Failed,
}

impl From<WebhookState> for WebhookStateView {
    fn from(s: WebhookState) -> Self {
        match s {
            WebhookState::Pending => Self::Pending,
            WebhookState::Delivered => Self::Delivered,
            WebhookState::Failed => Self::Failed,
        }
    }
}

/// The latest delivery of a task's webhook (a retried task that ends again gets a new one).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = WebhookStatus)]
pub(crate) struct WebhookStatusView {
    /// The delivery's `webhook-id` header: the same on every attempt, so receivers can
    /// drop duplicates.
    #[schema(example = "01JD2M3K9X.1")]
    pub id: String,
    pub event: WebhookEventView,
    pub state: WebhookStateView,
    /// Attempts made so far.
    #[serde(default)]
    pub attempts: u32,
    /// HTTP status of the last attempt; null when none answered.
    #[serde(default)]
    #[schema(required = true, example = 500)]
    pub last_status: Option<u16>,
    /// Why the last attempt failed; null when it did not.
    #[serde(default)]
    #[schema(required = true, example = "answered 500")]
    pub last_error: Option<String>,
    /// When the next attempt is due (`pending` only).
    #[serde(default)]
    #[schema(required = true)]
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// When the receiver accepted it (`delivered` only).
    #[serde(default)]
    #[schema(required = true)]
    pub delivered_at: Option<DateTime<Utc>>,
}

impl From<&WebhookStatus> for WebhookStatusView {
    fn from(w: &WebhookStatus) -> Self {
        Self {
            id: w.id.clone(),
            event: w.event.into(),
            state: w.state.into(),
            attempts: w.attempts,
            last_status: w.last_status,
            last_error: w.last_error.clone(),
            next_attempt_at: w.next_attempt_at,
            delivered_at: w.delivered_at,
        }
    }
}

/// A task as errand keeps it in Redis and serves it over the API.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = TaskRecord)]
pub(crate) struct TaskView {
    pub id: TaskIdView,
    /// The task kind's canonical name (see `GET /v1/kinds`).
    #[schema(example = "sleep")]
    pub kind: String,
    #[schema(example = "default")]
    pub queue: String,
    pub state: TaskStateView,
    /// The validated input, as submitted.
    #[schema(value_type = Object, example = json!({"duration_secs": 5}))]
    pub payload: Value,
    /// The latest progress report of the current (or last) attempt; null before the first.
    #[schema(required = true)]
    pub progress: Option<ProgressView>,
    /// The task's output once `succeeded` (its shape is the kind's result schema), else null.
    #[schema(required = true, value_type = Option<Object>, example = json!({"message": "task 42 done", "slept_secs": 5}))]
    pub result: Option<Value>,
    /// The last failed attempt's error; null until an attempt fails.
    #[schema(required = true)]
    pub error: Option<TaskErrorView>,
    /// 1-based number of the current (or last) attempt; 0 before the first starts.
    pub attempt: u32,
    pub max_attempts: u32,
    /// Per-attempt time limit; null for none.
    #[schema(required = true)]
    pub timeout_secs: Option<u64>,
    /// How long the record stays readable once terminal.
    pub result_ttl_secs: u64,
    pub created_at: DateTime<Utc>,
    /// When a delayed task is due; null when it was queued at once.
    #[schema(required = true)]
    pub scheduled_for: Option<DateTime<Utc>>,
    /// When the current (or last) attempt started; null before the first.
    #[schema(required = true)]
    pub started_at: Option<DateTime<Utc>>,
    /// When it became terminal; null until then.
    #[schema(required = true)]
    pub finished_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
    /// When a `retrying` task will be queued again; null in other states.
    #[schema(required = true)]
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// The worker running, or last to run, this task; null before the first attempt.
    #[schema(required = true, example = "host-1:4242:01JD2M3K")]
    pub worker: Option<String>,
    /// True once a cancel was requested for a running task.
    #[serde(default)]
    #[schema(required = true)]
    pub cancel_requested: bool,
    /// The schedule that fired this task; null when a client submitted it (see `/v1/schedules`).
    #[serde(default)]
    #[schema(required = true, example = "nightly-report")]
    pub schedule_id: Option<String>,
    /// Where errand POSTs a signed webhook when the task ends (docs/webhooks.md); null for none.
    #[serde(default)]
    #[schema(required = true)]
    pub callback: Option<CallbackView>,
    /// The latest webhook delivery; null until the task ends with an event its callback asked for.
    #[serde(default)]
    #[schema(required = true)]
    pub webhook: Option<WebhookStatusView>,
    /// 1 to 9, higher first; 5 unless the submit gave one (docs/flow-control.md).
    #[schema(required = true, minimum = 1, maximum = 9, example = 5)]
    pub priority: u8,
    /// The concurrency key the queue's `per_key` limit counts it under; null for none.
    #[schema(required = true, example = "customer-7")]
    pub concurrency_key: Option<String>,
    /// The workflow this task is a step of (`GET /v1/workflows/{id}`); null for a task of
    /// its own.
    #[schema(required = true, example = "nightly-report")]
    pub workflow: Option<String>,
    /// Its step's name in that workflow; null for a task of its own.
    #[schema(required = true, example = "render")]
    pub step: Option<String>,
}

/// By value where the handler is done with the record: the payload and the result, the
/// record's large parts, move instead of being copied.
impl From<TaskRecord> for TaskView {
    fn from(mut r: TaskRecord) -> Self {
        let payload = std::mem::take(&mut r.payload);
        let result = r.result.take();
        Self::with(&r, payload, result)
    }
}

impl From<&TaskRecord> for TaskView {
    fn from(r: &TaskRecord) -> Self {
        Self::with(r, r.payload.clone(), r.result.clone())
    }
}

impl TaskView {
    fn with(r: &TaskRecord, payload: Value, result: Option<Value>) -> Self {
        Self {
            id: (&r.id).into(),
            kind: r.kind.clone(),
            queue: r.queue.clone(),
            state: r.state.into(),
            payload,
            progress: r.progress.as_ref().map(Into::into),
            result,
            error: r.error.as_ref().map(Into::into),
            attempt: r.attempt,
            max_attempts: r.max_attempts,
            timeout_secs: r.timeout_secs,
            result_ttl_secs: r.result_ttl_secs,
            created_at: r.created_at,
            scheduled_for: r.scheduled_for,
            started_at: r.started_at,
            finished_at: r.finished_at,
            updated_at: r.updated_at,
            next_attempt_at: r.next_attempt_at,
            worker: r.worker.clone(),
            cancel_requested: r.cancel_requested,
            schedule_id: r.schedule_id.clone(),
            callback: r.callback.as_ref().map(Into::into),
            webhook: r.webhook.as_ref().map(Into::into),
            priority: r.priority,
            concurrency_key: r.concurrency_key.clone(),
            workflow: r.workflow.clone(),
            step: r.step.clone(),
        }
    }
}
