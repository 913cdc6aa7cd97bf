//! Workers as the API serves them.

use chrono::{DateTime, Utc};
use errand_core::store::{WorkerInfo, WorkerKind, WorkerQueue};
use serde::Serialize;
use utoipa::ToSchema;

/// A worker process as its heartbeat describes it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = WorkerInfo)]
pub(crate) struct WorkerView {
    /// Unique per process start: host, pid, ULID.
    pub name: String,
    pub host: String,
    pub pid: u32,
    /// Served queues with their concurrency.
    pub queues: Vec<WorkerQueueView>,
    /// Tasks running now.
    pub running: usize,
    /// Up to 100 of the running task ids.
    pub running_ids: Vec<String>,
    /// True once the process is shutting down: it takes no new tasks and finishes its own.
    #[serde(default)]
    #[schema(required = true)]
    pub stopping: bool,
    pub started_at: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    /// The kinds it runs, with the digest of the definition it registered.
    #[schema(required = true)]
    pub kinds: Vec<WorkerKindView>,
}

// A kind a worker runs: its name and the digest of the definition it registered.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = WorkerKind)]
pub(crate) struct WorkerKindView {
    pub name: String,
    pub digest: String,
}

impl From<&WorkerKind> for WorkerKindView {
    fn from(k: &WorkerKind) -> Self {
        Self {
            name: k.name.clone(),
            digest: k.digest.clone(),
        }
    }
}

// One queue a worker serves, with how many of its tasks it runs at once. (A plain comment:
// a doc comment would become the schema's description, which the document has never had.)
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = WorkerQueue)]
pub(crate) struct WorkerQueueView {
    pub name: String,
    pub concurrency: usize,
}

impl From<&WorkerInfo> for WorkerView {
    fn from(w: &WorkerInfo) -> Self {
        Self {
            name: w.name.clone(),
            host: w.host.clone(),
            pid: w.pid,
            queues: w.queues.iter().map(Into::into).collect(),
            running: w.running,
            running_ids: w.running_ids.clone(),
            stopping: w.stopping,
            started_at: w.started_at,
            last_seen: w.last_seen,
            kinds: w.kinds.iter().map(Into::into).collect(),
        }
    }
}

impl From<&WorkerQueue> for WorkerQueueView {
    fn from(q: &WorkerQueue) -> Self {
        Self {
            name: q.name.clone(),
            concurrency: q.concurrency,
        }
    }
}
