//! The HTTP worker protocol's bodies to and from the store: a registered queue and kind,
//! progress and a failure as a worker reports them; a leased task as it receives it.

use chrono::{DateTime, Utc};
use errand_core::{
    store::{Claimed, KindDefinition, WorkerQueue},
    task::{Progress, TaskError},
};
use errand_wire as wire;
use serde_json::Value;

use super::{IntoStore, IntoWire};

impl IntoStore for &wire::QueueSpec {
    type Store = WorkerQueue;
    fn into_store(self) -> WorkerQueue {
        WorkerQueue {
            name: self.name.clone(),
            concurrency: self.concurrency,
        }
    }
}

impl IntoStore for wire::KindSpec {
    type Store = KindDefinition;
    /// A kind without a result schema takes any result; its component names are errand's
    /// to choose (`payload_name`, `result_name` empty).
    fn into_store(self) -> KindDefinition {
        KindDefinition {
            payload_name: String::new(),
            result_name: String::new(),
            name: self.name,
            aliases: self.aliases,
            summary: self.summary,
            idempotent: self.idempotent,
            payload_schema: self.payload_schema,
            result_schema: self
                .result_schema
                .unwrap_or_else(|| Value::Object(Default::default())),
            example: self.example.unwrap_or(Value::Null),
        }
    }
}

impl IntoStore for &wire::ProgressIn {
    type Store = Progress;
    fn into_store(self) -> Progress {
        Progress {
            percent: self.percent,
            message: self.message.clone(),
        }
    }
}

impl IntoStore for wire::ReportError {
    type Store = TaskError;
    fn into_store(self) -> TaskError {
        TaskError {
            kind: self.kind,
            message: self.message,
        }
    }
}

/// A claimed task as its lease hands it to the worker: with the lease's opaque token and
/// when it lapses (both the handler's to make).
impl IntoWire for (Claimed, String, DateTime<Utc>) {
    type Wire = wire::LeasedTask;
    fn into_wire(self) -> wire::LeasedTask {
        let (c, token, lease_expires_at) = self;
        wire::LeasedTask {
            id: c.id,
            queue: c.queue,
            kind: c.kind,
            // A record whose payload is not JSON reaches the worker as null.
            payload: c.payload.unwrap_or(Value::Null),
            attempt: c.attempt,
            max_attempts: c.max_attempts,
            token,
            lease_expires_at,
            timeout_secs: c.timeout_secs,
            traceparent: c.traceparent,
            workflow: c.workflow,
            inputs: c.inputs,
        }
    }
}
