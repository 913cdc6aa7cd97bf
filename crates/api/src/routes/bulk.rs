//! Bulk actions on a queue's tasks (`admin` scope to start): retry, cancel or delete every
//! task matching a state, a kind and an error kind, worked in bounded slices by this api
//! process, with its progress readable from any (docs/flow-control.md).

use actix_web::{HttpResponse, get, http::header, post, web};
use chrono::Utc;
use errand_core::{
    store::{BulkAction, BulkFilter, BulkJob},
    task::{TaskId, TaskState},
};
use errand_wire as wire;

use super::queues::queue_name;
use crate::{
    error::{ApiError, Problem},
    extract::JsonBody,
    state::AppState,
    views::{IntoStore, IntoWire},
};

/// Starts a bulk action on a queue's matching tasks and answers at once (202, with its
/// `Location`); this api process works it in slices of 500, each one short script call,
/// so a million matches never hold Redis up. Each match is acted on as its own route
/// would (a task whose state changed meanwhile is skipped).
#[utoipa::path(
    tag = "operations",
    params(("queue" = String, Path, pattern = "^[A-Za-z0-9_.-]{1,64}$", description = "Queue name")),
    request_body = wire::StartBulk,
    responses(
        (status = 202, description = "Started", body = wire::BulkJob),
        (status = 400, description = "Malformed queue name or body", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A state the action does not apply to, or an unknown kind", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Redis unavailable; see Retry-After", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/v1/queues/{queue}/bulk")]
pub(crate) async fn start_bulk(
    state: web::Data<AppState>,
    queue: web::Path<String>,
    JsonBody(body): JsonBody<wire::StartBulk>,
) -> Result<HttpResponse, ApiError> {
    let name = queue_name(&queue)?;
    let action: BulkAction = body.action.into_store();
    let task_state: TaskState = match body.state {
        Some(s) => s.parse().map_err(|e: errand_core::task::UnknownState| {
            ApiError::invalid("state", e.to_string())
        })?,
        None => action.states()[0],
    };
    if !action.states().contains(&task_state) {
        let names: Vec<&str> = action.states().iter().map(|s| s.as_str()).collect();
        return Err(ApiError::invalid(
            "state",
            format!("{} applies to {}", action.as_str(), names.join(", ")),
        ));
    }
    let kind = match body.kind {
        Some(k) => match state.kinds.current().resolve(&k) {
            Some(c) => Some(c.to_owned()),
            None => {
                return Err(ApiError::invalid(
                    "kind",
                    "no such kind (see GET /v1/kinds)",
                ));
            }
        },
        None => None,
    };
    if let Some(e) = &body.error_kind
        && (e.is_empty() || e.len() > 64)
    {
        return Err(ApiError::invalid("error_kind", "1 to 64 characters"));
    }
    let filter = BulkFilter {
        state: task_state,
        kind,
        error_kind: body.error_kind,
    };
    let job = begin(&state, name, action, filter).await?;
    let location = format!("/v1/queues/{name}/bulk/{}", job.id);
    Ok(HttpResponse::Accepted()
        .insert_header((header::LOCATION, location))
        .json(job.into_wire()))
}

/// Records a job and starts working it in this process (until the process stops: then it
/// is left `interrupted`). The API and the dashboard start jobs here.
pub(crate) async fn begin(
    state: &AppState,
    queue: &str,
    action: BulkAction,
    filter: BulkFilter,
) -> Result<BulkJob, errand_core::StoreError> {
    let job = state
        .store
        .create_bulk(queue, action, filter, Utc::now())
        .await?;
    tracing::info!(queue, job = %job.id, action = action.as_str(), "bulk action started");
    let (store, stop, started) = (state.store.clone(), state.stopping.clone(), job.clone());
    actix_web::rt::spawn(async move {
        let ended = store.run_bulk(started, stop).await;
        tracing::info!(queue = %ended.queue, job = %ended.id, status = %ended.status,
            done = ended.done, skipped = ended.skipped, "bulk action ended");
    });
    Ok(job)
}

/// A bulk action's progress (readable for a day after its last change).
#[utoipa::path(
    tag = "operations",
    params(
        ("queue" = String, Path, pattern = "^[A-Za-z0-9_.-]{1,64}$", description = "Queue name"),
        ("id" = String, Path, pattern = "^[A-Za-z0-9._:-]{1,128}$", description = "The bulk action's id"),
    ),
    responses(
        (status = 200, body = wire::BulkJob),
        (status = 400, description = "Malformed queue name or id", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such bulk action (or its record expired)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Redis unavailable; see Retry-After", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/v1/queues/{queue}/bulk/{id}")]
pub(crate) async fn get_bulk(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (queue, id) = path.into_inner();
    let name = queue_name(&queue)?;
    TaskId::parse(&id).map_err(|e| ApiError::BadRequest {
        field: Some("id".into()),
        detail: format!("path parameter `id`: {e}"),
    })?;
    match state.store.bulk(name, &id).await? {
        Some(job) => Ok(HttpResponse::Ok().json(job.into_wire())),
        None => Err(ApiError::BulkNotFound(id)),
    }
}
