//! Bulk actions on the wire: one to start, and how far one got.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::TaskState;

/// What a bulk action does to each match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = BulkActionView)]
pub enum BulkAction {
    /// Queue a failed or cancelled task again with a fresh budget (states `failed`,
    /// `cancelled`; default `failed`).
    Retry,
    /// Cancel a task that has not ended; a running one by request to its worker (states
    /// `queued`, `scheduled`, `retrying`, `running`; default `queued`).
    Cancel,
    /// Remove a terminal record now; its id then reads as expired (states `failed`,
    /// `cancelled`, `succeeded`; default `failed`).
    Delete,
}

impl BulkAction {
    /// The name the API uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Retry => "retry",
            Self::Cancel => "cancel",
            Self::Delete => "delete",
        }
    }
}

impl std::fmt::Display for BulkAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for BulkAction {
    type Err = crate::UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Self::Retry, Self::Cancel, Self::Delete]
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| crate::UnknownName::new("bulk action", s))
    }
}

/// A bulk action to start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"action": "retry", "state": "failed", "error_kind": "timeout"}))]
pub struct StartBulk {
    pub action: BulkAction,
    /// The state of the tasks to act on; the action's default when left out.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<TaskState>)]
    pub state: Option<String>,
    /// Only tasks of this kind (canonical name or alias).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Only tasks whose last error has this kind (`timeout`, `worker_lost`, or one a kind
    /// defines).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "timeout")]
    pub error_kind: Option<String>,
}

/// A bulk action and how far it got.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(as = BulkView)]
pub struct BulkJob {
    #[schema(example = "01a23b10-5e2a-7c31-9f44-0d7a3b9c1e22")]
    pub id: String,
    #[schema(example = "default")]
    pub queue: String,
    pub action: BulkAction,
    pub state: TaskState,
    /// Null: every kind.
    #[schema(required = true)]
    pub kind: Option<String>,
    /// Null: any error.
    #[schema(required = true)]
    pub error_kind: Option<String>,
    /// `running`; `done`; `interrupted` (the api process working it stopped: start it
    /// again, it acts only on what still matches); `failed` (see `error`).
    #[schema(example = "running")]
    pub status: String,
    /// Tasks in `state` when it started: about what `examined` runs up to.
    pub total: u64,
    /// Records looked at so far.
    pub examined: u64,
    /// Of those, the ones that matched.
    pub matched: u64,
    /// Matches acted on.
    pub done: u64,
    /// Matches whose state changed before their turn, left as they are.
    pub skipped: u64,
    pub started_at: DateTime<Utc>,
    /// Null while it runs.
    #[schema(required = true)]
    pub finished_at: Option<DateTime<Utc>>,
    /// Why it failed; null otherwise.
    #[schema(required = true)]
    pub error: Option<String>,
}
