//! A workflow as it stands, read from its hash (`lua/workflow.lua` describes the fields).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;

use super::spec::{Dependency, OnFailure, StepTask, step_task_id};
use crate::task::{CorruptRecord, TaskState};

/// Where a workflow is: `running` until every step has ended, then derived from them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkflowState {
    /// Some step has not ended.
    Running,
    /// Every step succeeded.
    Succeeded,
    /// A step failed (or failed because a dependency did).
    Failed,
    /// None failed, and one was cancelled (the workflow's cancel cancels every step).
    Cancelled,
}

impl WorkflowState {
    /// The name stored and served.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkflowState::Running => "running",
            WorkflowState::Succeeded => "succeeded",
            WorkflowState::Failed => "failed",
            WorkflowState::Cancelled => "cancelled",
        }
    }

    /// Whether every step has ended.
    pub fn is_terminal(self) -> bool {
        self != WorkflowState::Running
    }

    /// From its stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "running" => WorkflowState::Running,
            "succeeded" => WorkflowState::Succeeded,
            "failed" => WorkflowState::Failed,
            "cancelled" => WorkflowState::Cancelled,
            _ => return None,
        })
    }
}

/// Where a step is (its task, once it has one, has its own state too).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepState {
    /// Some dependency has not ended.
    Waiting,
    /// Its dependencies ended; its task is being created.
    Creating,
    /// Its task exists and has not ended.
    Started,
    /// A map step whose spawned steps have not all ended.
    Mapping,
    /// Its task succeeded (a map step: so did every step it spawned).
    Succeeded,
    /// Its task failed, its dependency failed, or (a map step) a spawned step did not succeed.
    Failed,
    /// Its task was cancelled, or the workflow was before it started.
    Cancelled,
}

impl StepState {
    /// The name stored and served.
    pub fn as_str(self) -> &'static str {
        match self {
            StepState::Waiting => "waiting",
            StepState::Creating => "creating",
            StepState::Started => "started",
            StepState::Mapping => "mapping",
            StepState::Succeeded => "succeeded",
            StepState::Failed => "failed",
            StepState::Cancelled => "cancelled",
        }
    }

    /// Whether it has ended.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            StepState::Succeeded | StepState::Failed | StepState::Cancelled
        )
    }

    /// From its stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "waiting" => StepState::Waiting,
            "creating" => StepState::Creating,
            "started" => StepState::Started,
            "mapping" => StepState::Mapping,
            "succeeded" => StepState::Succeeded,
            "failed" => StepState::Failed,
            "cancelled" => StepState::Cancelled,
            _ => return None,
        })
    }
}

/// One step as it stands.
#[derive(Debug, Clone, PartialEq)]
pub struct StepRecord {
    /// Unique in the workflow (a spawned step's: `<map step>.<i>`).
    pub name: String,
    /// Its task's id (`<workflow>.<step>`), whether or not the task exists yet.
    pub task_id: String,
    /// Where it is.
    pub state: StepState,
    /// The task it runs.
    pub task: StepTask,
    /// The steps it runs after.
    pub after: Vec<Dependency>,
    /// A map step (its result spawns steps).
    pub map: bool,
    /// The map step that spawned it.
    pub parent: Option<String>,
    /// Its end, once ended: `{"id", "state", "result" | "error"}`, as its dependents get it.
    pub end: Option<Value>,
    /// A map step's spawned steps (0 before it spawned).
    pub spawned: usize,
    /// Ended without a task of its own (a dependency failed, or the workflow was cancelled).
    pub skipped: bool,
    /// The state of its task where the read looked it up (started steps).
    pub task_state: Option<TaskState>,
}

/// A workflow as it stands.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkflowRecord {
    /// The workflow's id.
    pub id: String,
    /// Derived from its steps'.
    pub state: WorkflowState,
    /// When it was submitted.
    pub created_at: DateTime<Utc>,
    /// When its last step ended; `None` while running.
    pub ended_at: Option<DateTime<Utc>>,
    /// Its cancel was asked for.
    pub cancel_requested: bool,
    /// The submitted steps in order, each map step followed by what it spawned.
    pub steps: Vec<StepRecord>,
}

/// A workflow in a listing.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkflowSummary {
    /// The workflow's id.
    pub id: String,
    /// Derived from its steps'.
    pub state: WorkflowState,
    /// When it was submitted.
    pub created_at: DateTime<Utc>,
    /// When its last step ended.
    pub ended_at: Option<DateTime<Utc>>,
    /// Steps, spawned ones included.
    pub steps: usize,
    /// Steps that have ended.
    pub ended_steps: usize,
}

#[derive(Deserialize, Default)]
struct Dag {
    #[serde(default)]
    after: Vec<(String, String)>,
    #[serde(default)]
    map: bool,
    #[serde(default)]
    parent: Option<String>,
}

fn bad(field: &'static str, reason: impl ToString) -> CorruptRecord {
    CorruptRecord {
        field,
        reason: reason.to_string(),
    }
}

pub(crate) fn ms_time(ms: &str) -> Option<DateTime<Utc>> {
    ms.parse::<i64>()
        .ok()
        .and_then(DateTime::<Utc>::from_timestamp_millis)
}

impl WorkflowSummary {
    /// From the hash fields `id state created_ms ended_ms n ended`.
    pub fn from_fields(f: &[Option<String>; 6]) -> Option<Self> {
        Some(Self {
            id: f[0].clone()?,
            state: WorkflowState::parse(f[1].as_deref()?)?,
            created_at: ms_time(f[2].as_deref()?)?,
            ended_at: f[3].as_deref().and_then(ms_time),
            steps: f[4].as_deref()?.parse().ok()?,
            ended_steps: f[5].as_deref().unwrap_or("0").parse().ok()?,
        })
    }
}

impl WorkflowRecord {
    /// Builds the record from the workflow's hash (HGETALL).
    pub fn from_hash(h: &HashMap<String, String>) -> Result<Self, CorruptRecord> {
        let get = |f: &'static str| h.get(f).ok_or_else(|| bad(f, "missing"));
        let id = get("id")?.clone();
        let state = WorkflowState::parse(get("state")?).ok_or_else(|| bad("state", "unknown"))?;
        let created_at = ms_time(get("created_ms")?).ok_or_else(|| bad("created_ms", "not ms"))?;
        let ended_at = h.get("ended_ms").and_then(|m| ms_time(m));
        let order: Vec<String> =
            serde_json::from_str(get("order")?).map_err(|e| bad("order", e))?;
        let mut steps = Vec::with_capacity(order.len());
        for name in order {
            let step = step(h, &id, &name)?;
            let spawned = step.spawned;
            steps.push(step);
            for i in 0..spawned {
                steps.push(self::step(h, &id, &format!("{name}.{i}"))?);
            }
        }
        Ok(Self {
            id,
            state,
            created_at,
            ended_at,
            cancel_requested: h.get("cancel").is_some_and(|c| c == "1"),
            steps,
        })
    }
}

fn step(h: &HashMap<String, String>, wid: &str, name: &str) -> Result<StepRecord, CorruptRecord> {
    let field = |p: &str| h.get(&format!("{p}:{name}"));
    let task: StepTask = serde_json::from_str(field("task").ok_or_else(|| bad("task", "missing"))?)
        .map_err(|e| bad("task", e))?;
    let dag: Dag = field("dag")
        .map(|d| serde_json::from_str(d).map_err(|e| bad("dag", e)))
        .transpose()?
        .unwrap_or_default();
    let state = field("st")
        .and_then(|s| StepState::parse(s))
        .ok_or_else(|| bad("st", format!("step {name}")))?;
    let after = dag
        .after
        .into_iter()
        .map(|(step, on)| Dependency {
            step,
            on_failure: if on == "run" {
                OnFailure::Run
            } else {
                OnFailure::Fail
            },
        })
        .collect();
    Ok(StepRecord {
        name: name.to_owned(),
        task_id: step_task_id(wid, name),
        state,
        task,
        after,
        map: dag.map,
        parent: dag.parent,
        end: field("out").and_then(|o| serde_json::from_str(o).ok()),
        spawned: field("kids").and_then(|k| k.parse().ok()).unwrap_or(0),
        skipped: field("nt").is_some_and(|v| v == "1"),
        task_state: None,
    })
}
