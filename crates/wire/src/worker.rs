//! Worker processes on the wire, as their heartbeats describe them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A worker process as its heartbeat describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WorkerInfo {
    /// Unique per process start: host, pid, ULID.
    pub name: String,
    pub host: String,
    pub pid: u32,
    /// Served queues with their concurrency.
    pub queues: Vec<WorkerQueue>,
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
    pub kinds: Vec<WorkerKind>,
}

// A kind a worker runs: its name and the digest of the definition it registered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WorkerKind {
    pub name: String,
    pub digest: String,
}

// One queue a worker serves, with how many of its tasks it runs at once. (A plain comment:
// a doc comment would become the schema's description, which the document has never had.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WorkerQueue {
    pub name: String,
    pub concurrency: usize,
}

/// Worker processes alive now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WorkerList {
    pub workers: Vec<WorkerInfo>,
}
