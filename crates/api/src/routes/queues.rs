//! Operating views: queues and workers.

use actix_web::{HttpResponse, get, post, web};
use chrono::Utc;
use errand_core::task::QueueName;
use errand_wire as wire;

use crate::{
    error::{ApiError, Problem},
    state::AppState,
    views::IntoWire,
};

/// Every queue ever submitted to, with its tasks counted by state.
#[utoipa::path(
    tag = "operations",
    responses(
        (status = 200, body = wire::QueueList),
        (status = 503, description = "Redis unavailable; see Retry-After", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/v1/queues")]
pub(crate) async fn list_queues(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let stats = state.store.queues(Utc::now()).await?;
    let names: Vec<String> = stats.iter().map(|q| q.name.clone()).collect();
    let paused = state.store.paused(&names).await?;
    Ok(HttpResponse::Ok().json(wire::QueueList {
        queues: stats
            .into_iter()
            .zip(paused)
            .map(|(q, paused)| wire::QueueInfo {
                name: q.name,
                counts: q
                    .counts
                    .into_iter()
                    .map(|(s, n)| (s.as_str().to_owned(), n))
                    .collect(),
                oldest_queued_age_ms: q.oldest_queued_ms,
                paused: paused.is_some(),
            })
            .collect(),
    }))
}

pub(crate) fn queue_name(raw: &str) -> Result<&str, ApiError> {
    match QueueName::parse(raw) {
        Ok(_) => Ok(raw),
        Err(e) => Err(ApiError::BadRequest {
            field: Some("queue".into()),
            detail: format!("path parameter `queue`: {e}"),
        }),
    }
}

/// Pauses a queue: its workers take none of its tasks from their next fetch on (within a
/// second), attempts already running finish, and submits are still accepted and wait.
/// Pausing a paused queue changes nothing; a queue nobody submitted to yet can be paused
/// ahead of time.
#[utoipa::path(
    tag = "operations",
    params(("queue" = String, Path, pattern = "^[A-Za-z0-9_.-]{1,64}$", description = "Queue name")),
    responses(
        (status = 200, description = "Paused", body = wire::QueuePause),
        (status = 400, description = "Malformed queue name", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Redis unavailable; see Retry-After", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/v1/queues/{queue}/pause")]
pub(crate) async fn pause_queue(
    state: web::Data<AppState>,
    queue: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let name = queue_name(&queue)?;
    let at = state.store.pause_queue(name).await?;
    tracing::info!(queue = name, "queue paused");
    Ok(HttpResponse::Ok().json(wire::QueuePause {
        name: name.to_owned(),
        paused: true,
        paused_at: Some(at),
    }))
}

/// Resumes a paused queue and wakes its idle workers, so its waiting tasks start at once.
/// Resuming a queue that is not paused changes nothing.
#[utoipa::path(
    tag = "operations",
    params(("queue" = String, Path, pattern = "^[A-Za-z0-9_.-]{1,64}$", description = "Queue name")),
    responses(
        (status = 200, description = "Not paused (any more)", body = wire::QueuePause),
        (status = 400, description = "Malformed queue name", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Redis unavailable; see Retry-After", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/v1/queues/{queue}/resume")]
pub(crate) async fn resume_queue(
    state: web::Data<AppState>,
    queue: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let name = queue_name(&queue)?;
    state.store.resume_queue(name).await?;
    tracing::info!(queue = name, "queue resumed");
    Ok(HttpResponse::Ok().json(wire::QueuePause {
        name: name.to_owned(),
        paused: false,
        paused_at: None,
    }))
}

/// Worker processes alive now (their heartbeat, every few seconds, has not lapsed).
#[utoipa::path(
    tag = "operations",
    responses(
        (status = 200, body = wire::WorkerList),
        (status = 503, description = "Redis unavailable; see Retry-After", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/v1/workers")]
pub(crate) async fn list_workers(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let workers = state.store.workers().await?;
    Ok(HttpResponse::Ok().json(wire::WorkerList {
        workers: workers.iter().map(IntoWire::into_wire).collect(),
    }))
}
