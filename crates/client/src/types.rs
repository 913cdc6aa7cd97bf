//! Request bodies and response envelopes. The server declares these in errand-api, which a
//! client should not link (it brings actix-web); field names and meanings are the same, and
//! the end-to-end tests decode the real server's answers with them.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use errand_core::{
    schedule::Schedule,
    store::WorkerInfo,
    task::{Callback, TaskId, TaskRecord, TaskState, WebhookEvent},
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A task to submit (`POST /v1/tasks`). Unset fields take the server's defaults.
///
/// ```
/// use errand_client::SubmitTask;
/// let t = SubmitTask::new("sleep")
///     .payload(serde_json::json!({"duration_secs": 1}))
///     .queue("batch")
///     .id("order-42")
///     .delay_secs(10);
/// assert_eq!(serde_json::to_value(&t).unwrap()["queue"], "batch");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SubmitTask {
    /// A kind from [`Client::kinds`](crate::Client::kinds) (an alias is accepted and stored
    /// as the canonical name); an unknown one is refused with 422 naming `kind`.
    pub kind: String,
    /// The kind's input, checked against its payload schema at submit (422 naming e.g.
    /// `payload.duration_secs`); `None` sends none, which the server takes as `{}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload: Option<Value>,
    /// Queue name (1 to 64 of `A-Z a-z 0-9 _ . -`); `None` means `default`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    /// Client-chosen id (1 to 128 of `A-Z a-z 0-9 . _ : -`); submitting it again returns
    /// the existing task and enqueues nothing. `None`: the server makes one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Attempts before the task ends `failed` (1 to 100); `None`: the server's
    /// `tasks.default_max_attempts` (3 by default).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    /// Time limit of each attempt, in seconds (1 to 604800); `None`: no limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_secs: Option<u64>,
    /// Run no earlier than this many seconds from now (at most a year); not together with
    /// `run_at`. `None` (and no `run_at`): queued at once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delay_secs: Option<u64>,
    /// Run no earlier than this instant (at most a year ahead; a past one means now); not
    /// together with `delay_secs`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_at: Option<DateTime<Utc>>,
    /// How long the record stays readable once the task is terminal, in seconds (1 to
    /// 2592000); `None`: the server's `tasks.default_result_ttl_secs` (a day by default).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result_ttl_secs: Option<u64>,
    /// A signed webhook when the task ends (docs/webhooks.md); `None`: no webhook. The URL
    /// must pass the server's `webhooks.destinations` (422 naming `callback.url`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub callback: Option<Callback>,
    /// Unique for a while (with [`unique_for_secs`](Self::unique_for_secs); 1 to 128 of
    /// `A-Z a-z 0-9 . _ : -`): while the task that took this key in its queue lives and the
    /// window lasts, a submit with the same key returns that task and creates nothing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unique_key: Option<String>,
    /// How long [`unique_key`](Self::unique_key) is held, in seconds (1 to 2592000).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unique_for_secs: Option<u64>,
    /// 1 to 9, higher first; `None`: 5. Lower priorities are slowed, never starved
    /// (docs/flow-control.md).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<u8>,
    /// Counted under the queue's `per_key` limit of running tasks (1 to 128 of
    /// `A-Z a-z 0-9 . _ : -`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub concurrency_key: Option<String>,
}

impl SubmitTask {
    /// Sets [`unique_key`](Self::unique_key) and its window: at most one task of `key` in
    /// this queue for `secs` seconds; repeats inside the window return the first.
    ///
    /// ```
    /// use errand_client::SubmitTask;
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
    /// A task of `kind` with every other field left to the server's defaults.
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
    /// use errand_client::{SubmitTask, WebhookEvent};
    /// let t = SubmitTask::new("noop").callback("https://hooks.example.com/errand", &[WebhookEvent::Failed]);
    /// assert_eq!(serde_json::to_value(&t).unwrap()["callback"]["events"], serde_json::json!(["failed"]));
    /// ```
    pub fn callback(mut self, url: impl Into<String>, events: &[WebhookEvent]) -> Self {
        let events = if events.is_empty() {
            WebhookEvent::ALL.to_vec()
        } else {
            events.to_vec()
        };
        self.callback = Some(Callback {
            url: url.into(),
            events,
        });
        self
    }
}

/// What became of one task of a batch, in request order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchItem {
    /// The task's id: the one submitted, or the one the server made.
    pub id: TaskId,
    /// Its state right after the submit (`queued`, `scheduled`, or the existing task's).
    pub state: TaskState,
    /// False when a task with this id already existed (nothing was enqueued for it).
    pub created: bool,
}

/// The answer to [`Client::submit_batch`](crate::Client::submit_batch).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchResult {
    /// One item per submitted task, in request order.
    pub tasks: Vec<BatchItem>,
    /// How many tasks were new (enqueued by this request).
    pub created: usize,
    /// How many had an `id` that already existed (nothing enqueued for them).
    pub existing: usize,
}

/// One page of `GET /v1/tasks`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskPage {
    /// The page's tasks, newest first.
    pub tasks: Vec<TaskRecord>,
    /// The cursor for the next page ([`ListTasks::cursor`]); `None` on the last page. A page may be short (even empty) and still have a next one.
    pub next_cursor: Option<String>,
}

/// Filters and paging for listing tasks.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListTasks {
    /// Only tasks in this state (then ordered by when they entered it); `None`: any state.
    pub state: Option<TaskState>,
    /// Only tasks of this queue; `None`: every queue.
    pub queue: Option<String>,
    /// Only tasks of this kind (an alias stands for its kind); `None`: every kind.
    pub kind: Option<String>,
    /// Page size, 1 to 500 (server default 50).
    pub limit: Option<u32>,
    /// Where to start: the previous page's [`TaskPage::next_cursor`]; `None`: the first
    /// page.
    pub cursor: Option<String>,
}

impl ListTasks {
    pub(crate) fn query(&self) -> Vec<(&'static str, String)> {
        let mut q = Vec::new();
        if let Some(s) = self.state {
            q.push(("state", s.as_str().to_owned()));
        }
        if let Some(v) = &self.queue {
            q.push(("queue", v.clone()));
        }
        if let Some(v) = &self.kind {
            q.push(("kind", v.clone()));
        }
        if let Some(v) = self.limit {
            q.push(("limit", v.to_string()));
        }
        if let Some(v) = &self.cursor {
            q.push(("cursor", v.clone()));
        }
        q
    }
}

/// A queue with its tasks counted by state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueInfo {
    /// The queue's name.
    pub name: String,
    /// Live tasks per state name (`queued`, `running`, …); terminal ones count until
    /// their record expires.
    pub counts: BTreeMap<String, u64>,
    /// How long the longest-waiting queued task has waited, in milliseconds; `None` if
    /// none waits.
    pub oldest_queued_age_ms: Option<u64>,
    /// Paused: workers take none of its tasks until it is resumed (absent from older
    /// servers, read as false).
    #[serde(default)]
    pub paused: bool,
}

/// `count` tasks per `period_ms` across every worker, `burst` at once after an idle spell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rate {
    /// Tasks per period (1 to 1000000).
    pub count: u32,
    /// The period in ms (1 to a day).
    pub period_ms: u64,
    /// Most at once (1 to 1000000).
    pub burst: u32,
}

/// A queue's limits ([`Client::set_limits`](crate::Client::set_limits) replaces them all).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// The whole queue's rate; `None`: none.
    pub rate: Option<Rate>,
    /// Per kind, on top of the queue's.
    #[serde(default)]
    pub kinds: BTreeMap<String, Rate>,
    /// Most running tasks per concurrency key; `None`: no limit.
    pub per_key: Option<u32>,
}

/// A concurrency key and how many of its tasks wait for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyWaiting {
    /// The key.
    pub key: String,
    /// Its tasks waiting for room.
    pub waiting: u64,
}

/// What a queue's limits hold back now (tasks still `queued`, no attempt used).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Held {
    /// Waiting for their kind's next token.
    pub throttled: u64,
    /// Waiting for a running task of their key to end.
    pub waiting_for_key: u64,
    /// The keys with the most waiting tasks (at most 20).
    pub keys: Vec<KeyWaiting>,
}

/// A queue's limits and what they hold back (`GET /v1/queues/{queue}/limits`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueLimits {
    /// The queue.
    pub queue: String,
    /// Its limits.
    pub limits: Limits,
    /// What they hold back now.
    pub held: Held,
}

/// A bulk action to start ([`Client::start_bulk`](crate::Client::start_bulk)).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartBulk {
    /// `retry`, `cancel` or `delete`.
    pub action: String,
    /// The state of the tasks to act on; `None`: the action's default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<TaskState>,
    /// Only this kind.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Only tasks whose last error has this kind.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_kind: Option<String>,
}

/// A bulk action and how far it got.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BulkJob {
    /// Its id.
    pub id: String,
    /// The queue it works on.
    pub queue: String,
    /// `retry`, `cancel` or `delete`.
    pub action: String,
    /// The state it acts on.
    pub state: TaskState,
    /// Only this kind; `None`: every kind.
    pub kind: Option<String>,
    /// Only this error kind; `None`: any.
    pub error_kind: Option<String>,
    /// `running`, `done`, `interrupted` or `failed`.
    pub status: String,
    /// Tasks in the state when it started.
    pub total: u64,
    /// Records looked at.
    pub examined: u64,
    /// Of those, matches.
    pub matched: u64,
    /// Matches acted on.
    pub done: u64,
    /// Matches whose state changed before their turn.
    pub skipped: u64,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it ended; `None` while running.
    pub finished_at: Option<DateTime<Utc>>,
    /// Why it failed.
    pub error: Option<String>,
}

/// A queue's pause state after a pause or resume.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueuePause {
    /// The queue's name.
    pub name: String,
    /// True after a pause, false after a resume.
    pub paused: bool,
    /// When it was paused; `None` when it is not.
    pub paused_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct QueueList {
    pub queues: Vec<QueueInfo>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct WorkerList {
    pub workers: Vec<WorkerInfo>,
}

/// A task kind from the kind registry (`GET /v1/kinds`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KindInfo {
    /// The canonical name, the one records carry.
    pub name: String,
    /// Other names a submit accepts for it; empty when absent.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// One line saying what the kind does.
    pub summary: String,
    /// Whether running it twice has the effect of running it once. Delivery is at least
    /// once, so a non-idempotent kind may run again after a worker dies mid-task.
    pub idempotent: bool,
    /// JSON Schema of the payload, with this server's limits as its bounds.
    pub payload_schema: Value,
    /// JSON Schema of a successful run's result (the record's `result`); null for a kind
    /// that declares no result shape.
    #[serde(default)]
    pub result_schema: Value,
    /// A payload the kind accepts, to start from; null when absent.
    #[serde(default)]
    pub example: Value,
    /// Digest of the registered definition that validates submits now.
    #[serde(default)]
    pub digest: String,
    /// The worker process (or `errand-api`, for a built-in kind seeded before any worker
    /// ran) that registered that definition.
    #[serde(default)]
    pub registered_by: String,
    /// Live worker processes that run the kind; empty: its tasks are accepted and wait.
    #[serde(default)]
    pub workers: Vec<String>,
    /// The queues those workers serve.
    #[serde(default)]
    pub queues: Vec<String>,
    /// Whether live workers registered different definitions of it (a rolling deploy).
    #[serde(default)]
    pub schemas_differ: bool,
}

/// A schedule to create (`POST /v1/schedules`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CreateSchedule {
    /// Client-chosen id (1 to 100 of `A-Z a-z 0-9 . _ -`); `None`: the server makes one.
    /// Creating an existing id again with the same definition returns it unchanged; with a
    /// different one it is refused (409).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// 5 fields (minute first), 6 (seconds first) or `@hourly` and the like.
    pub cron: String,
    /// IANA time zone the expression is read in, e.g. `Europe/Paris`; `None`: UTC.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// The kind each tick submits, as for [`SubmitTask::kind`].
    pub kind: String,
    /// The kind's input, validated now and submitted unchanged at every tick; `None`: `{}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload: Option<Value>,
    /// The queue the tasks go to; `None`: `default`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    /// `Some(false)` creates it disabled (it fires nothing until enabled); `None`: enabled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// What to do with ticks missed while no worker ran: `run_once` (default: one run for
    /// all of them) or `skip` (drop them).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub misfire: Option<String>,
    /// As [`SubmitTask::max_attempts`], for each run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    /// As [`SubmitTask::timeout_secs`], for each run (seconds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_secs: Option<u64>,
    /// As [`SubmitTask::result_ttl_secs`], for each run's record (seconds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result_ttl_secs: Option<u64>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct SchedulePage {
    pub schedules: Vec<Schedule>,
    pub next_cursor: Option<String>,
}

/// What a failed, cancelled or expired dependency does to the step after it
/// (docs/workflows.md): there is no default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnFailure {
    /// The step fails without running (`dependency_failed`).
    Fail,
    /// The step runs anyway, with the dependency's error among its inputs.
    Run,
}

/// One dependency of a step and its failure policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dependency {
    /// The step it runs after.
    pub step: String,
    /// What that step's failure does to this one.
    pub on_failure: OnFailure,
}

/// One step of a workflow to submit: a task (the fields of [`SubmitTask`] but its id) and
/// the steps it runs after.
///
/// ```
/// use errand_client::{OnFailure, SubmitWorkflow, WorkflowStep};
/// let w = SubmitWorkflow::new()
///     .id("nightly")
///     .step(WorkflowStep::new("fetch", "noop"))
///     .step(WorkflowStep::new("render", "noop").after("fetch", OnFailure::Fail));
/// assert_eq!(serde_json::to_value(&w).unwrap()["steps"][1]["after"][0]["step"], "fetch");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct WorkflowStep {
    /// Unique in the workflow: `[A-Za-z0-9_-]`, 1 to 64.
    pub name: String,
    /// A kind from [`Client::kinds`](crate::Client::kinds).
    pub kind: String,
    /// The kind's input (its dependencies' results come beside it as inputs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload: Option<Value>,
    /// Any queue; the server's default when `None`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    /// Attempts before the step's task is `failed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    /// Per-attempt time limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_secs: Option<u64>,
    /// 1 to 9, higher first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<u8>,
    /// The steps it runs after, each with its failure policy.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub after: Vec<Dependency>,
    /// A map step: its result `{"spawn": [...]}` names tasks to spawn, and the steps after
    /// it get their results as a list.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub map: bool,
}

impl WorkflowStep {
    /// Step `name` running a task of `kind`.
    pub fn new(name: impl Into<String>, kind: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            kind: kind.into(),
            ..Self::default()
        }
    }
    /// Its payload.
    pub fn payload(mut self, p: Value) -> Self {
        self.payload = Some(p);
        self
    }
    /// Its queue.
    pub fn queue(mut self, q: impl Into<String>) -> Self {
        self.queue = Some(q.into());
        self
    }
    /// Its attempts.
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = Some(n);
        self
    }
    /// Runs after `step`; `on_failure` says what that step's failure does to this one.
    pub fn after(mut self, step: impl Into<String>, on_failure: OnFailure) -> Self {
        self.after.push(Dependency {
            step: step.into(),
            on_failure,
        });
        self
    }
    /// Makes it a map step.
    pub fn map(mut self) -> Self {
        self.map = true;
        self
    }
}

/// A workflow to submit (`POST /v1/workflows`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SubmitWorkflow {
    /// Client-chosen id (`[A-Za-z0-9_:-]`, 1 to 48): submitting it again answers the
    /// existing workflow and writes nothing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Its steps.
    pub steps: Vec<WorkflowStep>,
    /// How long it stays readable once ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result_ttl_secs: Option<u64>,
}

impl SubmitWorkflow {
    /// An empty workflow: add steps with [`SubmitWorkflow::step`].
    pub fn new() -> Self {
        Self::default()
    }
    /// Its id.
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }
    /// One more step.
    pub fn step(mut self, s: WorkflowStep) -> Self {
        self.steps.push(s);
        self
    }
}

/// One step as it stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepInfo {
    /// Its name (a spawned step's: `<map step>.<i>`).
    pub name: String,
    /// Its task's id.
    pub task_id: String,
    /// `waiting`, `creating`, `started`, `mapping`, `succeeded`, `failed` or `cancelled`.
    pub state: String,
    /// Its task's state while `started`.
    pub task_state: Option<TaskState>,
    /// The kind it runs.
    pub kind: String,
    /// Its queue.
    pub queue: String,
    /// The steps it runs after.
    pub after: Vec<Dependency>,
    /// A map step.
    pub map: bool,
    /// The map step that spawned it.
    pub parent: Option<String>,
    /// Its result once succeeded.
    pub result: Option<Value>,
    /// Its error once failed or cancelled.
    pub error: Option<Value>,
    /// It ended without running.
    pub skipped: bool,
    /// A map step's spawned steps.
    pub spawned: usize,
}

impl StepInfo {
    /// Whether it has ended.
    pub fn is_ended(&self) -> bool {
        matches!(self.state.as_str(), "succeeded" | "failed" | "cancelled")
    }
}

/// A workflow as it stands (`GET /v1/workflows/{id}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Workflow {
    /// Its id.
    pub id: String,
    /// `running`, `succeeded`, `failed` or `cancelled`.
    pub state: String,
    /// When it was submitted.
    pub created_at: DateTime<Utc>,
    /// When its last step ended.
    pub ended_at: Option<DateTime<Utc>>,
    /// Its cancel was asked for.
    pub cancel_requested: bool,
    /// Its steps, each map step followed by what it spawned.
    pub steps: Vec<StepInfo>,
}

impl Workflow {
    /// Whether it has ended.
    pub fn is_ended(&self) -> bool {
        self.state != "running"
    }
}

/// A workflow in a listing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkflowSummary {
    /// Its id.
    pub id: String,
    /// Its state.
    pub state: String,
    /// When it was submitted.
    pub created_at: DateTime<Utc>,
    /// When it ended.
    pub ended_at: Option<DateTime<Utc>>,
    /// Steps, spawned ones included.
    pub steps: usize,
    /// Steps that have ended.
    pub ended_steps: usize,
}

/// One page of workflows, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkflowPage {
    /// The page.
    pub workflows: Vec<WorkflowSummary>,
    /// Pass as `cursor` for the next page.
    pub next_cursor: Option<String>,
}
