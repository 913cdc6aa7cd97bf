//! `/tasks/celery/*`: the chapter's Celery task (`long_running_task(task_id, duration)`)
//! over errand's real queue. Submitting is `POST /v1/tasks` with kind `long_running` (the
//! `sleep` kind's alias) and id = `task_id`, so it is durable, retried, run by any worker,
//! and idempotent by id; the answers use the chapter's shape and Celery's state names:
//!
//! | errand state | status |
//! |---|---|
//! | `scheduled`, `queued` | `PENDING` |
//! | `running` | `STARTED` (with `progress`) |
//! | `retrying` | `RETRY` |
//! | `succeeded` | `SUCCESS` |
//! | `failed` | `FAILURE` |
//! | `cancelled` | `REVOKED` |

use actix_web::{HttpRequest, HttpResponse, get, http::header, post, web};
use chrono::Utc;
use errand_core::{
    store::Submitted,
    task::{TaskRecord, TaskState},
};
use errand_wire as wire;
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::{path_task_id, query_task_id, required};
use crate::{
    error::{ApiError, Problem},
    routes::{lookup::missing, query::Query, tasks::prepare},
    state::AppState,
    views::IntoWire,
};

/// A task's state in Celery's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub(crate) enum CeleryStatus {
    /// `scheduled` or `queued`: waiting for a worker.
    Pending,
    /// `running`: a worker has it.
    Started,
    /// `retrying`: the last attempt failed; it runs again after a backoff.
    Retry,
    /// `succeeded`.
    Success,
    /// `failed`: permanent failure, or no attempts left.
    Failure,
    /// `cancelled`.
    Revoked,
}

impl From<TaskState> for CeleryStatus {
    fn from(s: TaskState) -> Self {
        match s {
            TaskState::Scheduled | TaskState::Queued => Self::Pending,
            TaskState::Running => Self::Started,
            TaskState::Retrying => Self::Retry,
            TaskState::Succeeded => Self::Success,
            TaskState::Failed => Self::Failure,
            TaskState::Cancelled => Self::Revoked,
        }
    }
}

/// The chapter's answer: `task_id`, `status`, and `result` when ready.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CeleryTask {
    #[schema(example = "celery123")]
    pub task_id: String,
    pub status: CeleryStatus,
    /// `SUCCESS`: the task's result as text: for the `sleep` kind its message
    /// (`task {id} done`), as the chapter's task returns it; for another kind, its result as
    /// JSON text. `FAILURE`, `RETRY`: the last error's message, as Celery puts the exception
    /// there. Otherwise null.
    #[schema(required = true, example = "task celery123 done")]
    pub result: Option<String>,
    /// While `STARTED`: how far it has got; absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub progress: Option<wire::Progress>,
}

impl From<TaskRecord> for CeleryTask {
    fn from(r: TaskRecord) -> Self {
        let status = CeleryStatus::from(r.state);
        let result = match status {
            CeleryStatus::Success => r.result.map(|v| match v.get("message") {
                Some(Value::String(m)) if r.kind == "sleep" => m.clone(),
                _ => v.to_string(),
            }),
            CeleryStatus::Failure | CeleryStatus::Retry => r.error.map(|e| e.message),
            _ => None,
        };
        Self {
            task_id: r.id.to_string(),
            status,
            result,
            progress: r
                .progress
                .filter(|_| status == CeleryStatus::Started)
                .as_ref()
                .map(IntoWire::into_wire),
        }
    }
}

/// Queues the chapter's long task (`sleep` for `duration` seconds; result `task {id} done`)
/// with id `task_id`, and answers at once. Idempotent by `task_id`: the same id again
/// answers 200 with the existing task and enqueues nothing, whatever its `duration`.
/// The full record is at `GET /v1/tasks/{task_id}`.
#[utoipa::path(
    tag = "tutorial",
    context_path = "/tasks",
    params(
        ("task_id" = wire::TaskId, Query, description = "The task's id: 1 to 128 characters from A-Z a-z 0-9 . _ : -"),
        ("duration" = u64, Query, description = "Seconds to sleep, 0 to tasks.max_sleep_secs (default 86400)"),
    ),
    responses(
        (status = 202, description = "Queued", body = CeleryTask,
         headers(("Location" = String, description = "/tasks/celery/task/{task_id}"))),
        (status = 200, description = "A task with this id already exists; nothing was enqueued", body = CeleryTask,
         headers(("Location" = String, description = "/tasks/celery/task/{task_id}"))),
        (status = 400, description = "Missing or bad query parameter", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Redis unavailable; see Retry-After", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/celery/task")]
pub(crate) async fn submit_celery_task(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let now = Utc::now();
    let mut q = Query::parse(req.query_string())?;
    let task_id = query_task_id(&mut q)?;
    let duration = q
        .uint("duration", 0, state.settings.tasks.max_sleep_secs)?
        .ok_or_else(|| required("duration"))?;
    q.finish()?;
    // Built through serde so that fields added to `SubmitTask` later keep their defaults.
    let submit: wire::SubmitTask = serde_json::from_value(json!({
        "kind": "long_running",
        "id": task_id.as_str(),
        "payload": {"duration_secs": duration},
    }))
    .map_err(|e| ApiError::Internal(e.into()))?;
    let kinds = state
        .kinds
        .knowing(&state.store, std::iter::once(submit.kind.as_str()))
        .await?;
    let task = prepare(&state, &kinds, None, submit, now)?;
    let submitted = state.store.submit(task, now).await?;
    let location = (header::LOCATION, format!("/tasks/celery/task/{task_id}"));
    Ok(match submitted {
        Submitted::Created(r) => {
            tracing::info!(task_id = %r.id, duration, "celery-style task queued");
            HttpResponse::Accepted()
                .insert_header(location)
                .json(CeleryTask::from(r))
        }
        Submitted::Existing(r) | Submitted::Duplicate(r) => HttpResponse::Ok()
            .insert_header(location)
            .json(CeleryTask::from(r)),
    })
}

/// The task's status in Celery's words, and its result when ready. Unlike Celery, an
/// unknown id is a 404, not an eternal `PENDING`.
#[utoipa::path(
    tag = "tutorial",
    context_path = "/tasks",
    params(("task_id" = wire::TaskId, Path, description = "Task id")),
    responses(
        (status = 200, body = CeleryTask),
        (status = 400, description = "Malformed id", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such task, or its record expired (type task-expired)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Redis unavailable; see Retry-After", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/celery/task/{task_id}")]
pub(crate) async fn get_celery_task(
    state: web::Data<AppState>,
    task_id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path_task_id(&task_id)?;
    let record = state.store.get(&id).await?;
    match record {
        Some(r) => Ok(HttpResponse::Ok().json(CeleryTask::from(r))),
        None => Err(missing(&state, &id).await),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_errand_state_has_its_celery_word() {
        let words: Vec<String> = TaskState::ALL
            .into_iter()
            .map(|s| serde_json::to_value(CeleryStatus::from(s)).unwrap())
            .map(|v| v.as_str().unwrap().to_owned())
            .collect();
        assert_eq!(
            words,
            [
                "PENDING", "PENDING", "STARTED", "RETRY", "SUCCESS", "FAILURE", "REVOKED"
            ]
        );
    }
}
