//! A queue's flow-control limits, read and set at runtime (`admin` scope to set): its rate,
//! its kinds' rates, and its running tasks per concurrency key (docs/flow-control.md).
//! Every worker's next fetch enforces what is set here.

use std::collections::BTreeMap;

use actix_web::{HttpResponse, get, put, web};
use errand_core::store::{QueueLimits, Rate};
use errand_wire as wire;

use super::queues::queue_name;
use crate::{
    error::{ApiError, Problem},
    extract::JsonBody,
    state::AppState,
    views::IntoWire,
};

/// Bounds of a rate and a key limit (the schema states the same numbers).
const MAX_COUNT: u32 = 1_000_000;
const MAX_PERIOD_MS: u64 = 86_400_000;
const MAX_BURST: u32 = 1_000_000;
const MAX_PER_KEY: u32 = 100_000;

fn rate(field: &str, r: wire::Rate) -> Result<Rate, ApiError> {
    if !(1..=MAX_COUNT).contains(&r.count) {
        return Err(ApiError::invalid(
            format!("{field}.count"),
            format!("must be 1 to {MAX_COUNT}"),
        ));
    }
    if !(1..=MAX_PERIOD_MS).contains(&r.period_ms) {
        return Err(ApiError::invalid(
            format!("{field}.period_ms"),
            format!("must be 1 to {MAX_PERIOD_MS} (a day)"),
        ));
    }
    if !(1..=MAX_BURST).contains(&r.burst) {
        return Err(ApiError::invalid(
            format!("{field}.burst"),
            format!("must be 1 to {MAX_BURST}"),
        ));
    }
    Ok(Rate {
        count: r.count,
        period_ms: r.period_ms,
        burst: r.burst,
    })
}

async fn answer(state: &AppState, queue: &str) -> Result<wire::QueueLimits, ApiError> {
    let (limits, held) = futures::try_join!(state.store.limits(queue), state.store.held(queue))?;
    Ok(wire::QueueLimits {
        queue: queue.to_owned(),
        limits: limits.into_wire(),
        held: held.into_wire(),
    })
}

/// A queue's limits and what they hold back now (none set: all null).
#[utoipa::path(
    tag = "operations",
    params(("queue" = String, Path, pattern = "^[A-Za-z0-9_.-]{1,64}$", description = "Queue name")),
    responses(
        (status = 200, body = wire::QueueLimits),
        (status = 400, description = "Malformed queue name", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Redis unavailable; see Retry-After", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/v1/queues/{queue}/limits")]
pub(crate) async fn get_limits(
    state: web::Data<AppState>,
    queue: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let name = queue_name(&queue)?;
    Ok(HttpResponse::Ok().json(answer(&state, name).await?))
}

/// Sets a queue's limits, replacing all of them; every worker's next fetch holds to them.
/// Tasks a raised or removed limit frees go at once; a lowered one holds back only tasks
/// that have not started.
#[utoipa::path(
    tag = "operations",
    params(("queue" = String, Path, pattern = "^[A-Za-z0-9_.-]{1,64}$", description = "Queue name")),
    request_body = wire::SetLimits,
    responses(
        (status = 200, description = "Set", body = wire::QueueLimits),
        (status = 400, description = "Malformed queue name or body", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A limit does not fit, or names an unknown kind", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Redis unavailable; see Retry-After", body = Problem, content_type = "application/problem+json"),
    )
)]
#[put("/v1/queues/{queue}/limits")]
pub(crate) async fn set_limits(
    state: web::Data<AppState>,
    queue: web::Path<String>,
    JsonBody(body): JsonBody<wire::SetLimits>,
) -> Result<HttpResponse, ApiError> {
    let name = queue_name(&queue)?;
    let kinds = state.kinds.current();
    let mut limits = QueueLimits {
        rate: body.rate.map(|r| rate("rate", r)).transpose()?,
        kinds: BTreeMap::new(),
        per_key: None,
    };
    for (k, r) in body.kinds {
        let field = format!("kinds.{k}");
        let Some(canonical) = kinds.resolve(&k) else {
            return Err(ApiError::invalid(field, "no such kind (see GET /v1/kinds)"));
        };
        limits.kinds.insert(canonical.to_owned(), rate(&field, r)?);
    }
    if let Some(n) = body.per_key {
        if !(1..=MAX_PER_KEY).contains(&n) {
            return Err(ApiError::invalid(
                "per_key",
                format!("must be 1 to {MAX_PER_KEY}"),
            ));
        }
        limits.per_key = Some(n);
    }
    state.store.set_limits(name, &limits).await?;
    tracing::info!(queue = name, ?limits, "queue limits set");
    Ok(HttpResponse::Ok().json(answer(&state, name).await?))
}
