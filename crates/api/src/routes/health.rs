//! Liveness (`/healthz`, never touches Redis) and readiness (`/readyz`, Redis must answer
//! a read and take a write).

use actix_web::{HttpResponse, get, web};
use serde::Serialize;
use utoipa::ToSchema;

use crate::{error::ApiError, state::AppState};

#[derive(Serialize, ToSchema)]
pub(crate) struct Health {
    #[schema(example = "ok")]
    pub status: &'static str,
}

/// Liveness: the process is up. Never touches Redis.
#[utoipa::path(tag = "health", responses((status = 200, body = Health)))]
#[get("/healthz")]
pub(crate) async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Health { status: "ok" })
}

/// Readiness: the process can serve, Redis included: Redis must answer a read and take a
/// write (a 10 s key of its own), so a Redis that is reachable but out of memory, loading,
/// a read-only replica or stuck in a script makes this 503, with the cause as the type.
#[utoipa::path(tag = "health", responses(
    (status = 200, body = Health),
    (status = 503, description = "Redis unreachable or refusing work; the problem type names why (store-unavailable, store-out-of-memory, store-loading, store-read-only, store-busy, store-master-down, …)", body = crate::error::Problem, content_type = "application/problem+json"),
))]
#[get("/readyz")]
pub(crate) async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    state.store.ping().await?;
    let key = format!("{}:readyz", state.settings.redis.key_prefix);
    let mut conn = state.store.connection();
    let probe: Result<(Option<String>, ()), redis::RedisError> = redis::pipe()
        .get(&key)
        .set_options(
            &key,
            chrono::Utc::now().timestamp_millis(),
            redis::SetOptions::default().with_expiration(redis::SetExpiry::PX(10_000)),
        )
        .query_async(&mut conn)
        .await;
    probe?;
    Ok(HttpResponse::Ok().json(Health { status: "ok" }))
}
