//! Operating views: queues and workers.

use std::collections::BTreeMap;

use actix_web::{HttpResponse, get, web};
use chrono::Utc;
use errand_core::store::WorkerInfo;
use serde::Serialize;
use utoipa::ToSchema;

use crate::{
    error::{ApiError, Problem},
    state::AppState,
};

#[derive(Debug, Serialize, ToSchema)]
pub struct QueueInfo {
    #[schema(example = "default")]
    pub name: String,
    /// Live tasks per state (terminal ones until their record expires).
    #[schema(example = json!({"scheduled": 0, "queued": 12, "running": 4, "retrying": 1, "succeeded": 950, "failed": 3, "cancelled": 0}))]
    pub counts: BTreeMap<String, u64>,
    /// How long the longest-waiting queued task has waited, in ms; null if none waits.
    #[schema(required = true)]
    pub oldest_queued_age_ms: Option<u64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct QueueList {
    pub queues: Vec<QueueInfo>,
}

/// Every queue ever submitted to, with its tasks counted by state.
#[utoipa::path(
    tag = "operations",
    responses(
        (status = 200, body = QueueList),
        (status = 503, description = "Redis unavailable; see Retry-After", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/v1/queues")]
pub async fn list_queues(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let stats = state
        .store
        .queues(Utc::now())
        .await
        .map_err(|e| ApiError::store(e, state.settings.api.retry_after_secs))?;
    Ok(HttpResponse::Ok().json(QueueList {
        queues: stats
            .into_iter()
            .map(|q| QueueInfo {
                name: q.name,
                counts: q
                    .counts
                    .into_iter()
                    .map(|(s, n)| (s.as_str().to_owned(), n))
                    .collect(),
                oldest_queued_age_ms: q.oldest_queued_ms,
            })
            .collect(),
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WorkerList {
    pub workers: Vec<WorkerInfo>,
}

/// Worker processes alive now (their heartbeat, every few seconds, has not lapsed).
#[utoipa::path(
    tag = "operations",
    responses(
        (status = 200, body = WorkerList),
        (status = 503, description = "Redis unavailable; see Retry-After", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/v1/workers")]
pub async fn list_workers(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let workers = state
        .store
        .workers()
        .await
        .map_err(|e| ApiError::store(e, state.settings.api.retry_after_secs))?;
    Ok(HttpResponse::Ok().json(WorkerList { workers }))
}
