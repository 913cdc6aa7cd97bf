//! Workflows on the wire: a DAG of steps to submit, and a workflow as it stands.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::TaskState;

/// What a failed, cancelled or expired dependency does to the step after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = OnFailureView)]
pub enum OnFailure {
    /// The step fails without running (`dependency_failed`), and so does what must not run
    /// without it.
    Fail,
    /// The step runs anyway, with the dependency's error among its inputs.
    Run,
}

/// A step it runs after: a name (the step's `on_failure` applies), or a name with its own
/// policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
#[schema(as = AfterRequest)]
pub enum After {
    // The step's name (the step's `on_failure` applies).
    Name(String),
    // The step's name and what its failure does to this one. (Plain comments: a doc
    // comment would sit beside the variant's $ref in the document.)
    With(Dependency),
}

/// One dependency and its failure policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = DependencyView)]
pub struct Dependency {
    /// The step it runs after.
    pub step: String,
    pub on_failure: OnFailure,
}

/// One step: a task (the same fields as `POST /v1/tasks`, but no id: a step's task id is
/// `<workflow>.<step>`) and the steps it runs after.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = StepRequest, example = json!({"name": "render", "kind": "noop", "after": ["fetch"], "on_failure": "fail"}))]
pub struct WorkflowStep {
    /// Unique in the workflow: `[A-Za-z0-9_-]`, 1 to 64.
    #[schema(pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub name: String,
    /// A kind from `GET /v1/kinds`.
    pub kind: String,
    /// The kind's input, validated against its schema now. The step's inputs (its
    /// dependencies' results) come beside it, not in it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Object)]
    pub payload: Option<Value>,
    /// Any queue (`[A-Za-z0-9_.-]`, at most 64); default `default`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^[A-Za-z0-9_.-]{1,64}$")]
    pub queue: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 100)]
    pub max_attempts: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 604800)]
    pub timeout_secs: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 2592000)]
    pub result_ttl_secs: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 9)]
    pub priority: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^[A-Za-z0-9._:-]{1,128}$")]
    pub concurrency_key: Option<String>,
    /// The steps it runs after (none: it starts with the workflow).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub after: Vec<After>,
    /// What a dependency named without its own policy does when it does not succeed.
    /// Required when `after` names any that way: there is no default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_failure: Option<OnFailure>,
    /// A map step: its result is `{"spawn": [{"kind", "payload", "queue"?, "max_attempts"?,
    /// "timeout_secs"?}...]}`; each becomes a step, and the steps after this one get their
    /// results as a list (at most `workflows.max_fan_out`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub map: bool,
}

impl WorkflowStep {
    /// Step `name` running a task of `kind`.
    ///
    /// ```
    /// use errand_wire::{OnFailure, SubmitWorkflow, WorkflowStep};
    /// let w = SubmitWorkflow::new()
    ///     .id("nightly")
    ///     .step(WorkflowStep::new("fetch", "noop"))
    ///     .step(WorkflowStep::new("render", "noop").after("fetch", OnFailure::Fail));
    /// assert_eq!(serde_json::to_value(&w).unwrap()["steps"][1]["after"][0]["step"], "fetch");
    /// ```
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
        self.after.push(After::With(Dependency {
            step: step.into(),
            on_failure,
        }));
        self
    }
    /// Makes it a map step.
    pub fn map(mut self) -> Self {
        self.map = true;
        self
    }
}

/// A workflow to run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"id": "order-42", "steps": [
    {"name": "charge", "kind": "noop"},
    {"name": "ship", "kind": "noop", "after": ["charge"], "on_failure": "fail"}
]}))]
pub struct SubmitWorkflow {
    /// Client-chosen id (`[A-Za-z0-9_:-]`, 1 to 48): submitting it again answers the
    /// existing workflow (200) and writes nothing.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^[A-Za-z0-9_:-]{1,48}$")]
    pub id: Option<String>,
    /// 1 to `workflows.max_steps` steps.
    pub steps: Vec<WorkflowStep>,
    /// How long the workflow stays readable once ended (1 to 2592000 s).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 2592000)]
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

/// Where a workflow is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = WorkflowStateView)]
pub enum WorkflowState {
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl WorkflowState {
    /// The name the API uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }
}

impl std::fmt::Display for WorkflowState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a step is: `waiting` for dependencies, `creating` its task, `started` (its task
/// exists: see `task_state`), `mapping` (a map step's spawned steps run), or ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = StepStateView)]
pub enum StepState {
    Waiting,
    Creating,
    Started,
    Mapping,
    Succeeded,
    Failed,
    Cancelled,
}

impl StepState {
    /// The name the API uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Waiting => "waiting",
            Self::Creating => "creating",
            Self::Started => "started",
            Self::Mapping => "mapping",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }
    /// Succeeded, failed or cancelled.
    pub fn is_ended(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Cancelled)
    }
}

impl std::fmt::Display for StepState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One step as it stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(as = StepView)]
pub struct StepInfo {
    pub name: String,
    /// Its task (`GET /v1/tasks/{task_id}`), once `started`.
    pub task_id: String,
    pub state: StepState,
    /// Its task's state, while `started`.
    #[schema(required = true)]
    pub task_state: Option<TaskState>,
    pub kind: String,
    pub queue: String,
    pub after: Vec<Dependency>,
    pub map: bool,
    /// The map step that spawned it.
    #[schema(required = true)]
    pub parent: Option<String>,
    /// Its result once succeeded (a map step's: its spawned steps' results, in order).
    #[schema(required = true, value_type = Option<Object>)]
    pub result: Option<Value>,
    /// Its error once failed or cancelled (`dependency_failed`, `expired`, `invalid_spawn`,
    /// `spawned_failed`, or its task's).
    #[schema(required = true, value_type = Option<Object>)]
    pub error: Option<Value>,
    /// It ended without running (a dependency failed, or the workflow was cancelled).
    pub skipped: bool,
    /// A map step's spawned steps.
    pub spawned: usize,
}

impl StepInfo {
    /// Whether it has ended.
    pub fn is_ended(&self) -> bool {
        self.state.is_ended()
    }
}

/// A workflow as it stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(as = WorkflowView)]
pub struct Workflow {
    pub id: String,
    pub state: WorkflowState,
    pub created_at: DateTime<Utc>,
    /// When its last step ended; null while running.
    #[schema(required = true)]
    pub ended_at: Option<DateTime<Utc>>,
    pub cancel_requested: bool,
    /// The submitted steps in order, each map step followed by what it spawned.
    pub steps: Vec<StepInfo>,
}

impl Workflow {
    /// Whether it has ended.
    pub fn is_ended(&self) -> bool {
        self.state != WorkflowState::Running
    }
}

/// A workflow in a listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(as = WorkflowSummaryView)]
pub struct WorkflowSummary {
    pub id: String,
    pub state: WorkflowState,
    pub created_at: DateTime<Utc>,
    #[schema(required = true)]
    pub ended_at: Option<DateTime<Utc>>,
    /// Steps, spawned ones included.
    pub steps: usize,
    pub ended_steps: usize,
}

/// One page of workflows, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WorkflowPage {
    pub workflows: Vec<WorkflowSummary>,
    /// Pass as `cursor` for the next page; null when there is none.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}
