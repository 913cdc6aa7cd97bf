//! Blocking work on the async executor, and the fix. actix-web runs one single-threaded
//! tokio runtime per HTTP worker, so a handler that blocks its thread stalls every other
//! request and task on that worker. Each route spawns a probe (a task whose timer is due
//! 10 ms later) on the handler's own runtime just before the work starts, and reports how
//! late the probe woke: about the whole blocked time when the work runs on the executor
//! thread, about nothing when it runs on `spawn_blocking`'s thread pool.

use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, get};
use serde::Serialize;
use tokio::{task::JoinHandle, time::Instant};
use utoipa::ToSchema;

use crate::{
    error::ApiError,
    routes::query::{self, Query},
};

/// When the probe is due, after it is spawned.
const PROBE_TIMER: Duration = Duration::from_millis(10);
const DEFAULT_MS: u64 = 500;
const MAX_MS: u64 = 10_000;

/// What the blocking work is.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Work {
    /// `std::thread::sleep`: the chapter's `time.sleep` in an async handler.
    Sleep,
    /// Recursive fibonacci, repeated until the time is spent: the chapter's CPU-bound case.
    Cpu,
}

/// How the work ran and how late the probe woke.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ProbeReport {
    /// `blocking` (on the executor thread) or `offloaded` (`spawn_blocking`).
    #[schema(example = "blocking")]
    pub mode: &'static str,
    pub work: Work,
    /// How long the work ran.
    #[schema(example = 500)]
    pub work_ms: u64,
    /// The probe's timer: it should have woken this many ms after it was spawned.
    #[schema(example = 10)]
    pub probe_timer_ms: u64,
    /// How much later than its timer the probe actually ran: the time its thread was not
    /// available to anything else.
    #[schema(example = 490)]
    pub probe_delay_ms: u64,
    /// The handler's whole time.
    #[schema(example = 501)]
    pub total_ms: u64,
    /// For `cpu` work: how many fibonacci(20) computations fit in the time.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub cpu_rounds: Option<u64>,
}

/// The query both routes take, as the OpenAPI document describes it (`params` reads it,
/// rejecting any other parameter).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[expect(
    dead_code,
    reason = "only described here: `params` reads the query itself"
)]
struct ProbeQuery {
    /// How long the work runs, 1 to 10000 ms (default 500)
    #[param(minimum = 1, maximum = 10000, nullable = false)]
    ms: Option<u64>,
    /// `sleep` (default) or `cpu`
    #[param(nullable = false)]
    work: Option<Work>,
}

fn params(req: &HttpRequest) -> Result<(Work, Duration), ApiError> {
    let mut q = Query::parse(req.query_string())?;
    let ms = q.uint("ms", 1, MAX_MS)?.unwrap_or(DEFAULT_MS);
    let work = match q.str("work").as_deref() {
        None | Some("sleep") => Work::Sleep,
        Some("cpu") => Work::Cpu,
        Some(_) => return Err(query::bad("work", "must be `sleep` or `cpu`")),
    };
    q.finish()?;
    Ok((work, Duration::from_millis(ms)))
}

/// A task on the caller's runtime that is due `PROBE_TIMER` from now and returns how late
/// it ran. The due time is fixed here, not when the task is first polled, so a probe that
/// cannot even start while the thread is blocked still measures the whole delay.
fn spawn_probe() -> JoinHandle<Duration> {
    let due = Instant::now() + PROBE_TIMER;
    tokio::spawn(async move {
        tokio::time::sleep_until(due).await;
        due.elapsed()
    })
}

fn fib(n: u32) -> u64 {
    if n < 2 {
        u64::from(n)
    } else {
        fib(n - 1) + fib(n - 2)
    }
}

/// Blocks the calling thread for `dur`.
fn run(work: Work, dur: Duration) -> Option<u64> {
    match work {
        Work::Sleep => {
            std::thread::sleep(dur);
            None
        }
        Work::Cpu => {
            let start = std::time::Instant::now();
            let mut rounds = 0;
            while start.elapsed() < dur {
                std::hint::black_box(fib(std::hint::black_box(20)));
                rounds += 1;
            }
            Some(rounds)
        }
    }
}

/// One measured request: its work, the clock, and the probe spawned just before the work
/// starts; both routes run the same measurement and differ only in where the work runs.
struct Measured {
    work: Work,
    dur: Duration,
    t0: Instant,
    probe: JoinHandle<Duration>,
}

impl Measured {
    /// Reads the query, then starts the clock and the probe.
    fn start(req: &HttpRequest) -> Result<Self, ApiError> {
        let (work, dur) = params(req)?;
        Ok(Self {
            work,
            dur,
            t0: Instant::now(),
            probe: spawn_probe(),
        })
    }

    async fn report(
        self,
        mode: &'static str,
        cpu_rounds: Option<u64>,
    ) -> Result<HttpResponse, ApiError> {
        let late = self
            .probe
            .await
            .map_err(|e| ApiError::Internal(anyhow::anyhow!("probe task failed: {e}")))?;
        Ok(HttpResponse::Ok().json(ProbeReport {
            mode,
            work: self.work,
            work_ms: self.dur.as_millis() as u64,
            probe_timer_ms: PROBE_TIMER.as_millis() as u64,
            probe_delay_ms: late.as_millis() as u64,
            total_ms: self.t0.elapsed().as_millis() as u64,
            cpu_rounds,
        }))
    }
}

/// The mistake, on purpose: the work runs right in the async handler, so this HTTP worker's
/// thread can do nothing else meanwhile; the probe's delay is about `ms`. Other requests
/// that landed on the same worker wait just as long.
#[utoipa::path(
    tag = "tutorial",
    context_path = "/async",
    params(ProbeQuery),
    responses(
        (status = 200, body = ProbeReport),
        (status = 400, description = "Bad query parameter", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[get("/blocking")]
pub(crate) async fn blocking(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let m = Measured::start(&req)?;
    let rounds = run(m.work, m.dur);
    m.report("blocking", rounds).await
}

/// The fix: the same work on tokio's blocking thread pool (`spawn_blocking`). The handler
/// awaits it like any I/O, the worker thread stays free, and the probe wakes on time.
#[utoipa::path(
    tag = "tutorial",
    context_path = "/async",
    params(ProbeQuery),
    responses(
        (status = 200, body = ProbeReport),
        (status = 400, description = "Bad query parameter", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[get("/offloaded")]
pub(crate) async fn offloaded(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let m = Measured::start(&req)?;
    let (work, dur) = (m.work, m.dur);
    let rounds = tokio::task::spawn_blocking(move || run(work, dur))
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("blocking work failed: {e}")))?;
    m.report("offloaded", rounds).await
}
