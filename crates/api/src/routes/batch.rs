//! `POST /v1/tasks/batch`: many tasks, one request, one Redis round trip.

use actix_web::{HttpRequest, HttpResponse, post, web};
use chrono::Utc;
use errand_core::store::Submitted;
use errand_wire as wire;
use futures::StreamExt;

use super::tasks::prepare;
use crate::{
    error::{ApiError, Problem},
    extract::parse_json,
    state::AppState,
    views::IntoWire,
};

/// Submits up to `api.max_batch` tasks atomically per task and in one Redis round trip. The
/// whole batch is validated first: one invalid task rejects the batch (422 naming
/// `tasks[i].field`) and nothing is enqueued.
#[utoipa::path(
    tag = "tasks",
    request_body = wire::SubmitBatch,
    responses(
        (status = 202, description = "Accepted; per-task outcome in request order", body = wire::BatchResult),
        (status = 400, description = "Malformed request", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body, batch or a payload too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid field", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Submit rate limit (api.rate_limit) reached; see Retry-After", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Redis unavailable; see Retry-After", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/v1/tasks/batch")]
pub(crate) async fn submit_batch(
    state: web::Data<AppState>,
    req: HttpRequest,
    mut payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let now = Utc::now();
    let limit = state.settings.api.max_batch_body_bytes;
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| ApiError::body(e.into()))?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::TooLarge(format!(
                "batch body over {limit} bytes (api.max_batch_body_bytes)"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    let batch: wire::SubmitBatch = parse_json(&req, &body)?;
    let max = state.settings.api.max_batch;
    if batch.tasks.is_empty() {
        return Err(ApiError::invalid("tasks", "give at least one task"));
    }
    if batch.tasks.len() > max {
        return Err(ApiError::TooLarge(format!(
            "{} tasks in one batch; the limit is {max} (api.max_batch)",
            batch.tasks.len()
        )));
    }
    let kinds = state
        .kinds
        .knowing(&state.store, batch.tasks.iter().map(|t| t.kind.as_str()))
        .await?;
    let tasks = batch
        .tasks
        .into_iter()
        .enumerate()
        .map(|(i, t)| {
            prepare(&state, &kinds, None, t, now).map_err(|e| match e {
                ApiError::Invalid { field, detail } => ApiError::Invalid {
                    field: format!("tasks[{i}].{field}"),
                    detail,
                },
                ApiError::TooLarge(d) => ApiError::TooLarge(format!("tasks[{i}]: {d}")),
                other => other,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    crate::access::charge(&state, &req, tasks.len())?;
    let submitted =
        errand_core::telemetry::redis_call("submit", state.store.submit_many(tasks, now)).await?;
    let items: Vec<wire::BatchItem> = submitted
        .into_iter()
        .map(|s| match s {
            Submitted::Created(r) => {
                crate::metrics::submitted(&r.queue, &r.kind);
                wire::BatchItem {
                    id: r.id.into_wire(),
                    state: r.state.into_wire(),
                    created: true,
                }
            }
            Submitted::Existing(r) | Submitted::Duplicate(r) => wire::BatchItem {
                id: r.id.into_wire(),
                state: r.state.into_wire(),
                created: false,
            },
        })
        .collect();
    let created = items.iter().filter(|i| i.created).count();
    tracing::info!(created, total = items.len(), "batch accepted");
    Ok(HttpResponse::Accepted().json(wire::BatchResult {
        existing: items.len() - created,
        created,
        tasks: items,
    }))
}
