//! Schedules on the wire: the stored schedule as served, and a schedule to create.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// A schedule's id: client-chosen or server-made (UUIDv7). Shorter than a task id, and
/// without `:`, so the id of every task it fires, `sched:<id>:<tick ms>`, is a valid task id
/// that reads back unambiguously.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(transparent)]
#[schema(value_type = String, example = "nightly-report", pattern = "^[A-Za-z0-9._-]{1,100}$")]
pub struct ScheduleId(String);

impl ScheduleId {
    /// The id as the server gave it.
    pub fn new(id: impl Into<String>) -> Self {
        Self(id.into())
    }
    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ScheduleId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a worker does with a tick it finds late (no worker ran while it was due).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Misfire {
    /// Run once for all the ticks missed, then continue from now (Celery Beat's behaviour).
    RunOnce,
    /// Drop a tick more than `schedules.misfire_grace_ms` late; continue from now.
    Skip,
}

impl Misfire {
    /// The name the API uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RunOnce => "run_once",
            Self::Skip => "skip",
        }
    }
}

/// A schedule as errand keeps it in Redis and serves it over the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Schedule {
    pub id: ScheduleId,
    /// Cron expression: 5 fields (minute first) or 6 (second first).
    #[schema(example = "0 */15 * * * *")]
    pub cron: String,
    /// IANA time zone the expression is read in.
    #[schema(example = "Europe/Paris")]
    pub timezone: String,
    pub misfire: Misfire,
    /// A disabled schedule keeps its definition and fires nothing.
    pub enabled: bool,
    #[schema(example = "sleep")]
    pub kind: String,
    /// The kind's input, as validated when the schema was created (any JSON for `noop`).
    #[schema(value_type = Value, example = json!({"duration_secs": 1}))]
    pub payload: Value,
    #[schema(example = "default")]
    pub queue: String,
    pub max_attempts: u32,
    /// Per-attempt time limit of each run; null for none.
    #[schema(required = true)]
    pub timeout_secs: Option<u64>,
    pub result_ttl_secs: u64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The tick it waits for; null while disabled.
    #[schema(required = true)]
    pub next_run_at: Option<DateTime<Utc>>,
    /// When it last fired a task; null before the first tick.
    #[schema(required = true)]
    pub last_run_at: Option<DateTime<Utc>>,
    /// The task it fired last: `sched:<schedule id>:<tick ms>`; null before the first tick.
    #[schema(required = true, value_type = Option<String>, example = "sched:nightly-report:1767225600000")]
    pub last_task_id: Option<String>,
    /// Ticks fired since it was created.
    pub run_count: u64,
}

// The numbers and patterns in `#[schema]` are literals (utoipa takes no consts); a test in
// the api's `openapi` holds them to `errand_core::task::bounds`, `QueueName` and the id types.
/// A schedule to create.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"id": "heartbeat", "cron": "*/10 * * * * *", "kind": "noop", "payload": {"ping": true}}))]
pub struct CreateSchedule {
    /// Client-chosen id (`[A-Za-z0-9._-]`, at most 100); server-made when absent. Creating
    /// the same id again with the same definition answers 200 with the stored schedule;
    /// with a different one, 409.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "heartbeat", pattern = "^[A-Za-z0-9._-]{1,100}$")]
    pub id: Option<String>,
    /// Cron expression: 5 fields (`minute hour day-of-month month day-of-week`), or 6 with
    /// a seconds field first; `@hourly`, `@daily`, `@weekly`, `@monthly`, `@yearly` too.
    #[schema(example = "*/10 * * * * *")]
    pub cron: String,
    /// IANA time zone the expression is read in (default `UTC`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "Europe/Paris")]
    pub timezone: Option<String>,
    /// A kind from `GET /v1/kinds` (aliases accepted).
    #[schema(example = "noop")]
    pub kind: String,
    /// The kind's input, validated now, submitted unchanged at every tick.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Object, example = json!({"ping": true}))]
    pub payload: Option<Value>,
    /// Queue the tasks go to (`[A-Za-z0-9_.-]`, at most 64); default `default`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "default", pattern = "^[A-Za-z0-9_.-]{1,64}$")]
    pub queue: Option<String>,
    /// Default true; a disabled schedule fires nothing until enabled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// What a worker does with ticks missed while no worker ran: `run_once` (default: one
    /// run for all of them, then on from now) or `skip` (drop them).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Misfire>)]
    pub misfire: Option<String>,
    /// As for a task: attempts per run (1 to 100).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 100)]
    pub max_attempts: Option<u32>,
    /// As for a task: per-attempt time limit (1 to 604800 s).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 604800)]
    pub timeout_secs: Option<u64>,
    /// As for a task: how long each run's record stays readable once terminal.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 2592000)]
    pub result_ttl_secs: Option<u64>,
}

/// One page of schedules, in id order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SchedulePage {
    pub schedules: Vec<Schedule>,
    /// Pass as `cursor` for the next page; null on the last.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}
