//! Bulk actions on a queue's tasks (`admin` scope to start): retry, cancel or delete every
//! task matching a state, a kind and an error kind, worked in bounded slices by this api
//! process, with its progress readable from any (docs/flow-control.md).

use actix_web::{HttpResponse, get, http::header, post, web};
use chrono::{DateTime, Utc};
use errand_core::{
    store::{BulkAction, BulkFilter, BulkJob},
    task::{TaskId, TaskState},
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::queues::queue_name;
use crate::{
    error::{ApiError, Problem},
    extract::JsonBody,
    state::AppState,
    views::TaskStateView,
};

/// What a bulk action does to each match.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum BulkActionView {
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

impl From<BulkActionView> for BulkAction {
    fn from(a: BulkActionView) -> Self {
        match a {
            BulkActionView::Retry => Self::Retry,
            BulkActionView::Cancel => Self::Cancel,
            BulkActionView::Delete => Self::Delete,
        }
    }
}

impl From<BulkAction> for BulkActionView {
    fn from(a: BulkAction) -> Self {
        match a {
            BulkAction::Retry => Self::Retry,
            BulkAction::Cancel => Self::Cancel,
            BulkAction::Delete => Self::Delete,
        }
    }
}

/// A bulk action to start.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"action": "retry", "state": "failed", "error_kind": "timeout"}))]
pub(crate) struct StartBulk {
    pub action: BulkActionView,
    /// The state of the tasks to act on; the action's default when left out.
    #[schema(value_type = Option<TaskStateView>)]
    pub state: Option<String>,
    /// Only tasks of this kind (canonical name or alias).
    pub kind: Option<String>,
    /// Only tasks whose last error has this kind (`timeout`, `worker_lost`, or one a kind
    /// defines).
    #[schema(example = "timeout")]
    pub error_kind: Option<String>,
}

/// A bulk action and how far it got.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct BulkView {
    #[schema(example = "01a23b10-5e2a-7c31-9f44-0d7a3b9c1e22")]
    pub id: String,
    #[schema(example = "default")]
    pub queue: String,
    pub action: BulkActionView,
    pub state: TaskStateView,
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

impl From<BulkJob> for BulkView {
    fn from(j: BulkJob) -> Self {
        Self {
            id: j.id,
            queue: j.queue,
            action: j.action.into(),
            state: j.filter.state.into(),
            kind: j.filter.kind,
            error_kind: j.filter.error_kind,
            status: j.status,
            total: j.total,
            examined: j.examined,
            matched: j.matched,
            done: j.done,
            skipped: j.skipped,
            started_at: j.started_at,
            finished_at: j.finished_at,
            error: j.error,
        }
    }
}

/// Starts a bulk action on a queue's matching tasks and answers at once (202, with its
/// `Location`); this api process works it in slices of 500, each one short script call,
/// so a million matches never hold Redis up. Each match is acted on as its own route
/// would (a task whose state changed meanwhile is skipped).
#[utoipa::path(
    tag = "operations",
    params(("queue" = String, Path, pattern = "^[A-Za-z0-9_.-]{1,64}$", description = "Queue name")),
    request_body = StartBulk,
    responses(
        (status = 202, description = "Started", body = BulkView),
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
    JsonBody(body): JsonBody<StartBulk>,
) -> Result<HttpResponse, ApiError> {
    let name = queue_name(&queue)?;
    let action: BulkAction = body.action.into();
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
        .json(BulkView::from(job)))
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
        (status = 200, body = BulkView),
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
        Some(job) => Ok(HttpResponse::Ok().json(BulkView::from(job))),
        None => Err(ApiError::BulkNotFound(id)),
    }
}
