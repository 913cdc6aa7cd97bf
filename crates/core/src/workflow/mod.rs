//! Workflows as errand stores them: a definition of steps and their dependencies (a DAG of
//! tasks, checked whole before anything is written), and the state read back while it runs
//! (docs/workflows.md).
//!
//! # Layout
//! - [`spec`]: what a submit asks for ([`NewWorkflow`]), its ids and names, and the check
//!   that it is a DAG of known steps.
//! - [`record`]: a workflow as it stands ([`WorkflowRecord`]): its state, derived from its
//!   steps', and each step's.

mod record;
mod spec;

pub use record::{StepRecord, StepState, WorkflowRecord, WorkflowState, WorkflowSummary};
pub use spec::{
    Dependency, InvalidWorkflowId, MAX_STEP_NAME, NewWorkflow, OnFailure, SpecError, StepSpec,
    StepTask, WorkflowId, step_task_id,
};
