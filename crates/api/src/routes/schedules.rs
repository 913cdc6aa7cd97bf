//! Periodic schedules (`/v1/schedules`): a cron expression in a time zone that submits a
//! task of one kind at every tick. Worker processes fire them; see docs/schedules.md.

use actix_web::{HttpRequest, HttpResponse, delete, get, http::header, post, web};
use chrono::Utc;
use errand_core::{
    schedule::{CronSpec, Misfire, NewSchedule, ScheduleId, ScheduleTemplate},
    store::ScheduleCreated,
};
use errand_wire as wire;

use super::{
    query::{self, Query},
    tasks::prepare,
};
use crate::{
    error::{ApiError, Problem},
    extract::JsonBody,
    registry::Snapshot,
    state::AppState,
    views::IntoWire,
};

/// Validates a schedule and applies defaults; the task part goes through the same checks
/// as a submit, so a schedule can never fire a task a submit would refuse.
fn define(
    state: &AppState,
    kinds: &Snapshot,
    s: wire::CreateSchedule,
) -> Result<(NewSchedule, CronSpec), ApiError> {
    let id = match s.id {
        Some(id) => ScheduleId::parse(&id).map_err(|e| ApiError::invalid("id", e.to_string()))?,
        None => ScheduleId::generate(),
    };
    let cron = s.cron.trim().to_owned();
    let timezone = s.timezone.unwrap_or_else(|| "UTC".into());
    let spec =
        CronSpec::parse(&cron, &timezone).map_err(|e| ApiError::invalid(e.field, e.message))?;
    let misfire = s
        .misfire
        .map(|m| m.parse::<Misfire>())
        .transpose()
        .map_err(|e| ApiError::invalid("misfire", e))?
        .unwrap_or_default();
    let task = prepare(
        state,
        kinds,
        None,
        wire::SubmitTask {
            kind: s.kind,
            payload: s.payload,
            queue: s.queue,
            id: None,
            max_attempts: s.max_attempts,
            timeout_secs: s.timeout_secs,
            delay_secs: None,
            run_at: None,
            result_ttl_secs: s.result_ttl_secs,
            callback: None,
            unique_key: None,
            unique_for_secs: None,
            priority: None,
            concurrency_key: None,
        },
        Utc::now(),
    )?;
    let def = NewSchedule {
        id,
        cron,
        timezone,
        misfire,
        enabled: s.enabled.unwrap_or(true),
        task: ScheduleTemplate {
            kind: task.kind,
            payload: task.payload,
            queue: task.queue,
            max_attempts: task.max_attempts,
            timeout_secs: task.timeout_secs,
            result_ttl_secs: task.result_ttl_secs,
        },
    };
    Ok((def, spec))
}

fn location(id: &ScheduleId) -> (header::HeaderName, String) {
    (header::LOCATION, format!("/v1/schedules/{id}"))
}

fn parse_id(raw: &str) -> Result<ScheduleId, ApiError> {
    ScheduleId::parse(raw).map_err(|e| ApiError::BadRequest {
        field: Some("id".into()),
        detail: e.to_string(),
    })
}

/// Creates a schedule. Its first tick is the first match of `cron` after now.
#[utoipa::path(
    tag = "schedules",
    request_body = wire::CreateSchedule,
    responses(
        (status = 201, description = "Created", body = wire::Schedule,
         headers(("Location" = String, description = "/v1/schedules/{id}"))),
        (status = 200, description = "A schedule with this id and the same definition exists; nothing changed", body = wire::Schedule,
         headers(("Location" = String, description = "/v1/schedules/{id}"))),
        (status = 400, description = "Malformed request", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A schedule with this id exists, defined differently", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body or payload too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid field: cron, timezone, kind, payload…", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Redis unavailable; see Retry-After", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/v1/schedules")]
pub(crate) async fn create_schedule(
    state: web::Data<AppState>,
    JsonBody(body): JsonBody<wire::CreateSchedule>,
) -> Result<HttpResponse, ApiError> {
    let kinds = state
        .kinds
        .knowing(&state.store, std::iter::once(body.kind.as_str()))
        .await?;
    let (def, spec) = define(&state, &kinds, body)?;
    let now = Utc::now();
    let first = def.enabled.then(|| spec.next_after(now)).flatten();
    match state.store.create_schedule(&def, first, now).await? {
        ScheduleCreated::Created(s) => {
            tracing::info!(schedule_id = %s.id, cron = %s.cron, timezone = %s.timezone, kind = %s.kind, "schedule created");
            Ok(HttpResponse::Created()
                .insert_header(location(&s.id))
                .json((&s).into_wire()))
        }
        ScheduleCreated::Existing(s) if s.definition() == def => Ok(HttpResponse::Ok()
            .insert_header(location(&s.id))
            .json((&s).into_wire())),
        ScheduleCreated::Existing(s) => Err(ApiError::ScheduleExists(format!(
            "schedule `{}` exists with a different definition; delete it first to redefine it",
            s.id
        ))),
    }
}

/// Lists schedules in id order.
#[utoipa::path(
    tag = "schedules",
    params(
        ("limit" = Option<u64>, Query, minimum = 1, maximum = 500, description = "Page size, 1 to 500 (default 100)"),
        ("cursor" = Option<wire::ScheduleId>, Query, description = "`next_cursor` of the previous page"),
    ),
    responses(
        (status = 200, body = wire::SchedulePage),
        (status = 400, description = "Bad query parameter", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Redis unavailable; see Retry-After", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/v1/schedules")]
pub(crate) async fn list_schedules(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let mut q = Query::parse(req.query_string())?;
    let limit = q.uint("limit", 1, 500)?.unwrap_or(100) as usize;
    let after = q
        .str("cursor")
        .map(|c| {
            ScheduleId::parse(&c).map_err(|_| query::bad("cursor", "not a cursor from next_cursor"))
        })
        .transpose()?;
    q.finish()?;
    let page = state.store.list_schedules(after.as_ref(), limit).await?;
    Ok(HttpResponse::Ok().json(wire::SchedulePage {
        schedules: page.schedules.iter().map(IntoWire::into_wire).collect(),
        next_cursor: page.next.map(String::from),
    }))
}

/// A schedule: its definition, the tick it waits for and the task it fired last.
#[utoipa::path(
    tag = "schedules",
    params(("id" = wire::ScheduleId, Path, description = "Schedule id")),
    responses(
        (status = 200, body = wire::Schedule),
        (status = 400, description = "Malformed id", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such schedule", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Redis unavailable; see Retry-After", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/v1/schedules/{id}")]
pub(crate) async fn get_schedule(
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&id)?;
    match state.store.schedule(&id).await? {
        Some(s) => Ok(HttpResponse::Ok().json((&s).into_wire())),
        None => Err(ApiError::ScheduleNotFound(id.to_string())),
    }
}

/// Deletes a schedule: it fires no more. Tasks it already fired are untouched.
#[utoipa::path(
    tag = "schedules",
    params(("id" = wire::ScheduleId, Path, description = "Schedule id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "Malformed id", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such schedule", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Redis unavailable; see Retry-After", body = Problem, content_type = "application/problem+json"),
    )
)]
#[delete("/v1/schedules/{id}")]
pub(crate) async fn delete_schedule(
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&id)?;
    if state.store.delete_schedule(&id).await? {
        tracing::info!(schedule_id = %id, "schedule deleted");
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(ApiError::ScheduleNotFound(id.to_string()))
    }
}

async fn set_enabled(state: &AppState, raw: &str, enabled: bool) -> Result<HttpResponse, ApiError> {
    let id = parse_id(raw)?;
    match state
        .store
        .set_schedule_enabled(&id, enabled, Utc::now())
        .await?
    {
        Some(s) => {
            tracing::info!(schedule_id = %id, enabled, "schedule toggled");
            Ok(HttpResponse::Ok().json((&s).into_wire()))
        }
        None => Err(ApiError::ScheduleNotFound(id.to_string())),
    }
}

/// Enables a schedule. It fires from its next tick after now: ticks that passed while it
/// was disabled are not run. Enabling an enabled schedule changes nothing.
#[utoipa::path(
    tag = "schedules",
    params(("id" = wire::ScheduleId, Path, description = "Schedule id")),
    responses(
        (status = 200, description = "Enabled", body = wire::Schedule),
        (status = 400, description = "Malformed id", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such schedule", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Redis unavailable; see Retry-After", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/v1/schedules/{id}/enable")]
pub(crate) async fn enable_schedule(
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    set_enabled(&state, &id, true).await
}

/// Disables a schedule: it keeps its definition and history and fires nothing.
#[utoipa::path(
    tag = "schedules",
    params(("id" = wire::ScheduleId, Path, description = "Schedule id")),
    responses(
        (status = 200, description = "Disabled", body = wire::Schedule),
        (status = 400, description = "Malformed id", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such schedule", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Redis unavailable; see Retry-After", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/v1/schedules/{id}/disable")]
pub(crate) async fn disable_schedule(
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    set_enabled(&state, &id, false).await
}
