//! A queue's flow-control limits, read and set at runtime (`admin` scope to set): its rate,
//! its kinds' rates, and its running tasks per concurrency key (docs/flow-control.md).
//! Every worker's next fetch enforces what is set here.

use std::collections::BTreeMap;

use actix_web::{HttpResponse, get, put, web};
use errand_core::store::{HeldBack, QueueLimits, Rate};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::queues::queue_name;
use crate::{
    error::{ApiError, Problem},
    extract::JsonBody,
    state::AppState,
};

/// Bounds of a rate and a key limit (the schema states the same numbers).
const MAX_COUNT: u32 = 1_000_000;
const MAX_PERIOD_MS: u64 = 86_400_000;
const MAX_BURST: u32 = 1_000_000;
const MAX_PER_KEY: u32 = 100_000;

/// `count` tasks per `period_ms` across every worker, `burst` of them at once after an
/// idle spell (GCRA: in any window of `w` ms at most `burst + w * count / period_ms` start).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"count": 500, "period_ms": 1000, "burst": 50}))]
pub(crate) struct RateView {
    /// Tasks per period (1 to 1000000).
    #[schema(minimum = 1, maximum = 1000000)]
    pub count: u32,
    /// The period in ms (1 to 86400000, a day).
    #[schema(minimum = 1, maximum = 86400000)]
    pub period_ms: u64,
    /// Most at once after an idle spell (1 to 1000000); default 1.
    #[serde(default = "one")]
    #[schema(minimum = 1, maximum = 1000000)]
    pub burst: u32,
}

fn one() -> u32 {
    1
}

/// A queue's limits to set. A `PUT` replaces them all: a limit left out (or null) is
/// removed.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"rate": {"count": 500, "period_ms": 1000, "burst": 50}, "kinds": {"thumbnail": {"count": 10, "period_ms": 1000, "burst": 1}}, "per_key": 2}))]
pub(crate) struct SetLimits {
    /// The whole queue's rate; left out or null for none.
    pub rate: Option<RateView>,
    /// Per kind (registered names or aliases), on top of the queue's rate.
    #[serde(default)]
    pub kinds: BTreeMap<String, RateView>,
    /// Most running tasks per concurrency key (1 to 100000); left out or null for no limit.
    #[schema(minimum = 1, maximum = 100000)]
    pub per_key: Option<u32>,
}

/// Every limit of a queue.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub(crate) struct LimitsView {
    /// The whole queue's rate; null for none.
    #[schema(required = true)]
    pub rate: Option<RateView>,
    /// Per kind (registered names), on top of the queue's rate.
    pub kinds: BTreeMap<String, RateView>,
    /// Most running tasks per concurrency key (1 to 100000); null for no limit.
    #[schema(required = true, minimum = 1, maximum = 100000)]
    pub per_key: Option<u32>,
}

/// A concurrency key and how many of its tasks wait for it.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct KeyWaiting {
    #[schema(example = "customer-7")]
    pub key: String,
    pub waiting: u64,
}

/// What the limits hold back now: tasks still `queued`, none of their attempts used.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct HeldView {
    /// Tasks whose kind is out of tokens, waiting for the next.
    pub throttled: u64,
    /// Tasks waiting for a running task of their concurrency key to end.
    pub waiting_for_key: u64,
    /// The keys with the most waiting tasks (at most 20).
    pub keys: Vec<KeyWaiting>,
}

impl From<HeldBack> for HeldView {
    fn from(h: HeldBack) -> Self {
        Self {
            throttled: h.throttled,
            waiting_for_key: h.waiting_for_key,
            keys: h
                .keys
                .into_iter()
                .map(|(key, waiting)| KeyWaiting { key, waiting })
                .collect(),
        }
    }
}

/// A queue's limits and what they hold back.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct QueueLimitsView {
    #[schema(example = "default")]
    pub queue: String,
    pub limits: LimitsView,
    pub held: HeldView,
}

impl From<Rate> for RateView {
    fn from(r: Rate) -> Self {
        Self {
            count: r.count,
            period_ms: r.period_ms,
            burst: r.burst,
        }
    }
}

impl From<QueueLimits> for LimitsView {
    fn from(l: QueueLimits) -> Self {
        Self {
            rate: l.rate.map(Into::into),
            kinds: l.kinds.into_iter().map(|(k, r)| (k, r.into())).collect(),
            per_key: l.per_key,
        }
    }
}

fn rate(field: &str, r: RateView) -> Result<Rate, ApiError> {
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

async fn answer(state: &AppState, queue: &str) -> Result<QueueLimitsView, ApiError> {
    let (limits, held) = futures::try_join!(state.store.limits(queue), state.store.held(queue))?;
    Ok(QueueLimitsView {
        queue: queue.to_owned(),
        limits: limits.into(),
        held: held.into(),
    })
}

/// A queue's limits and what they hold back now (none set: all null).
#[utoipa::path(
    tag = "operations",
    params(("queue" = String, Path, pattern = "^[A-Za-z0-9_.-]{1,64}$", description = "Queue name")),
    responses(
        (status = 200, body = QueueLimitsView),
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
    request_body = SetLimits,
    responses(
        (status = 200, description = "Set", body = QueueLimitsView),
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
    JsonBody(body): JsonBody<SetLimits>,
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
