//! Task kinds on the wire (`GET /v1/kinds`): the registered definition, and who runs it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// A task kind from the registry: what workers registered for it, and which of them run it
/// now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct KindInfo {
    /// The canonical name, the one submissions use and records carry.
    #[schema(example = "sleep")]
    pub name: String,
    /// Other names a submit accepts for this kind (stored as the canonical name).
    pub aliases: Vec<String>,
    /// One line saying what the kind does.
    pub summary: String,
    /// Whether running it twice has the effect of running it once. Delivery is at least
    /// once, so a non-idempotent kind may run again after a worker dies mid-task.
    pub idempotent: bool,
    /// JSON Schema (2020-12) a payload must meet: submits are validated against it.
    #[schema(value_type = Object)]
    pub payload_schema: Value,
    /// JSON Schema of a successful run's result (the record's `result`).
    #[schema(value_type = Object)]
    pub result_schema: Value,
    /// A payload the kind accepts, for the docs and as a starting point; null when the
    /// worker that registered the kind gave none.
    #[schema(value_type = Option<Object>, required = true)]
    pub example: Value,
    /// Digest of the definition that validates submits now.
    #[schema(example = "3f2a9c0d1b4e5f60")]
    pub digest: String,
    /// When that definition was first registered, and by which worker (`errand-api` for a
    /// built-in kind seeded before any worker ran).
    pub registered_at: DateTime<Utc>,
    /// The worker process, or `errand-api`, that registered it.
    pub registered_by: String,
    /// Live worker processes that run this kind. Empty: tasks of it are accepted and wait
    /// for a worker.
    pub workers: Vec<String>,
    /// The queues those workers serve.
    pub queues: Vec<String>,
    /// Whether live workers registered different definitions of it (a rolling deploy):
    /// the newest worker's validates.
    pub schemas_differ: bool,
}
