//! Changing a task's course: cancel and manual retry.

use actix_web::{HttpResponse, http::header, post, web};
use chrono::Utc;
use errand_core::store::{Cancel, Retry};
use errand_wire as wire;

use super::lookup::{missing, parse_id};
use crate::{
    error::{ApiError, Problem},
    state::AppState,
    views::IntoWire,
};

/// Cancels a task. One that has not started never will (200, `cancelled`). A running one is
/// told to stop (202, still `running` with `cancel_requested`); it ends `cancelled` within a
/// second. A terminal task cannot be cancelled (409).
#[utoipa::path(
    tag = "tasks",
    params(("id" = wire::TaskId, Path, description = "Task id")),
    responses(
        (status = 200, description = "Cancelled before it started", body = wire::TaskRecord),
        (status = 202, description = "Running: its worker is stopping it", body = wire::TaskRecord),
        (status = 400, description = "Malformed id", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such task", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Already terminal", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Redis unavailable; see Retry-After", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/v1/tasks/{id}/cancel")]
pub(crate) async fn cancel_task(
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&id)?;
    let outcome = state.store.cancel(&id, Utc::now()).await?;
    match outcome {
        Cancel::Gone => Err(missing(&state, &id).await),
        Cancel::Terminal(s) => Err(ApiError::Conflict(format!(
            "task `{id}` is already {s}; only scheduled, queued, running or retrying tasks can be cancelled"
        ))),
        Cancel::Requested(r) => {
            tracing::info!(task_id = %id, "cancel requested for running task");
            Ok(HttpResponse::Accepted().json((*r).into_wire()))
        }
        Cancel::Cancelled(r) => {
            crate::metrics::cancelled(&r.queue, &r.kind);
            if r.workflow.is_some() {
                state.advancer.step_ended(&r.queue);
            }
            tracing::info!(task_id = %id, "task cancelled before it ran");
            Ok(HttpResponse::Ok().json((*r).into_wire()))
        }
    }
}

/// Runs a failed or cancelled task again: queued at once as a new job, with a fresh budget
/// of `max_attempts`; result, error and progress are cleared. Other states are 409.
#[utoipa::path(
    tag = "tasks",
    params(("id" = wire::TaskId, Path, description = "Task id")),
    responses(
        (status = 202, description = "Queued again", body = wire::TaskRecord,
         headers(("Location" = String, description = "/v1/tasks/{id}"))),
        (status = 400, description = "Malformed id", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such task", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not failed or cancelled", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Redis unavailable; see Retry-After", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/v1/tasks/{id}/retry")]
pub(crate) async fn retry_task(
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&id)?;
    let outcome = state.store.retry(&id, Utc::now()).await?;
    match outcome {
        Retry::Gone => Err(missing(&state, &id).await),
        Retry::Conflict(s) => Err(ApiError::Conflict(format!(
            "task `{id}` is {s}; only failed or cancelled tasks can be retried"
        ))),
        Retry::Queued(r) => {
            tracing::info!(task_id = %id, "task queued again by request");
            // A step retried: its workflow runs again from it.
            if r.workflow.is_some() {
                state.advancer.step_ended(&r.queue);
            }
            Ok(HttpResponse::Accepted()
                .insert_header((header::LOCATION, format!("/v1/tasks/{id}")))
                .json((*r).into_wire()))
        }
    }
}
