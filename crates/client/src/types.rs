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
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    /// Client-chosen id; submitting it again returns the existing task.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_secs: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delay_secs: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result_ttl_secs: Option<u64>,
    /// A signed webhook when the task ends (docs/webhooks.md).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub callback: Option<Callback>,
}

impl SubmitTask {
    pub fn new(kind: impl Into<String>) -> Self {
        Self {
            kind: kind.into(),
            ..Self::default()
        }
    }
    pub fn payload(mut self, p: Value) -> Self {
        self.payload = Some(p);
        self
    }
    pub fn queue(mut self, q: impl Into<String>) -> Self {
        self.queue = Some(q.into());
        self
    }
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = Some(n);
        self
    }
    pub fn timeout_secs(mut self, s: u64) -> Self {
        self.timeout_secs = Some(s);
        self
    }
    pub fn delay_secs(mut self, s: u64) -> Self {
        self.delay_secs = Some(s);
        self
    }
    pub fn run_at(mut self, at: DateTime<Utc>) -> Self {
        self.run_at = Some(at);
        self
    }
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
    pub id: TaskId,
    pub state: TaskState,
    /// False when a task with this id already existed (nothing was enqueued for it).
    pub created: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchResult {
    pub tasks: Vec<BatchItem>,
    pub created: usize,
    pub existing: usize,
}

/// One page of `GET /v1/tasks`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskPage {
    pub tasks: Vec<TaskRecord>,
    /// Null on the last page. A page may be short (even empty) and still have a next one.
    pub next_cursor: Option<String>,
}

/// Filters and paging for listing tasks.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListTasks {
    pub state: Option<TaskState>,
    pub queue: Option<String>,
    pub kind: Option<String>,
    /// Page size, 1 to 500 (server default 50).
    pub limit: Option<u32>,
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
    pub name: String,
    pub counts: BTreeMap<String, u64>,
    /// How long the longest-waiting queued task has waited; null if none waits.
    pub oldest_queued_age_ms: Option<u64>,
    /// Paused: workers take none of its tasks until it is resumed.
    #[serde(default)]
    pub paused: bool,
}

/// A queue's pause state after a pause or resume.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueuePause {
    pub name: String,
    pub paused: bool,
    /// When it was paused; null when it is not.
    pub paused_at: Option<chrono::DateTime<chrono::Utc>>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct QueueList {
    pub queues: Vec<QueueInfo>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct WorkerList {
    pub workers: Vec<WorkerInfo>,
}

/// A task kind from the catalog (`GET /v1/kinds`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KindInfo {
    pub name: String,
    #[serde(default)]
    pub aliases: Vec<String>,
    pub summary: String,
    pub idempotent: bool,
    pub payload_schema: Value,
    /// Null for a kind that declares no result shape.
    #[serde(default)]
    pub result_schema: Value,
    #[serde(default)]
    pub example: Value,
}

/// A schedule to create (`POST /v1/schedules`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CreateSchedule {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// 5 fields (minute first), 6 (seconds first) or `@hourly` and the like.
    pub cron: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// `run_once` (default) or `skip`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub misfire: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_secs: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result_ttl_secs: Option<u64>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct SchedulePage {
    pub schedules: Vec<Schedule>,
    pub next_cursor: Option<String>,
}
