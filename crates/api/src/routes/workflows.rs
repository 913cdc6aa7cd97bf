//! Workflows (docs/workflows.md): submit a DAG of steps in one request, read it back with
//! each step's state and result, list, cancel, and watch it as events. Each step is checked
//! as a task submit would be, the graph as a whole, and nothing is written unless all of it
//! passes.

use actix_web::{HttpRequest, HttpResponse, get, http::header, post, web};
use chrono::{DateTime, Utc};
use errand_core::{
    store::WorkflowSubmitted,
    workflow::{Dependency, NewWorkflow, StepSpec, StepTask, WorkflowId, WorkflowRecord},
};
use errand_wire as wire;
use futures::stream;
use tokio::time::Instant;

use super::{query::Query, tasks::prepare};
use crate::{
    error::{ApiError, Problem},
    extract::JsonBody,
    state::AppState,
    views::{IntoStore, IntoWire},
};

/// Moves a step's field error under `steps[i]`.
fn under(i: usize, e: ApiError) -> ApiError {
    match e {
        ApiError::Invalid { field, detail } => ApiError::Invalid {
            field: format!("steps[{i}].{field}"),
            detail,
        },
        ApiError::TooLarge(why) => ApiError::TooLarge(format!("steps[{i}]: {why}")),
        other => other,
    }
}

/// Checks a whole submit: every step as a task submit, then the graph.
pub(crate) async fn prepare_workflow(
    state: &AppState,
    w: wire::SubmitWorkflow,
    now: DateTime<Utc>,
) -> Result<NewWorkflow, ApiError> {
    let id = match w.id {
        Some(id) => WorkflowId::parse(&id).map_err(|e| ApiError::invalid("id", e.to_string()))?,
        None => WorkflowId::generate(),
    };
    let max_steps = state.settings.workflows.max_steps;
    if w.steps.len() > max_steps {
        return Err(ApiError::invalid(
            "steps",
            format!(
                "{} steps; the limit is {max_steps} (workflows.max_steps)",
                w.steps.len()
            ),
        ));
    }
    let result_ttl_secs = match w.result_ttl_secs {
        Some(t) if !errand_core::task::bounds::RESULT_TTL_SECS.contains(&t) => {
            return Err(ApiError::invalid(
                "result_ttl_secs",
                "must be between 1 and 2592000",
            ));
        }
        Some(t) => t,
        None => state.settings.workflows.default_result_ttl_secs,
    };
    let kinds = state
        .kinds
        .knowing(&state.store, w.steps.iter().map(|s| s.kind.as_str()))
        .await?;
    let mut steps = Vec::with_capacity(w.steps.len());
    for (i, s) in w.steps.into_iter().enumerate() {
        let mut after = Vec::with_capacity(s.after.len());
        for (j, a) in s.after.into_iter().enumerate() {
            after.push(match a {
                wire::After::With(d) => Dependency {
                    step: d.step,
                    on_failure: d.on_failure.into_store(),
                },
                wire::After::Name(step) => Dependency {
                    step,
                    on_failure: s
                        .on_failure
                        .ok_or_else(|| {
                            ApiError::invalid(
                                format!("steps[{i}].on_failure"),
                                format!(
                                    "after[{j}] names a dependency without its own policy: choose what its failure does to this step, \"fail\" or \"run\""
                                ),
                            )
                        })?
                        .into_store(),
                },
            });
        }
        let task = prepare(
            state,
            &kinds,
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
                priority: s.priority,
                concurrency_key: s.concurrency_key,
            },
            now,
        )
        .map_err(|e| under(i, e))?;
        steps.push(StepSpec {
            name: s.name,
            task: StepTask {
                kind: task.kind,
                queue: task.queue,
                payload: task.payload,
                max_attempts: task.max_attempts,
                timeout_secs: task.timeout_secs,
                // A step's record never outlives its workflow: once the workflow is gone, so
                // are its steps' tasks, and its id may be used again from scratch.
                result_ttl_secs: task.result_ttl_secs.min(result_ttl_secs),
                priority: task.flow.priority,
                concurrency_key: task.flow.concurrency_key,
            },
            after,
            map: s.map,
        });
    }
    let wf = NewWorkflow {
        id,
        steps,
        max_fan_out: state.settings.workflows.max_fan_out as u32,
        result_ttl_secs,
        traceparent: errand_core::telemetry::current_traceparent(),
    };
    wf.check(max_steps)
        .map_err(|e| ApiError::invalid(e.field, e.message))?;
    Ok(wf)
}

/// Submit a workflow: steps (tasks of any kind, in any queue) and the steps each runs
/// after. Checked whole (each step as a task submit, no unknown step, no cycle, a failure
/// policy for every dependency) before anything is written; its first steps are queued at
/// once.
#[utoipa::path(
    tag = "workflows",
    request_body = wire::SubmitWorkflow,
    responses(
        (status = 202, description = "Accepted; its first steps are queued", body = wire::Workflow,
         headers(("Location" = String, description = "/v1/workflows/{id}"))),
        (status = 200, description = "A workflow with this id exists; nothing was written", body = wire::Workflow,
         headers(("Location" = String, description = "/v1/workflows/{id}"))),
        (status = 400, description = "Malformed request", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body or a payload too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid field (named: `steps[2].after[0]`)", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Submit rate limit (api.rate_limit) reached; see Retry-After", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Redis unavailable; see Retry-After", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/v1/workflows")]
pub(crate) async fn submit_workflow(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: Result<JsonBody<wire::SubmitWorkflow>, ApiError>,
) -> Result<HttpResponse, ApiError> {
    crate::access::charge(&state, &req, 1)?;
    let JsonBody(submit) = body?;
    let wf = prepare_workflow(&state, submit, Utc::now()).await?;
    let steps = wf.steps.len();
    let submitted =
        errand_core::telemetry::redis_call("workflow_submit", state.store.submit_workflow(wf))
            .await?;
    let (mut resp, r) = match submitted {
        WorkflowSubmitted::Created(r) => {
            metrics::counter!("errand_workflows_submitted_total").increment(1);
            tracing::info!(workflow_id = %r.id, steps, "workflow accepted");
            (HttpResponse::Accepted(), r)
        }
        WorkflowSubmitted::Existing(r) => (HttpResponse::Ok(), r),
    };
    Ok(resp
        .insert_header((header::LOCATION, format!("/v1/workflows/{}", r.id)))
        .json(r.into_wire()))
}

fn parse_workflow_id(raw: &str) -> Result<String, ApiError> {
    WorkflowId::parse(raw)
        .map(String::from)
        .map_err(|e| ApiError::BadRequest {
            field: Some("id".into()),
            detail: e.to_string(),
        })
}

/// A workflow with each step's state, its task's state while it runs, and its result or
/// error once ended.
#[utoipa::path(
    tag = "workflows",
    params(("id" = String, Path, description = "Workflow id", pattern = "^[A-Za-z0-9_:-]{1,48}$")),
    responses(
        (status = 200, body = wire::Workflow),
        (status = 400, description = "Malformed id", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such workflow", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Redis unavailable; see Retry-After", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/v1/workflows/{id}")]
pub(crate) async fn get_workflow(
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_workflow_id(&id)?;
    match state.store.workflow(&id).await? {
        Some(r) => Ok(HttpResponse::Ok().json(r.into_wire())),
        None => Err(ApiError::WorkflowNotFound(id)),
    }
}

/// Lists workflows, newest first.
#[utoipa::path(
    tag = "workflows",
    params(
        ("limit" = Option<u64>, Query, minimum = 1, maximum = 200, description = "Page size, 1 to 200 (default 50)"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
    ),
    responses(
        (status = 200, body = wire::WorkflowPage),
        (status = 400, description = "Bad query parameter", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Redis unavailable; see Retry-After", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/v1/workflows")]
pub(crate) async fn list_workflows(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let mut q = Query::parse(req.query_string())?;
    let limit = q.uint("limit", 1, 200)?.unwrap_or(50) as usize;
    let cursor = q.str("cursor");
    let after = cursor
        .as_deref()
        .map(|c| {
            c.split_once(':')
                .and_then(|(ms, id)| Some((ms.parse::<i64>().ok()?, id)))
                .ok_or_else(|| crate::routes::query::bad("cursor", "not a cursor from next_cursor"))
        })
        .transpose()?;
    q.finish()?;
    let (page, next) = state.store.workflows(after, limit).await?;
    let next_cursor = next.map(|(ms, id)| format!("{ms}:{id}"));
    Ok(HttpResponse::Ok().json(wire::WorkflowPage {
        workflows: page.into_iter().map(IntoWire::into_wire).collect(),
        next_cursor,
    }))
}

/// Cancels a workflow: every step that has not started is cancelled, every running step's
/// task is asked to stop; the workflow ends `cancelled` once they have. An ended workflow
/// is 409.
#[utoipa::path(
    tag = "workflows",
    params(("id" = String, Path, description = "Workflow id", pattern = "^[A-Za-z0-9_:-]{1,48}$")),
    responses(
        (status = 202, description = "Cancelling: the workflow as it stands", body = wire::Workflow),
        (status = 400, description = "Malformed id", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such workflow", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Already ended", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Redis unavailable; see Retry-After", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/v1/workflows/{id}/cancel")]
pub(crate) async fn cancel_workflow(
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_workflow_id(&id)?;
    let Some(before) = state.store.workflow(&id).await? else {
        return Err(ApiError::WorkflowNotFound(id));
    };
    if before.state.is_terminal() {
        return Err(ApiError::Conflict(format!(
            "workflow `{id}` already ended {}",
            before.state.as_str()
        )));
    }
    cancel(&state, &before).await?;
    tracing::info!(workflow_id = %id, "workflow cancel requested");
    match state.store.workflow(&id).await? {
        Some(r) => Ok(HttpResponse::Accepted().json(r.into_wire())),
        None => Err(ApiError::WorkflowNotFound(id)),
    }
}

/// Cancels workflow `before` (as read just now), and has the cancelled steps' ends reach
/// it now rather than at the next upkeep tick. Shared with the dashboard.
pub(crate) async fn cancel(
    state: &AppState,
    before: &WorkflowRecord,
) -> Result<(), errand_core::StoreError> {
    state.store.cancel_workflow(&before.id).await?;
    let mut queues: Vec<&str> = before.steps.iter().map(|s| s.task.queue.as_str()).collect();
    queues.sort_unstable();
    queues.dedup();
    for q in queues {
        state.advancer.step_ended(q);
    }
    Ok(())
}

use super::watch::{FALLBACK, KEEPALIVE, event_stream};

/// Server-sent events for one workflow: `event: workflow` with the whole workflow now, then
/// again on every change of a step or of the workflow; the stream ends once it has ended.
#[utoipa::path(
    tag = "workflows",
    params(("id" = String, Path, description = "Workflow id", pattern = "^[A-Za-z0-9_:-]{1,48}$")),
    responses(
        (status = 200, description = "An event stream: `event: workflow` with a WorkflowView, on every change until it ends", content_type = "text/event-stream", body = String),
        (status = 400, description = "Malformed id", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such workflow", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Redis unavailable; see Retry-After", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/v1/workflows/{id}/events")]
pub(crate) async fn workflow_events(
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_workflow_id(&id)?;
    let watch = state.workflow_events.watch(&id);
    let Some(first) = state.store.workflow(&id).await? else {
        return Err(ApiError::WorkflowNotFound(id));
    };
    struct S {
        state: web::Data<AppState>,
        id: String,
        watch: crate::events::Watch,
        last: String,
        pending: Option<WorkflowRecord>,
        done: bool,
        keepalive: Instant,
    }
    let s = S {
        state,
        id,
        watch,
        last: String::new(),
        pending: Some(first),
        done: false,
        keepalive: Instant::now() + KEEPALIVE,
    };
    let body = stream::unfold(s, |mut s| async move {
        if s.done {
            return None;
        }
        loop {
            if let Some(r) = s.pending.take() {
                s.done = r.state.is_terminal();
                let json = serde_json::to_string(&r.into_wire()).unwrap_or_default();
                if json != s.last {
                    s.last = json;
                    s.keepalive = Instant::now() + KEEPALIVE;
                    let frame = format!("event: workflow\ndata: {}\n\n", s.last);
                    return Some((
                        Ok::<_, std::convert::Infallible>(web::Bytes::from(frame)),
                        s,
                    ));
                }
                if s.done {
                    return None;
                }
            }
            tokio::select! {
                _ = s.watch.rx.recv() => {}
                _ = tokio::time::sleep(FALLBACK) => {}
                _ = s.state.stopping.cancelled() => return None,
                _ = tokio::time::sleep_until(s.keepalive) => {
                    s.keepalive = Instant::now() + KEEPALIVE;
                    return Some((Ok(web::Bytes::from_static(b": keep-alive\n\n")), s));
                }
            }
            match s.state.store.workflow(&s.id).await {
                Ok(Some(r)) => s.pending = Some(r),
                Ok(None) => {
                    s.done = true;
                    return Some((Ok(web::Bytes::from_static(b"event: gone\ndata: {}\n\n")), s));
                }
                Err(e) => tracing::debug!(error = %e, "workflow sse re-read failed"),
            }
        }
    });
    Ok(event_stream(body))
}
