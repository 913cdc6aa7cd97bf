//! Sequential awaits vs concurrent ones. Each "I/O operation" is a `tokio::time::sleep`,
//! which, like a real socket read, parks the task and lets the runtime run others: three
//! awaited in turn take the sum of their times, three under `tokio::join!` take about the
//! longest one, all on one thread (the chapter's `asyncio.gather`, which is coroutine
//! concurrency on one event loop, not threads).

use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, get};
use serde::Serialize;
use tokio::time::Instant;
use utoipa::ToSchema;

use crate::{error::ApiError, routes::query::Query};

/// The chapter's three independent lookups.
const STEPS: [&str; 3] = ["fetch_user", "fetch_orders", "fetch_recommendations"];
const DEFAULT_DELAY_MS: u64 = 1000;
const MAX_DELAY_MS: u64 = 10_000;

/// One simulated I/O operation, timed from the start of the request.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Step {
    #[schema(example = "fetch_orders")]
    pub name: &'static str,
    /// When it started, in ms since the request started.
    #[schema(example = 1001)]
    pub started_ms: u64,
    /// When it finished, in ms since the request started.
    #[schema(example = 2002)]
    pub finished_ms: u64,
}

/// How three operations of `delay_ms` each ran, and how long the whole took.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Timeline {
    /// `sequential` (awaited in turn) or `concurrent` (`tokio::join!`).
    #[schema(example = "sequential")]
    pub mode: &'static str,
    #[schema(example = 1000)]
    pub delay_ms: u64,
    pub steps: Vec<Step>,
    #[schema(example = 3003)]
    pub total_ms: u64,
}

fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

async fn io_operation(name: &'static str, delay: Duration, t0: Instant) -> Step {
    let started_ms = ms(t0.elapsed());
    tokio::time::sleep(delay).await;
    Step {
        name,
        started_ms,
        finished_ms: ms(t0.elapsed()),
    }
}

/// The query both timed routes take, as the OpenAPI document describes it (`delay` reads
/// it, rejecting any other parameter).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[expect(
    dead_code,
    reason = "only described here: `delay` reads the query itself"
)]
struct DelayQuery {
    /// Each operation's duration, 0 to 10000 ms (default 1000)
    #[param(minimum = 0, maximum = 10000, nullable = false)]
    delay_ms: Option<u64>,
}

fn delay(req: &HttpRequest) -> Result<Duration, ApiError> {
    let mut q = Query::parse(req.query_string())?;
    let delay_ms = q
        .uint("delay_ms", 0, MAX_DELAY_MS)?
        .unwrap_or(DEFAULT_DELAY_MS);
    q.finish()?;
    Ok(Duration::from_millis(delay_ms))
}

/// The answer of both routes, timed to now.
fn timeline(mode: &'static str, delay: Duration, t0: Instant, steps: Vec<Step>) -> HttpResponse {
    HttpResponse::Ok().json(Timeline {
        mode,
        delay_ms: ms(delay),
        steps,
        total_ms: ms(t0.elapsed()),
    })
}

/// Three independent operations awaited one after another: the total is their sum
/// (~3 s at the default 1 s each). Right for dependent steps, wasteful for independent ones.
#[utoipa::path(
    tag = "tutorial",
    context_path = "/async",
    params(DelayQuery),
    responses(
        (status = 200, body = Timeline),
        (status = 400, description = "Bad query parameter", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[get("/await-sequential")]
pub(crate) async fn await_sequential(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let delay = delay(&req)?;
    let t0 = Instant::now();
    let mut steps = Vec::with_capacity(STEPS.len());
    for name in STEPS {
        steps.push(io_operation(name, delay, t0).await);
    }
    Ok(timeline("sequential", delay, t0, steps))
}

/// The same three operations under `tokio::join!`: all start at once and the total is
/// about the longest one (~1 s). One task, one thread: concurrency, not parallelism.
#[utoipa::path(
    tag = "tutorial",
    context_path = "/async",
    params(DelayQuery),
    responses(
        (status = 200, body = Timeline),
        (status = 400, description = "Bad query parameter", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[get("/gather-concurrent")]
pub(crate) async fn gather_concurrent(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let delay = delay(&req)?;
    let t0 = Instant::now();
    let (a, b, c) = tokio::join!(
        io_operation(STEPS[0], delay, t0),
        io_operation(STEPS[1], delay, t0),
        io_operation(STEPS[2], delay, t0),
    );
    Ok(timeline("concurrent", delay, t0, vec![a, b, c]))
}

/// The answer of `/async/basic`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Basic {
    #[schema(example = "Hello from an async endpoint")]
    pub message: &'static str,
    /// How long the handler awaited before answering.
    #[schema(example = 100)]
    pub awaited_ms: u64,
}

const BASIC_AWAIT: Duration = Duration::from_millis(100);

/// The simplest async endpoint: one short await, then a message. While it waits, the
/// worker thread serves other requests.
#[utoipa::path(
    tag = "tutorial",
    context_path = "/async",
    responses(
        (status = 200, body = Basic),
        (status = 400, description = "Unknown query parameter", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[get("/basic")]
pub(crate) async fn basic(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Query::parse(req.query_string())?.finish()?;
    tokio::time::sleep(BASIC_AWAIT).await;
    Ok(HttpResponse::Ok().json(Basic {
        message: "Hello from an async endpoint",
        awaited_ms: ms(BASIC_AWAIT),
    }))
}
