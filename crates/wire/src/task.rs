//! Tasks on the wire: the record the API serves, its parts, and a submit.

use std::{fmt, str::FromStr};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// A task's id: server-made (UUIDv7, so ids sort by creation time) or given by the client,
/// which makes the submit idempotent. Restricted to a URL- and key-safe alphabet so it can
/// sit in a path segment and a Redis key unescaped.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(transparent)]
#[schema(value_type = String, example = "0193a0c4-5bd2-7c1e-9f3e-6c1d2b7a9e10", pattern = "^[A-Za-z0-9._:-]{1,128}$")]
pub struct TaskId(String);

impl TaskId {
    /// The id as the server gave it (no check: the server checked it).
    pub fn new(id: impl Into<String>) -> Self {
        Self(id.into())
    }
    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a task is in its life. Who moves it:
/// - `scheduled`: submitted with a delay; upkeep (in any worker or api process) queues it when due.
/// - `queued`: waiting for a worker; a worker moves it to `running`.
/// - `running`: a worker holds its lease; the worker ends it, or another worker takes it over
///   (as a new attempt) when the lease lapses.
/// - `retrying`: the last attempt failed and attempts remain; re-queued at `next_attempt_at`.
/// - `succeeded`, `failed`, `cancelled`: terminal, kept for the result TTL, then deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TaskState {
    Scheduled,
    Queued,
    Running,
    Retrying,
    Succeeded,
    Failed,
    Cancelled,
}

impl TaskState {
    /// Every state, in lifecycle order.
    pub const ALL: [TaskState; 7] = [
        Self::Scheduled,
        Self::Queued,
        Self::Running,
        Self::Retrying,
        Self::Succeeded,
        Self::Failed,
        Self::Cancelled,
    ];

    /// The name the API uses (`queued`, `running`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Scheduled => "scheduled",
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Retrying => "retrying",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    /// Succeeded, failed or cancelled: nothing moves it any more (but a retry).
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Cancelled)
    }
}

/// A state name that is none of [`TaskState::ALL`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownName {
    what: &'static str,
    name: String,
}

impl UnknownName {
    pub(crate) fn new(what: &'static str, name: &str) -> Self {
        Self {
            what,
            name: name.to_owned(),
        }
    }
}

impl fmt::Display for UnknownName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown {} {:?}", self.what, self.name)
    }
}

impl std::error::Error for UnknownName {}

impl FromStr for TaskState {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| UnknownName::new("task state", s))
    }
}

impl fmt::Display for TaskState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How far a running task has got, as reported by the task itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Progress {
    /// 0 to 100.
    #[schema(minimum = 0, maximum = 100, example = 40)]
    pub percent: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, example = "slept 2 of 5 s")]
    pub message: Option<String>,
}

/// Why the last attempt failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TaskError {
    /// A stable, machine-readable category: `timeout`, `panic`, `worker_lost`,
    /// `invalid_payload`, or one a task kind defines.
    #[schema(example = "timeout")]
    pub kind: String,
    #[schema(example = "attempt ran longer than 30 s")]
    pub message: String,
}

/// A task event a callback can ask for: the terminal states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum WebhookEvent {
    Succeeded,
    Failed,
    Cancelled,
}

impl WebhookEvent {
    /// Every event: what a callback that names none is told about.
    pub const ALL: [WebhookEvent; 3] = [Self::Succeeded, Self::Failed, Self::Cancelled];

    /// The name the API uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }
}

impl FromStr for WebhookEvent {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|e| e.as_str() == s)
            .ok_or_else(|| UnknownName::new("webhook event", s))
    }
}

fn all_events() -> Vec<WebhookEvent> {
    WebhookEvent::ALL.to_vec()
}

/// Where to POST when the task ends, and for which endings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"url": "https://hooks.example.com/errand", "events": ["succeeded", "failed"]}))]
pub struct Callback {
    /// `http` or `https` URL; checked at submit against `webhooks.destinations`. The
    /// bound is `settings::MAX_CALLBACK_URL_BYTES` (a unit test holds them together).
    #[schema(example = "https://hooks.example.com/errand", max_length = 2048)]
    pub url: String,
    /// The endings to be told about; default all three.
    #[serde(default = "all_events")]
    #[schema(min_items = 1)]
    pub events: Vec<WebhookEvent>,
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum WebhookState {
    /// Waiting for its first attempt or for a retry.
    Pending,
    /// The receiver answered 2xx.
    Delivered,
    /// Given up: the retry window ran out or the destination is refused.
    Failed,
}

/// The latest delivery of a task's webhook (a retried task that ends again gets a new one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WebhookStatus {
    /// The delivery's `webhook-id` header: the same on every attempt, so receivers can
    /// drop duplicates.
    #[schema(example = "01JD2M3K9X.1")]
    pub id: String,
    pub event: WebhookEvent,
    pub state: WebhookState,
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

/// A task as errand keeps it in Redis and serves it over the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TaskRecord {
    pub id: TaskId,
    /// The task kind's canonical name (see `GET /v1/kinds`).
    #[schema(example = "sleep")]
    pub kind: String,
    #[schema(example = "default")]
    pub queue: String,
    pub state: TaskState,
    /// The validated input, as submitted.
    #[schema(value_type = Object, example = json!({"duration_secs": 5}))]
    pub payload: Value,
    /// The latest progress report of the current (or last) attempt; null before the first.
    #[schema(required = true)]
    pub progress: Option<Progress>,
    /// The task's output once `succeeded` (its shape is the kind's result schema), else null.
    #[schema(required = true, value_type = Option<Object>, example = json!({"message": "task 42 done", "slept_secs": 5}))]
    pub result: Option<Value>,
    /// The last failed attempt's error; null until an attempt fails.
    #[schema(required = true)]
    pub error: Option<TaskError>,
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
    pub callback: Option<Callback>,
    /// The latest webhook delivery; null until the task ends with an event its callback asked for.
    #[serde(default)]
    #[schema(required = true)]
    pub webhook: Option<WebhookStatus>,
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

// The numbers and patterns in `#[schema]` are literals (utoipa takes no consts); a test in
// the api's `openapi` holds them to `errand_core::task::bounds`, `QueueName` and the id types.
/// A task to run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"kind": "sleep", "payload": {"duration_secs": 5}}))]
pub struct SubmitTask {
    /// A kind from `GET /v1/kinds` (aliases accepted).
    #[schema(example = "sleep")]
    pub kind: String,
    /// The kind's input; validated against its schema at submit time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Object, example = json!({"duration_secs": 5}))]
    pub payload: Option<Value>,
    /// Queue name (`[A-Za-z0-9_.-]`, at most 64); default `default`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "default", pattern = "^[A-Za-z0-9_.-]{1,64}$")]
    pub queue: Option<String>,
    /// Client-chosen id: submitting the same id again returns the existing task (200) and
    /// enqueues nothing. Same as the `Idempotency-Key` header.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "order-42-receipt", pattern = "^[A-Za-z0-9._:-]{1,128}$")]
    pub id: Option<String>,
    /// Attempts before the task is `failed` (1 to 100).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 100)]
    pub max_attempts: Option<u32>,
    /// Per-attempt time limit in seconds (1 to 604800).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 604800)]
    pub timeout_secs: Option<u64>,
    /// Run no earlier than this many seconds from now (exclusive with `run_at`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(maximum = 31536000)]
    pub delay_secs: Option<u64>,
    /// Run no earlier than this time (RFC 3339; exclusive with `delay_secs`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_at: Option<DateTime<Utc>>,
    /// How long the record stays readable once terminal (1 to 2592000 s).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 2592000)]
    pub result_ttl_secs: Option<u64>,
    /// A signed webhook POSTed to `url` when the task ends with one of `events`
    /// (docs/webhooks.md). The URL must pass `webhooks.destinations` (422 naming
    /// `callback.url` otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub callback: Option<Callback>,
    /// Unique for a while (with `unique_for_secs`): while the task that took this key in
    /// this queue lives and the window lasts, a submit with the same key answers that task
    /// (200) and creates nothing; after it, a new task (docs/flow-control.md).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "refresh:customer-7", pattern = "^[A-Za-z0-9._:-]{1,128}$")]
    pub unique_key: Option<String>,
    /// How long `unique_key` is held from the submit that took it (1 to 2592000 s).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 2592000)]
    pub unique_for_secs: Option<u64>,
    /// 1 to 9, default 5: higher first. When several priorities wait, each gets a share of
    /// the fetches proportional to 4^priority, so lower ones are slowed, never starved
    /// (docs/flow-control.md).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 9, example = 7)]
    pub priority: Option<u8>,
    /// A concurrency key (a customer, a tenant): at most the queue's `per_key` limit of
    /// tasks with this key run at once, across all workers; the others wait without holding
    /// back other keys' tasks (docs/flow-control.md).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "customer-7", pattern = "^[A-Za-z0-9._:-]{1,128}$")]
    pub concurrency_key: Option<String>,
}

impl SubmitTask {
    /// A task of `kind` with every other field left to the server's defaults.
    ///
    /// ```
    /// use errand_wire::SubmitTask;
    /// let t = SubmitTask::new("sleep")
    ///     .payload(serde_json::json!({"duration_secs": 1}))
    ///     .queue("batch")
    ///     .id("order-42")
    ///     .delay_secs(10);
    /// assert_eq!(serde_json::to_value(&t).unwrap()["queue"], "batch");
    /// ```
    pub fn new(kind: impl Into<String>) -> Self {
        Self {
            kind: kind.into(),
            ..Self::default()
        }
    }
    /// Sets [`payload`](Self::payload): the kind's input.
    pub fn payload(mut self, p: Value) -> Self {
        self.payload = Some(p);
        self
    }
    /// Sets [`queue`](Self::queue): which workers may take it.
    pub fn queue(mut self, q: impl Into<String>) -> Self {
        self.queue = Some(q.into());
        self
    }
    /// Sets [`id`](Self::id), which makes the submit idempotent: a repeat (a retry after a
    /// timeout, say) returns the task the first one created.
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }
    /// Sets [`max_attempts`](Self::max_attempts) (1 to 100): how often a failing task is
    /// tried before it ends `failed`.
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = Some(n);
        self
    }
    /// Sets [`timeout_secs`](Self::timeout_secs): each attempt's time limit in seconds.
    pub fn timeout_secs(mut self, s: u64) -> Self {
        self.timeout_secs = Some(s);
        self
    }
    /// Sets [`delay_secs`](Self::delay_secs): start no earlier than `s` seconds from now.
    /// Do not combine with [`run_at`](Self::run_at) (the server refuses both, 422).
    pub fn delay_secs(mut self, s: u64) -> Self {
        self.delay_secs = Some(s);
        self
    }
    /// Sets [`run_at`](Self::run_at): start no earlier than `at`. Do not combine with
    /// [`delay_secs`](Self::delay_secs).
    pub fn run_at(mut self, at: DateTime<Utc>) -> Self {
        self.run_at = Some(at);
        self
    }
    /// Sets [`result_ttl_secs`](Self::result_ttl_secs): how many seconds the finished
    /// record (and its result) can still be read.
    pub fn result_ttl_secs(mut self, s: u64) -> Self {
        self.result_ttl_secs = Some(s);
        self
    }
    /// POST a signed webhook to `url` when the task ends with one of `events` (all three
    /// endings when empty).
    ///
    /// ```
    /// use errand_wire::{SubmitTask, WebhookEvent};
    /// let t = SubmitTask::new("noop").callback("https://hooks.example.com/errand", &[WebhookEvent::Failed]);
    /// assert_eq!(serde_json::to_value(&t).unwrap()["callback"]["events"], serde_json::json!(["failed"]));
    /// ```
    pub fn callback(mut self, url: impl Into<String>, events: &[WebhookEvent]) -> Self {
        let events = if events.is_empty() {
            all_events()
        } else {
            events.to_vec()
        };
        self.callback = Some(Callback {
            url: url.into(),
            events,
        });
        self
    }
    /// Sets [`unique_key`](Self::unique_key) and its window: at most one task of `key` in
    /// this queue for `secs` seconds; repeats inside the window return the first.
    ///
    /// ```
    /// use errand_wire::SubmitTask;
    /// let t = SubmitTask::new("refresh").unique_for("customer-7", 300);
    /// assert_eq!(serde_json::to_value(&t).unwrap()["unique_for_secs"], 300);
    /// ```
    pub fn unique_for(mut self, key: impl Into<String>, secs: u64) -> Self {
        self.unique_key = Some(key.into());
        self.unique_for_secs = Some(secs);
        self
    }
    /// Sets [`priority`](Self::priority).
    pub fn priority(mut self, p: u8) -> Self {
        self.priority = Some(p);
        self
    }
    /// Sets [`concurrency_key`](Self::concurrency_key).
    pub fn concurrency_key(mut self, k: impl Into<String>) -> Self {
        self.concurrency_key = Some(k.into());
        self
    }
}

/// One page of tasks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TaskPage {
    pub tasks: Vec<TaskRecord>,
    /// Pass as `cursor` for the next page; null when there is none. A page may hold fewer
    /// than `limit` tasks (each call examines a bounded number of entries) and still have one.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// Tasks to submit together.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"tasks": [{"kind": "noop", "payload": {"i": 1}}, {"kind": "sleep", "payload": {"duration_secs": 1}, "id": "job-2"}]}))]
pub struct SubmitBatch {
    /// 1 to `api.max_batch` tasks (default 1000), each as for `POST /v1/tasks`.
    pub tasks: Vec<SubmitTask>,
}

/// What became of one task of a batch, in request order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BatchItem {
    pub id: TaskId,
    pub state: TaskState,
    /// False when a task with this id already existed (nothing was enqueued for it).
    pub created: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BatchResult {
    pub tasks: Vec<BatchItem>,
    pub created: usize,
    pub existing: usize,
}
