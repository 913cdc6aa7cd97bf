//! Reading a task by the id in a path: parse it (400 naming `id`), and, when it has no
//! record, tell an expired task (410-style `task-expired`) from one that never was (404).
//! Every route that takes a task id uses these, so the answers are the same everywhere.

use errand_core::task::TaskId;

use crate::{error::ApiError, state::AppState};

pub(crate) fn parse_id(raw: &str) -> Result<TaskId, ApiError> {
    TaskId::parse(raw).map_err(|e| ApiError::BadRequest {
        field: Some("id".into()),
        detail: e.to_string(),
    })
}

/// Why an id has no record: it expired (if still remembered) or never existed.
pub(crate) async fn missing(state: &AppState, id: &TaskId) -> ApiError {
    match state.store.expired_at(id).await {
        Ok(Some(at)) => ApiError::Expired {
            id: id.to_string(),
            at: errand_core::task::rfc3339(at),
        },
        _ => ApiError::NotFound(id.to_string()),
    }
}
