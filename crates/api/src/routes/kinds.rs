//! The kind registry over HTTP: list the kinds workers registered, and drop one nothing
//! runs any more.

use actix_web::{HttpResponse, delete, get, web};

use errand_wire as wire;

use crate::{error::ApiError, state::AppState, views::IntoWire};

/// The kind registry: every kind a worker registered (and errand's built-in kinds), with
/// its aliases, idempotency, payload and result JSON Schema, and the live workers that run
/// it.
#[utoipa::path(tag = "tasks", responses(
    (status = 200, body = Vec<wire::KindInfo>),
    (status = 503, description = "Redis unavailable", body = crate::error::Problem, content_type = "application/problem+json"),
))]
#[get("/v1/kinds")]
pub(crate) async fn list_kinds(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let s = state.kinds.refresh(&state.store).await?;
    let kinds: Vec<wire::KindInfo> = s.kinds.values().map(|k| (&**k).into_wire()).collect();
    Ok(HttpResponse::Ok().json(kinds))
}

/// Removes a kind from the registry: submits of it are refused from then on. Refused with
/// 409 while a live worker runs it (its heartbeat would register it again); tasks of it
/// already queued stay queued.
#[utoipa::path(tag = "tasks",
    params(("name" = String, Path, description = "The kind's canonical name")),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "No such kind", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "A live worker runs it", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 503, description = "Redis unavailable", body = crate::error::Problem, content_type = "application/problem+json"),
))]
#[delete("/v1/kinds/{name}")]
pub(crate) async fn delete_kind(
    state: web::Data<AppState>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let s = state.kinds.refresh(&state.store).await?;
    if let Some(k) = s.kinds.get(name.as_str())
        && !k.current.workers.is_empty()
    {
        return Err(ApiError::KindInUse(format!(
            "kind `{name}` is run by {} live worker(s) ({}); stop them first",
            k.current.workers.len(),
            k.current
                .workers
                .iter()
                .map(|w| w.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    if !state.store.remove_kind(&name).await? {
        return Err(ApiError::KindNotFound(name.into_inner()));
    }
    state.kinds.refresh(&state.store).await?;
    tracing::info!(kind = %name, "kind removed from the registry");
    Ok(HttpResponse::NoContent().finish())
}
