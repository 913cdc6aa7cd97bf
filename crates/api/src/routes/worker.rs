//! The HTTP worker protocol (`/v1/worker/*`, key scope `worker`): what a worker in any
//! language needs, as plain HTTP in the OpenAPI document (docs/http-workers.md).
//!
//! - `register`: the kinds a worker runs go into the kind registry Rust workers use, and the
//!   worker into `/v1/workers`;
//! - `lease`: fetch-and-claim (`fetch.lua`, one script call per queue), long-polled;
//! - `heartbeat`: leases extended and progress written for many tasks at once; the answer
//!   says which were cancelled and which are no longer held;
//! - `complete`: attempts ended, each fenced by its claim token: a stale one is refused
//!   (409), a replay answered as the first was.
//!
//! The token handed out is opaque to the worker: the claim token with the attempt, the
//! task's attempt budget, queue and kind (`Lease`), so a report needs only id and token and
//! the api reads nothing before it writes.
//!
//! The bodies are errand-wire's (`http_worker`); `views` converts them to and from the store's.

use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, post, web};
use chrono::{DateTime, Utc};
use errand_core::{
    store::{AttemptEnd, Held, Outcome, ProgressReport, WorkerInfo, WorkerKind},
    task::{QueueName, TaskError, backoff, jitter},
};
use errand_kinds::is_kind_name;
use errand_wire::{
    CompleteAnswer, CompleteRequest, HeartbeatAnswer, HeartbeatRequest, LeaseRequest, Leased,
    Recorded, RegisterWorker, Registered, Report, ReportOutcome, ReportResult,
};
use serde_json::Value;

use crate::{
    error::{ApiError, Problem},
    extract::JsonBody,
    registry::{Kinds, compile},
    state::AppState,
    views::{IntoStore, IntoWire},
};

/// Where the problem types live (as `ApiError`'s).
const PROBLEMS: &str = "https://errand.dev/problems/";

/// Most tasks one lease, heartbeat or complete request may name.
const MAX_PER_REQUEST: usize = 1000;
/// Longest a lease may wait for tasks.
const MAX_WAIT_MS: u64 = 30_000;

/// What the opaque token carries: `<claim>~<attempt>~<max>~<queue>~<kind>` (none of the
/// parts can hold `~`).
struct Lease {
    claim: String,
    attempt: u32,
    max_attempts: u32,
    queue: String,
    kind: String,
}

impl Lease {
    fn token(&self) -> String {
        format!(
            "{}~{}~{}~{}~{}",
            self.claim, self.attempt, self.max_attempts, self.queue, self.kind
        )
    }

    fn parse(token: &str, field: &str) -> Result<Self, ApiError> {
        let bad = || ApiError::invalid(field, "not a token a lease gave");
        let mut p = token.splitn(5, '~');
        let (claim, attempt, max, queue, kind) = (p.next(), p.next(), p.next(), p.next(), p.next());
        let (Some(claim), Some(attempt), Some(max), Some(queue), Some(kind)) =
            (claim, attempt, max, queue, kind)
        else {
            return Err(bad());
        };
        let queue = QueueName::parse(queue).map_err(|_| bad())?;
        Ok(Self {
            claim: claim.to_owned(),
            attempt: attempt.parse().map_err(|_| bad())?,
            max_attempts: max.parse().map_err(|_| bad())?,
            queue: queue.to_string(),
            kind: kind.to_owned(),
        })
    }
}

fn heartbeat_every(state: &AppState) -> Duration {
    (state.settings.worker.lease() / 4).max(Duration::from_millis(250))
}

fn registration_ttl(state: &AppState) -> Duration {
    (heartbeat_every(state) * 4).max(Duration::from_secs(5))
}

/// The worker `name` names, while registered.
async fn registered(state: &AppState, name: &str) -> Result<WorkerInfo, ApiError> {
    state
        .store
        .worker(name)
        .await?
        .ok_or_else(|| ApiError::WorkerUnknown(name.to_owned()))
}

/// Registers a worker and the kinds it runs.
#[utoipa::path(tag = "workers", request_body = RegisterWorker, responses(
    (status = 200, body = Registered),
    (status = 400, description = "Malformed request (not JSON, or fields of the wrong type)", body = Problem, content_type = "application/problem+json"),
    (status = 415, description = "Body is not JSON", body = Problem, content_type = "application/problem+json"),
    (status = 422, description = "A field does not fit (a schema that does not compile, a name)", body = Problem, content_type = "application/problem+json"),
    (status = 503, description = "Redis unavailable", body = Problem, content_type = "application/problem+json"),
))]
#[post("/v1/worker/register")]
pub(crate) async fn register(
    state: web::Data<AppState>,
    req: HttpRequest,
    JsonBody(r): JsonBody<RegisterWorker>,
) -> Result<HttpResponse, ApiError> {
    let label = r.name.unwrap_or_else(|| "worker".into());
    // At most 32, so the id stays within 64 bytes (records store it; Redis keeps a record
    // with short fields as a listpack).
    if !is_kind_name(&label) || label.len() > 32 {
        return Err(ApiError::invalid("name", "1 to 32 of A-Z a-z 0-9 _ - . :"));
    }
    if r.queues.is_empty() {
        return Err(ApiError::invalid("queues", "give at least one queue"));
    }
    let mut queues = Vec::with_capacity(r.queues.len());
    for (i, q) in r.queues.iter().enumerate() {
        QueueName::parse(&q.name)
            .map_err(|e| ApiError::invalid(format!("queues[{i}].name"), e.to_string()))?;
        if !(1..=errand_core::settings::MAX_CONCURRENCY).contains(&q.concurrency) {
            return Err(ApiError::invalid(
                format!("queues[{i}].concurrency"),
                format!("must be 1 to {}", errand_core::settings::MAX_CONCURRENCY),
            ));
        }
        queues.push(q.into_store());
    }
    if r.kinds.is_empty() || r.kinds.len() > MAX_PER_REQUEST {
        return Err(ApiError::invalid("kinds", "give 1 to 1000 kinds"));
    }
    let mut defs = Vec::with_capacity(r.kinds.len());
    for (i, k) in r.kinds.into_iter().enumerate() {
        let def = k.into_store();
        for (n, name) in std::iter::once(&def.name).chain(&def.aliases).enumerate() {
            if !is_kind_name(name) {
                let field = if n == 0 {
                    format!("kinds[{i}].name")
                } else {
                    format!("kinds[{i}].aliases[{}]", n - 1)
                };
                return Err(ApiError::invalid(field, "1 to 64 of A-Z a-z 0-9 _ - . :"));
            }
        }
        for (what, schema) in [
            ("payload_schema", &def.payload_schema),
            ("result_schema", &def.result_schema),
        ] {
            compile(schema).map_err(|e| {
                ApiError::invalid(
                    format!("kinds[{i}].{what}"),
                    format!("not a usable JSON Schema: {e}"),
                )
            })?;
        }
        defs.push(def);
    }
    let name = format!("http:{label}:{}", ulid::Ulid::generate());
    state.store.register_kinds(&defs, &name, true).await?;
    let now = Utc::now();
    let me = WorkerInfo {
        name: name.clone(),
        host: req
            .peer_addr()
            .map(|a| a.ip().to_string())
            .unwrap_or_default(),
        pid: 0,
        queues,
        running: 0,
        running_ids: Vec::new(),
        stopping: false,
        started_at: now,
        last_seen: now,
        kinds: defs
            .iter()
            .map(|d| WorkerKind {
                name: d.name.clone(),
                digest: d.digest(),
            })
            .collect(),
    };
    state.store.heartbeat(&me, registration_ttl(&state)).await?;
    // The api's snapshot learns the kinds now, not at its next refresh.
    state.kinds.refresh(&state.store).await?;
    tracing::info!(worker = %name, kinds = ?defs.iter().map(|d| &d.name).collect::<Vec<_>>(), "HTTP worker registered");
    Ok(HttpResponse::Ok().json(Registered {
        worker: name,
        lease_secs: state.settings.worker.lease().as_secs_f64(),
        heartbeat_secs: heartbeat_every(&state).as_secs_f64(),
    }))
}

/// Leases up to `max` tasks of the worker's queues, waiting up to `wait_ms` for one.
#[utoipa::path(tag = "workers", request_body = LeaseRequest, responses(
    (status = 200, body = Leased),
    (status = 404, description = "The worker is not registered (its registration lapsed): register again", body = Problem, content_type = "application/problem+json"),
    (status = 400, description = "Malformed request (not JSON, or fields of the wrong type)", body = Problem, content_type = "application/problem+json"),
    (status = 415, description = "Body is not JSON", body = Problem, content_type = "application/problem+json"),
    (status = 422, description = "A field does not fit", body = Problem, content_type = "application/problem+json"),
    (status = 503, description = "Redis unavailable", body = Problem, content_type = "application/problem+json"),
))]
#[post("/v1/worker/lease")]
pub(crate) async fn lease(
    state: web::Data<AppState>,
    JsonBody(r): JsonBody<LeaseRequest>,
) -> Result<HttpResponse, ApiError> {
    let max = r.max.unwrap_or(1);
    if !(1..=MAX_PER_REQUEST).contains(&max) {
        return Err(ApiError::invalid("max", "must be 1 to 1000"));
    }
    let wait = r.wait_ms.unwrap_or(0);
    if wait > MAX_WAIT_MS {
        return Err(ApiError::invalid("wait_ms", "must be 0 to 30000"));
    }
    let me = registered(&state, &r.worker).await?;
    let queues: Vec<String> = match r.queues {
        Some(qs) => {
            let mut out = Vec::with_capacity(qs.len());
            for (i, q) in qs.iter().enumerate() {
                let q = QueueName::parse(q)
                    .map_err(|e| ApiError::invalid(format!("queues[{i}]"), e.to_string()))?;
                out.push(q.to_string());
            }
            out
        }
        None => me.queues.iter().map(|q| q.name.clone()).collect(),
    };
    if queues.is_empty() {
        return Err(ApiError::invalid("queues", "give at least one queue"));
    }
    let lease_for = state.settings.worker.lease();
    let deadline = tokio::time::Instant::now() + Duration::from_millis(wait);
    let mut pause = Duration::from_millis(5);
    let mut tasks = Vec::new();
    // actix-web goes on running a handler whose client went away, so a long-poll of a
    // worker killed mid-wait would claim tasks nobody receives: they would wait out a
    // lease and burn an attempt. A worker that has missed two heartbeats may be gone: its
    // long-poll ends (an empty answer, harmless to a live worker, which leases again).
    let beat = heartbeat_every(&state);
    let mut checked = tokio::time::Instant::now();
    loop {
        if checked.elapsed() >= beat / 2 {
            checked = tokio::time::Instant::now();
            let seen = registered(&state, &r.worker).await?.last_seen;
            let silent = (Utc::now() - seen).to_std().unwrap_or_default();
            if silent > beat * 2 {
                tracing::info!(worker = %r.worker, silent_ms = silent.as_millis() as u64,
                    "long-poll ended early: the worker has missed its heartbeats");
                break;
            }
        }
        // The earliest a rate-limited task of these queues may go (docs/flow-control.md).
        let mut soonest: Option<Duration> = None;
        for q in &queues {
            if tasks.len() >= max {
                break;
            }
            let now = Utc::now();
            let token = ulid::Ulid::generate().to_string();
            let fetched = state
                .store
                .fetch(q, max - tasks.len(), &r.worker, lease_for, &token, now)
                .await?;
            if let Some(d) = fetched.retry_in {
                soonest = Some(soonest.map_or(d, |s| s.min(d)));
            }
            let (run, foreign): (Vec<_>, Vec<_>) = fetched
                .claimed
                .into_iter()
                .partition(|c| me.kinds.iter().any(|k| k.name == c.kind));
            unknown_kinds(&state, &me, foreign).await?;
            let expires = now + chrono::Duration::from_std(lease_for).unwrap_or_default();
            tasks.extend(run.into_iter().map(|mut c| {
                // The worker gets the lease's token in place of the bare claim token.
                let token = Lease {
                    claim: std::mem::take(&mut c.token),
                    attempt: c.attempt,
                    max_attempts: c.max_attempts,
                    queue: c.queue.clone(),
                    kind: c.kind.clone(),
                }
                .token();
                (c, token, expires).into_wire()
            }));
        }
        let now = tokio::time::Instant::now();
        if !tasks.is_empty() || now >= deadline || state.stopping.is_cancelled() {
            break;
        }
        tokio::select! {
            () = tokio::time::sleep(pause.min(soonest.unwrap_or(pause)).min(deadline - now)) => {}
            () = state.stopping.cancelled() => {}
        }
        pause = (pause * 2).min(Duration::from_millis(100));
    }
    crate::metrics::leased(tasks.len());
    Ok(HttpResponse::Ok().json(Leased { tasks }))
}

/// Claimed tasks of kinds the worker did not register fail that attempt retryably, as a
/// Rust worker's do: another attempt may land on a worker that runs the kind.
async fn unknown_kinds(
    state: &AppState,
    me: &WorkerInfo,
    claimed: Vec<errand_core::store::Claimed>,
) -> Result<(), ApiError> {
    if claimed.is_empty() {
        return Ok(());
    }
    let now = Utc::now();
    let runs: Vec<&str> = me.kinds.iter().map(|k| k.name.as_str()).collect();
    let ends: Vec<AttemptEnd> = claimed
        .into_iter()
        .map(|c| {
            let error = TaskError {
                kind: "unknown_kind".into(),
                message: format!(
                    "worker {} does not run task kind `{}` (it runs {}); GET /v1/kinds says which queues the workers that do serve",
                    me.name,
                    c.kind,
                    runs.join(", ")
                ),
            };
            AttemptEnd {
                outcome: failure(error, true, None, c.attempt, c.max_attempts, now),
                id: c.id,
                queue: c.queue,
                token: c.token,
                attempt: c.attempt,
                progress: None,
            }
        })
        .collect();
    state.store.finish_many(&ends, now).await?;
    Ok(())
}

/// A failed attempt's outcome: retried while it may be and attempts remain.
fn failure(
    error: TaskError,
    retryable: bool,
    retry_in: Option<f64>,
    attempt: u32,
    max_attempts: u32,
    now: DateTime<Utc>,
) -> Outcome {
    if retryable && attempt < max_attempts {
        let delay = match retry_in {
            Some(s) => chrono::Duration::milliseconds((s * 1000.0) as i64),
            None => backoff(attempt, jitter()),
        };
        Outcome::Retry {
            error,
            delay,
            at: now + delay,
        }
    } else {
        Outcome::Failed(error)
    }
}

/// Extends the leases of the tasks a worker holds, records their progress, and keeps the
/// worker registered.
#[utoipa::path(tag = "workers", request_body = HeartbeatRequest, responses(
    (status = 200, body = HeartbeatAnswer),
    (status = 404, description = "The worker is not registered: register again", body = Problem, content_type = "application/problem+json"),
    (status = 400, description = "Malformed request (not JSON, or fields of the wrong type)", body = Problem, content_type = "application/problem+json"),
    (status = 415, description = "Body is not JSON", body = Problem, content_type = "application/problem+json"),
    (status = 422, description = "A field does not fit", body = Problem, content_type = "application/problem+json"),
    (status = 503, description = "Redis unavailable", body = Problem, content_type = "application/problem+json"),
))]
#[post("/v1/worker/heartbeat")]
pub(crate) async fn heartbeat(
    state: web::Data<AppState>,
    JsonBody(r): JsonBody<HeartbeatRequest>,
) -> Result<HttpResponse, ApiError> {
    if r.tasks.len() > MAX_PER_REQUEST {
        return Err(ApiError::invalid("tasks", "at most 1000 tasks"));
    }
    let mut me = registered(&state, &r.worker).await?;
    let mut held = Vec::with_capacity(r.tasks.len());
    let mut progress = Vec::new();
    for (i, t) in r.tasks.iter().enumerate() {
        let l = Lease::parse(&t.token, &format!("tasks[{i}].token"))?;
        if let Some(p) = &t.progress {
            if p.percent > 100 {
                return Err(ApiError::invalid(
                    format!("tasks[{i}].progress.percent"),
                    "must be 0 to 100",
                ));
            }
            progress.push(ProgressReport {
                id: t.id.clone(),
                queue: l.queue.clone(),
                token: l.claim.clone(),
                json: serde_json::to_string(&p.into_store())
                    .map_err(|e| ApiError::Internal(e.into()))?,
            });
        }
        held.push(Held {
            queue: l.queue,
            id: t.id.clone(),
            token: l.claim,
        });
    }
    let lease_for = state.settings.worker.lease();
    let now = Utc::now();
    let renewed = state.store.renew_leases(&held, lease_for).await?;
    if !progress.is_empty() {
        state.store.progress_many(&progress, now).await?;
    }
    me.running = held.len();
    me.running_ids = held.iter().take(100).map(|h| h.id.clone()).collect();
    me.last_seen = now;
    state.store.heartbeat(&me, registration_ttl(&state)).await?;
    Ok(HttpResponse::Ok().json(HeartbeatAnswer {
        cancel: renewed.cancel,
        lost: renewed.lost.into_iter().map(|h| h.id).collect(),
        lease_expires_at: now + chrono::Duration::from_std(lease_for).unwrap_or_default(),
    }))
}

/// What a report asks to record, or why it cannot be.
fn attempt_end(
    state: &AppState,
    kinds: &crate::registry::Snapshot,
    id: String,
    r: Report,
    at: &str,
    now: DateTime<Utc>,
) -> Result<AttemptEnd, ApiError> {
    let l = Lease::parse(&r.token, &format!("{at}token"))?;
    let outcome = match r.outcome {
        ReportOutcome::Succeeded => {
            let result = r.result.unwrap_or(Value::Null);
            let size = result.to_string().len();
            if size > state.settings.tasks.max_result_bytes {
                Outcome::Failed(TaskError {
                    kind: "result_too_large".into(),
                    message: format!(
                        "result is {size} bytes; the limit is {} (tasks.max_result_bytes)",
                        state.settings.tasks.max_result_bytes
                    ),
                })
            } else {
                if let Some(kind) = kinds.get(&l.kind) {
                    Kinds::check_result(kind, &result)
                        .map_err(|e| ApiError::invalid(format!("{at}{}", e.field), e.message))?;
                }
                Outcome::Succeeded(result)
            }
        }
        ReportOutcome::Failed => {
            let e = r.error.ok_or_else(|| {
                ApiError::invalid(
                    format!("{at}error"),
                    "a failed report says why: {kind, message}",
                )
            })?;
            if let Some(s) = r.retry_in_secs
                && !(s.is_finite() && (0.0..=604_800.0).contains(&s))
            {
                return Err(ApiError::invalid(
                    format!("{at}retry_in_secs"),
                    "must be 0 to 604800",
                ));
            }
            failure(
                e.into_store(),
                r.retryable.unwrap_or(true),
                r.retry_in_secs,
                l.attempt,
                l.max_attempts,
                now,
            )
        }
        ReportOutcome::Cancelled => Outcome::Cancelled(TaskError {
            kind: "cancelled".into(),
            message: r.message.unwrap_or_else(|| "cancelled".into()),
        }),
    };
    Ok(AttemptEnd {
        id,
        queue: l.queue,
        token: l.claim,
        attempt: l.attempt,
        outcome,
        progress: None,
    })
}

/// Ends attempts: each report is recorded (200), refused because its token no longer holds
/// the task (409), or refused as it stands (422).
#[utoipa::path(tag = "workers", request_body = CompleteRequest, responses(
    (status = 200, body = CompleteAnswer),
    (status = 404, description = "The worker is not registered: register again", body = Problem, content_type = "application/problem+json"),
    (status = 400, description = "Malformed request (not JSON, or fields of the wrong type)", body = Problem, content_type = "application/problem+json"),
    (status = 415, description = "Body is not JSON", body = Problem, content_type = "application/problem+json"),
    (status = 422, description = "The request does not fit (no reports, too many)", body = Problem, content_type = "application/problem+json"),
    (status = 503, description = "Redis unavailable", body = Problem, content_type = "application/problem+json"),
))]
#[post("/v1/worker/complete")]
pub(crate) async fn complete(
    state: web::Data<AppState>,
    JsonBody(r): JsonBody<CompleteRequest>,
) -> Result<HttpResponse, ApiError> {
    if r.reports.is_empty() || r.reports.len() > MAX_PER_REQUEST {
        return Err(ApiError::invalid("reports", "give 1 to 1000 reports"));
    }
    tracing::debug!(worker = %r.worker, reports = r.reports.len(), "reports");
    let now = Utc::now();
    let kinds = state.kinds.current();
    let mut results: Vec<Option<ReportResult>> = Vec::with_capacity(r.reports.len());
    let mut ends = Vec::new();
    let mut at_index = Vec::new();
    let mut outcomes = Vec::with_capacity(r.reports.len());
    for (i, rep) in r.reports.into_iter().enumerate() {
        let Some(id) = rep.id.clone() else {
            return Err(ApiError::invalid(format!("reports[{i}].id"), "missing"));
        };
        outcomes.push(rep.outcome.as_str());
        match attempt_end(
            &state,
            &kinds,
            id.clone(),
            rep,
            &format!("reports[{i}]."),
            now,
        ) {
            Ok(end) => {
                results.push(None);
                ends.push(end);
                at_index.push(i);
            }
            Err(ApiError::Invalid { field, detail }) => results.push(Some(ReportResult {
                id,
                status: 422,
                kind: Some(format!("{PROBLEMS}invalid-field")),
                field: Some(field),
                detail: Some(detail),
            })),
            Err(e) => return Err(e),
        }
    }
    if !ends.is_empty() {
        let recorded = state.store.finish_many(&ends, now).await?;
        step_ends(&state, ends.iter().zip(&recorded));
        for ((end, ok), i) in ends.iter().zip(recorded).zip(at_index) {
            results[i] = Some(if ok {
                ReportResult {
                    id: end.id.clone(),
                    status: 200,
                    kind: None,
                    field: None,
                    detail: None,
                }
            } else {
                ReportResult {
                    id: end.id.clone(),
                    status: 409,
                    kind: Some(format!("{PROBLEMS}stale-claim")),
                    field: None,
                    detail: Some(stale(&end.id)),
                }
            });
        }
    }
    let results: Vec<ReportResult> = results.into_iter().flatten().collect();
    for (r, outcome) in results.iter().zip(outcomes) {
        crate::metrics::reported(outcome, r.status);
    }
    Ok(HttpResponse::Ok().json(CompleteAnswer { results }))
}

fn stale(id: &str) -> String {
    format!(
        "this token no longer holds task `{id}` (its lease lapsed and another attempt took it, or it was given back, cancelled or retried): the report is not recorded"
    )
}

/// Ends one attempt.
#[utoipa::path(tag = "workers", request_body = Report,
    params(("id" = String, Path, description = "The task id")),
    responses(
    (status = 200, body = Recorded),
    (status = 409, description = "The token no longer holds the task: not recorded", body = Problem, content_type = "application/problem+json"),
    (status = 400, description = "Malformed request (not JSON, or fields of the wrong type)", body = Problem, content_type = "application/problem+json"),
    (status = 415, description = "Body is not JSON", body = Problem, content_type = "application/problem+json"),
    (status = 422, description = "The report does not fit (a result off its schema)", body = Problem, content_type = "application/problem+json"),
    (status = 503, description = "Redis unavailable", body = Problem, content_type = "application/problem+json"),
))]
#[post("/v1/worker/tasks/{id}/complete")]
pub(crate) async fn complete_one(
    state: web::Data<AppState>,
    path: web::Path<String>,
    JsonBody(r): JsonBody<Report>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let now = Utc::now();
    let kinds = state.kinds.current();
    let outcome = r.outcome.as_str();
    let end = attempt_end(&state, &kinds, id.clone(), r, "", now).inspect_err(|e| {
        if matches!(e, ApiError::Invalid { .. }) {
            crate::metrics::reported(outcome, 422);
        }
    })?;
    if state
        .store
        .finish_many(std::slice::from_ref(&end), now)
        .await?
        .first()
        == Some(&true)
    {
        step_ends(&state, [(&end, &true)]);
        crate::metrics::reported(outcome, 200);
        Ok(HttpResponse::Ok().json(Recorded { recorded: true }))
    } else {
        crate::metrics::reported(outcome, 409);
        Err(ApiError::StaleClaim(stale(&id)))
    }
}

/// Tells the advancer of recorded ends that may be workflow steps' (a step's task id is
/// `<workflow>.<step>`; a task of its own with a dot in its id costs one empty look).
fn step_ends<'a>(state: &AppState, ends: impl IntoIterator<Item = (&'a AttemptEnd, &'a bool)>) {
    for (end, ok) in ends {
        if *ok && end.id.contains('.') {
            state.advancer.step_ended(&end.queue);
        }
    }
}
