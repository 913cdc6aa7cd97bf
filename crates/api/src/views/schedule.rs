//! Schedules as the API serves them.

use chrono::{DateTime, Utc};
use errand_core::schedule::{Misfire, Schedule, ScheduleId};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

/// A schedule's id: client-chosen or server-made (UUIDv7). Shorter than a task id, and
/// without `:`, so the id of every task it fires, `sched:<id>:<tick ms>`, is a valid task id
/// that reads back unambiguously.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(transparent)]
#[schema(as = ScheduleId, value_type = String, example = "nightly-report", pattern = "^[A-Za-z0-9._-]{1,100}$")]
pub(crate) struct ScheduleIdView(String);

impl From<&ScheduleId> for ScheduleIdView {
    fn from(id: &ScheduleId) -> Self {
        Self(id.as_str().to_owned())
    }
}

/// What a worker does with a tick it finds late (no worker ran while it was due).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = Misfire)]
pub(crate) enum MisfireView {
    /// Run once for all the ticks missed, then continue from now (Celery Beat's behaviour).
    RunOnce,
    /// Drop a tick more than `schedules.misfire_grace_ms` late; continue from now.
    Skip,
}

impl From<Misfire> for MisfireView {
    fn from(m: Misfire) -> Self {
        match m {
            Misfire::RunOnce => Self::RunOnce,
            Misfire::Skip => Self::Skip,
        }
    }
}

/// A schedule as errand keeps it in Redis and serves it over the API.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = Schedule)]
pub(crate) struct ScheduleView {
    pub id: ScheduleIdView,
    /// Cron expression: 5 fields (minute first) or 6 (second first).
    #[schema(example = "0 */15 * * * *")]
    pub cron: String,
    /// IANA time zone the expression is read in.
    #[schema(example = "Europe/Paris")]
    pub timezone: String,
    pub misfire: MisfireView,
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

impl From<&Schedule> for ScheduleView {
    fn from(s: &Schedule) -> Self {
        Self {
            id: (&s.id).into(),
            cron: s.cron.clone(),
            timezone: s.timezone.clone(),
            misfire: s.misfire.into(),
            enabled: s.enabled,
            kind: s.kind.clone(),
            payload: s.payload.clone(),
            queue: s.queue.clone(),
            max_attempts: s.max_attempts,
            timeout_secs: s.timeout_secs,
            result_ttl_secs: s.result_ttl_secs,
            created_at: s.created_at,
            updated_at: s.updated_at,
            next_run_at: s.next_run_at,
            last_run_at: s.last_run_at,
            last_task_id: s.last_task_id.as_ref().map(|t| t.as_str().to_owned()),
            run_count: s.run_count,
        }
    }
}
