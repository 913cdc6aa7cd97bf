//! Workers to the wire.

use errand_core::store::{WorkerInfo, WorkerKind, WorkerQueue};
use errand_wire as wire;

use super::IntoWire;

impl IntoWire for &WorkerInfo {
    type Wire = wire::WorkerInfo;
    fn into_wire(self) -> wire::WorkerInfo {
        let w = self;
        wire::WorkerInfo {
            name: w.name.clone(),
            host: w.host.clone(),
            pid: w.pid,
            queues: w.queues.iter().map(IntoWire::into_wire).collect(),
            running: w.running,
            running_ids: w.running_ids.clone(),
            stopping: w.stopping,
            started_at: w.started_at,
            last_seen: w.last_seen,
            kinds: w.kinds.iter().map(IntoWire::into_wire).collect(),
        }
    }
}

impl IntoWire for &WorkerKind {
    type Wire = wire::WorkerKind;
    fn into_wire(self) -> wire::WorkerKind {
        wire::WorkerKind {
            name: self.name.clone(),
            digest: self.digest.clone(),
        }
    }
}

impl IntoWire for &WorkerQueue {
    type Wire = wire::WorkerQueue;
    fn into_wire(self) -> wire::WorkerQueue {
        wire::WorkerQueue {
            name: self.name.clone(),
            concurrency: self.concurrency,
        }
    }
}
