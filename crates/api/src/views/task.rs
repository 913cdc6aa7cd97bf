//! Tasks to the wire: a stored record and its parts as the API serves them, and a
//! callback as the store keeps it.

use errand_core::task::{
    Callback, Progress, TaskError, TaskId, TaskRecord, TaskState, WebhookEvent, WebhookState,
    WebhookStatus,
};
use errand_wire as wire;
use serde_json::Value;

use super::{IntoStore, IntoWire};

impl IntoWire for &TaskId {
    type Wire = wire::TaskId;
    fn into_wire(self) -> wire::TaskId {
        wire::TaskId::new(self.as_str())
    }
}

impl IntoWire for TaskState {
    type Wire = wire::TaskState;
    fn into_wire(self) -> wire::TaskState {
        match self {
            TaskState::Scheduled => wire::TaskState::Scheduled,
            TaskState::Queued => wire::TaskState::Queued,
            TaskState::Running => wire::TaskState::Running,
            TaskState::Retrying => wire::TaskState::Retrying,
            TaskState::Succeeded => wire::TaskState::Succeeded,
            TaskState::Failed => wire::TaskState::Failed,
            TaskState::Cancelled => wire::TaskState::Cancelled,
        }
    }
}

impl IntoWire for &Progress {
    type Wire = wire::Progress;
    fn into_wire(self) -> wire::Progress {
        wire::Progress {
            percent: self.percent,
            message: self.message.clone(),
        }
    }
}

impl IntoWire for &TaskError {
    type Wire = wire::TaskError;
    fn into_wire(self) -> wire::TaskError {
        wire::TaskError {
            kind: self.kind.clone(),
            message: self.message.clone(),
        }
    }
}

impl IntoWire for WebhookEvent {
    type Wire = wire::WebhookEvent;
    fn into_wire(self) -> wire::WebhookEvent {
        match self {
            WebhookEvent::Succeeded => wire::WebhookEvent::Succeeded,
            WebhookEvent::Failed => wire::WebhookEvent::Failed,
            WebhookEvent::Cancelled => wire::WebhookEvent::Cancelled,
        }
    }
}

impl IntoStore for wire::WebhookEvent {
    type Store = WebhookEvent;
    fn into_store(self) -> WebhookEvent {
        match self {
            wire::WebhookEvent::Succeeded => WebhookEvent::Succeeded,
            wire::WebhookEvent::Failed => WebhookEvent::Failed,
            wire::WebhookEvent::Cancelled => WebhookEvent::Cancelled,
        }
    }
}

impl IntoWire for &Callback {
    type Wire = wire::Callback;
    fn into_wire(self) -> wire::Callback {
        wire::Callback {
            url: self.url.clone(),
            events: self.events.iter().map(|e| e.into_wire()).collect(),
        }
    }
}

impl IntoStore for wire::Callback {
    type Store = Callback;
    fn into_store(self) -> Callback {
        Callback {
            url: self.url,
            events: self.events.into_iter().map(IntoStore::into_store).collect(),
        }
    }
}

impl IntoWire for WebhookState {
    type Wire = wire::WebhookState;
    fn into_wire(self) -> wire::WebhookState {
        match self {
            WebhookState::Pending => wire::WebhookState::Pending,
            WebhookState::Delivered => wire::WebhookState::Delivered,
            WebhookState::Failed => wire::WebhookState::Failed,
        }
    }
}

impl IntoWire for &WebhookStatus {
    type Wire = wire::WebhookStatus;
    fn into_wire(self) -> wire::WebhookStatus {
        wire::WebhookStatus {
            id: self.id.clone(),
            event: self.event.into_wire(),
            state: self.state.into_wire(),
            attempts: self.attempts,
            last_status: self.last_status,
            last_error: self.last_error.clone(),
            next_attempt_at: self.next_attempt_at,
            delivered_at: self.delivered_at,
        }
    }
}

/// By value where the handler is done with the record: the payload and the result, the
/// record's large parts, move instead of being copied.
impl IntoWire for TaskRecord {
    type Wire = wire::TaskRecord;
    fn into_wire(mut self) -> wire::TaskRecord {
        let payload = std::mem::take(&mut self.payload);
        let result = self.result.take();
        with(&self, payload, result)
    }
}

impl IntoWire for &TaskRecord {
    type Wire = wire::TaskRecord;
    fn into_wire(self) -> wire::TaskRecord {
        with(self, self.payload.clone(), self.result.clone())
    }
}

fn with(r: &TaskRecord, payload: Value, result: Option<Value>) -> wire::TaskRecord {
    wire::TaskRecord {
        id: r.id.into_wire(),
        kind: r.kind.clone(),
        queue: r.queue.clone(),
        state: r.state.into_wire(),
        payload,
        progress: r.progress.as_ref().map(IntoWire::into_wire),
        result,
        error: r.error.as_ref().map(IntoWire::into_wire),
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
        callback: r.callback.as_ref().map(IntoWire::into_wire),
        webhook: r.webhook.as_ref().map(IntoWire::into_wire),
        priority: r.priority,
        concurrency_key: r.concurrency_key.clone(),
        workflow: r.workflow.clone(),
        step: r.step.clone(),
    }
}
