//! Workflows to the wire, and a failure policy to the store.

use errand_core::workflow::{
    OnFailure, StepRecord, StepState, WorkflowRecord, WorkflowState, WorkflowSummary,
};
use errand_wire as wire;
use serde_json::Value;

use super::{IntoStore, IntoWire};

impl IntoStore for wire::OnFailure {
    type Store = OnFailure;
    fn into_store(self) -> OnFailure {
        match self {
            wire::OnFailure::Fail => OnFailure::Fail,
            wire::OnFailure::Run => OnFailure::Run,
        }
    }
}

impl IntoWire for OnFailure {
    type Wire = wire::OnFailure;
    fn into_wire(self) -> wire::OnFailure {
        match self {
            OnFailure::Fail => wire::OnFailure::Fail,
            OnFailure::Run => wire::OnFailure::Run,
        }
    }
}

impl IntoWire for WorkflowState {
    type Wire = wire::WorkflowState;
    fn into_wire(self) -> wire::WorkflowState {
        match self {
            WorkflowState::Running => wire::WorkflowState::Running,
            WorkflowState::Succeeded => wire::WorkflowState::Succeeded,
            WorkflowState::Failed => wire::WorkflowState::Failed,
            WorkflowState::Cancelled => wire::WorkflowState::Cancelled,
        }
    }
}

impl IntoWire for StepState {
    type Wire = wire::StepState;
    fn into_wire(self) -> wire::StepState {
        match self {
            StepState::Waiting => wire::StepState::Waiting,
            StepState::Creating => wire::StepState::Creating,
            StepState::Started => wire::StepState::Started,
            StepState::Mapping => wire::StepState::Mapping,
            StepState::Succeeded => wire::StepState::Succeeded,
            StepState::Failed => wire::StepState::Failed,
            StepState::Cancelled => wire::StepState::Cancelled,
        }
    }
}

impl IntoWire for StepRecord {
    type Wire = wire::StepInfo;
    fn into_wire(self) -> wire::StepInfo {
        let s = self;
        let mut end = s.end.unwrap_or(Value::Null);
        wire::StepInfo {
            task_id: s.task_id,
            state: s.state.into_wire(),
            task_state: s.task_state.map(IntoWire::into_wire),
            kind: s.task.kind,
            queue: s.task.queue,
            after: s
                .after
                .into_iter()
                .map(|d| wire::Dependency {
                    step: d.step,
                    on_failure: d.on_failure.into_wire(),
                })
                .collect(),
            map: s.map,
            parent: s.parent,
            result: end.get_mut("result").map(Value::take),
            error: end.get_mut("error").map(Value::take),
            skipped: s.skipped,
            spawned: s.spawned,
            name: s.name,
        }
    }
}

impl IntoWire for WorkflowRecord {
    type Wire = wire::Workflow;
    fn into_wire(self) -> wire::Workflow {
        wire::Workflow {
            id: self.id,
            state: self.state.into_wire(),
            created_at: self.created_at,
            ended_at: self.ended_at,
            cancel_requested: self.cancel_requested,
            steps: self.steps.into_iter().map(IntoWire::into_wire).collect(),
        }
    }
}

impl IntoWire for WorkflowSummary {
    type Wire = wire::WorkflowSummary;
    fn into_wire(self) -> wire::WorkflowSummary {
        wire::WorkflowSummary {
            id: self.id,
            state: self.state.into_wire(),
            created_at: self.created_at,
            ended_at: self.ended_at,
            steps: self.steps,
            ended_steps: self.ended_steps,
        }
    }
}
