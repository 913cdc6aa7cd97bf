//! `/tasks/background/*`: the chapter's FastAPI `BackgroundTasks` example. The task runs
//! inside this API process and its status lives in this process's memory only
//! (`crate::background`): lost on restart, unknown to other API replicas, never retried.
//! For work that must survive any of that, use the queue (`/tasks/celery/*`, `/v1/tasks`).

use actix_web::{HttpRequest, HttpResponse, get, http::header, post, web};
use errand_wire as wire;

use super::{path_task_id, query_task_id, required};
use crate::{
    background::{BackgroundStatus, BackgroundTasks, Refused},
    error::{ApiError, Problem},
    routes::query::Query,
};

/// Longest in-process task accepted. In-process work should be short; anything longer
/// belongs on the queue, where a restart does not lose it.
pub(crate) const MAX_DURATION_SECS: u64 = 3600;

/// Starts an in-process background task that sleeps `duration` seconds, and answers at once
/// (202, `pending`). Its status is kept in this API process's memory only: it is lost when
/// the process restarts, another API replica does not know it, and a full registry
/// (`api.max_background_tasks`) drops the oldest finished entries first.
#[utoipa::path(
    tag = "tutorial",
    context_path = "/tasks",
    params(
        ("task_id" = wire::TaskId, Query, description = "Your id for the task: 1 to 128 characters from A-Z a-z 0-9 . _ : -"),
        ("duration" = u64, Query, minimum = 0, maximum = 3600, description = "Seconds to sleep, 0 to 3600"),
    ),
    responses(
        (status = 202, description = "Started in this process", body = BackgroundStatus,
         headers(("Location" = String, description = "/tasks/background/status/{task_id}"))),
        (status = 400, description = "Missing or bad query parameter", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A task with this id is still pending or running", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Every registry slot holds an unfinished task; see Retry-After", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/background/simple")]
pub(crate) async fn start_simple(
    registry: web::Data<BackgroundTasks>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let mut q = Query::parse(req.query_string())?;
    let task_id = query_task_id(&mut q)?;
    let duration = q
        .uint("duration", 0, MAX_DURATION_SECS)?
        .ok_or_else(|| required("duration"))?;
    q.finish()?;
    let status = registry
        .spawn(task_id.as_str(), duration)
        .map_err(|e| match e {
            Refused::Unfinished(..) => ApiError::Conflict(e.to_string()),
            Refused::Full {
                retry_after_secs, ..
            } => ApiError::Busy {
                detail: format!("{e} (api.max_background_tasks); retry later or use the queue"),
                retry_after_secs,
            },
        })?;
    tracing::info!(task_id = %task_id, duration, "in-process background task started");
    Ok(HttpResponse::Accepted()
        .insert_header((
            header::LOCATION,
            format!("/tasks/background/status/{task_id}"),
        ))
        .json(status))
}

/// An in-process background task's status, from this API process's memory. With several
/// API replicas, ask the one that started it; after a restart, every id is unknown (404).
#[utoipa::path(
    tag = "tutorial",
    context_path = "/tasks",
    params(("task_id" = wire::TaskId, Path, description = "The id given at start")),
    responses(
        (status = 200, body = BackgroundStatus),
        (status = 400, description = "Malformed id", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Not known to this API process", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/background/status/{task_id}")]
pub(crate) async fn simple_status(
    registry: web::Data<BackgroundTasks>,
    task_id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path_task_id(&task_id)?;
    match registry.get(id.as_str()) {
        Some(s) => Ok(HttpResponse::Ok().json(s)),
        None => Err(ApiError::NotFound(id.to_string())),
    }
}
