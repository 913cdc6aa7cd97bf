//! Workflows (docs/workflows.md): submit a DAG of steps in one request, read it back with
//! each step's state and result, list, cancel, and watch it as events. Each step is checked
//! as a task submit would be, the graph as a whole, and nothing is written unless all of it
//! passes.

use actix_web::{HttpRequest, HttpResponse, get, http::header, post, web};
use chrono::{DateTime, Utc};
use errand_core::{
    store::WorkflowSubmitted,
    workflow::{
        Dependency, NewWorkflow, OnFailure, StepRecord, StepSpec, StepTask, WorkflowId,
        WorkflowRecord, WorkflowState, WorkflowSummary,
    },
};
use futures::stream;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::time::Instant;
use utoipa::ToSchema;

use super::{
    query::Query,
    tasks::{SubmitTask, prepare},
};
use crate::{
    error::{ApiError, Problem},
    extract::JsonBody,
    state::AppState,
    views::TaskStateView,
};

/// What a failed, cancelled or expired dependency does to the step after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum OnFailureView {
    /// The step fails without running (`dependency_failed`), and so does what must not run
    /// without it.
    Fail,
    /// The step runs anyway, with the dependency's error among its inputs.
    Run,
}

impl From<OnFailureView> for OnFailure {
    fn from(v: OnFailureView) -> Self {
        match v {
            OnFailureView::Fail => OnFailure::Fail,
            OnFailureView::Run => OnFailure::Run,
        }
    }
}

impl From<OnFailure> for OnFailureView {
    fn from(v: OnFailure) -> Self {
        match v {
            OnFailure::Fail => OnFailureView::Fail,
            OnFailure::Run => OnFailureView::Run,
        }
    }
}

/// A step it runs after: a name (the step's `on_failure` applies), or a name with its own
/// policy.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
pub(crate) enum AfterRequest {
    // The step's name (the step's `on_failure` applies).
    Name(String),
    // The step's name and what its failure does to this one. (Plain comments: a doc
    // comment would sit beside the variant's $ref in the document.)
    With(DependencyView),
}

/// One dependency and its failure policy.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DependencyView {
    /// The step it runs after.
    pub step: String,
    pub on_failure: OnFailureView,
}

/// One step: a task (the same fields as `POST /v1/tasks`, but no id: a step's task id is
/// `<workflow>.<step>`) and the steps it runs after.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "render", "kind": "noop", "after": ["fetch"], "on_failure": "fail"}))]
pub(crate) struct StepRequest {
    /// Unique in the workflow: `[A-Za-z0-9_-]`, 1 to 64.
    #[schema(pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub name: String,
    /// A kind from `GET /v1/kinds`.
    pub kind: String,
    /// The kind's input, validated against its schema now. The step's inputs (its
    /// dependencies' results) come beside it, not in it.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub payload: Option<Value>,
    /// Any queue (`[A-Za-z0-9_.-]`, at most 64); default `default`.
    #[schema(pattern = "^[A-Za-z0-9_.-]{1,64}$")]
    pub queue: Option<String>,
    #[schema(minimum = 1, maximum = 100)]
    pub max_attempts: Option<u32>,
    #[schema(minimum = 1, maximum = 604800)]
    pub timeout_secs: Option<u64>,
    #[schema(minimum = 1, maximum = 2592000)]
    pub result_ttl_secs: Option<u64>,
    #[schema(minimum = 1, maximum = 9)]
    pub priority: Option<u8>,
    #[schema(pattern = "^[A-Za-z0-9._:-]{1,128}$")]
    pub concurrency_key: Option<String>,
    /// The steps it runs after (none: it starts with the workflow).
    #[serde(default)]
    pub after: Vec<AfterRequest>,
    /// What a dependency named without its own policy does when it does not succeed.
    /// Required when `after` names any that way: there is no default.
    pub on_failure: Option<OnFailureView>,
    /// A map step: its result is `{"spawn": [{"kind", "payload", "queue"?, "max_attempts"?,
    /// "timeout_secs"?}...]}`; each becomes a step, and the steps after this one get their
    /// results as a list (at most `workflows.max_fan_out`).
    #[serde(default)]
    pub map: bool,
}

/// A workflow to run.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"id": "order-42", "steps": [
    {"name": "charge", "kind": "noop"},
    {"name": "ship", "kind": "noop", "after": ["charge"], "on_failure": "fail"}
]}))]
pub(crate) struct SubmitWorkflow {
    /// Client-chosen id (`[A-Za-z0-9_:-]`, 1 to 48): submitting it again answers the
    /// existing workflow (200) and writes nothing.
    #[schema(pattern = "^[A-Za-z0-9_:-]{1,48}$")]
    pub id: Option<String>,
    /// 1 to `workflows.max_steps` steps.
    pub steps: Vec<StepRequest>,
    /// How long the workflow stays readable once ended (1 to 2592000 s).
    #[schema(minimum = 1, maximum = 2592000)]
    pub result_ttl_secs: Option<u64>,
}

/// Where a workflow is.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum WorkflowStateView {
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl From<WorkflowState> for WorkflowStateView {
    fn from(s: WorkflowState) -> Self {
        match s {
            WorkflowState::Running => Self::Running,
            WorkflowState::Succeeded => Self::Succeeded,
            WorkflowState::Failed => Self::Failed,
            WorkflowState::Cancelled => Self::Cancelled,
        }
    }
}

/// Where a step is: `waiting` for dependencies, `creating` its task, `started` (its task
/// exists: see `task_state`), `mapping` (a map step's spawned steps run), or ended.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum StepStateView {
    Waiting,
    Creating,
    Started,
    Mapping,
    Succeeded,
    Failed,
    Cancelled,
}

impl From<errand_core::workflow::StepState> for StepStateView {
    fn from(s: errand_core::workflow::StepState) -> Self {
        use errand_core::workflow::StepState as S;
        match s {
            S::Waiting => Self::Waiting,
            S::Creating => Self::Creating,
            S::Started => Self::Started,
            S::Mapping => Self::Mapping,
            S::Succeeded => Self::Succeeded,
            S::Failed => Self::Failed,
            S::Cancelled => Self::Cancelled,
        }
    }
}

/// One step as it stands.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct StepView {
    pub name: String,
    /// Its task (`GET /v1/tasks/{task_id}`), once `started`.
    pub task_id: String,
    pub state: StepStateView,
    /// Its task's state, while `started`.
    #[schema(required = true)]
    pub task_state: Option<TaskStateView>,
    pub kind: String,
    pub queue: String,
    pub after: Vec<DependencyView>,
    pub map: bool,
    /// The map step that spawned it.
    #[schema(required = true)]
    pub parent: Option<String>,
    /// Its result once succeeded (a map step's: its spawned steps' results, in order).
    #[schema(required = true, value_type = Option<Object>)]
    pub result: Option<Value>,
    /// Its error once failed or cancelled (`dependency_failed`, `expired`, `invalid_spawn`,
    /// `spawned_failed`, or its task's).
    #[schema(required = true, value_type = Option<Object>)]
    pub error: Option<Value>,
    /// It ended without running (a dependency failed, or the workflow was cancelled).
    pub skipped: bool,
    /// A map step's spawned steps.
    pub spawned: usize,
}

impl From<StepRecord> for StepView {
    fn from(s: StepRecord) -> Self {
        let mut end = s.end.unwrap_or(Value::Null);
        Self {
            task_id: s.task_id,
            state: s.state.into(),
            task_state: s.task_state.map(Into::into),
            kind: s.task.kind,
            queue: s.task.queue,
            after: s
                .after
                .into_iter()
                .map(|d| DependencyView {
                    step: d.step,
                    on_failure: d.on_failure.into(),
                })
                .collect(),
            map: s.map,
            parent: s.parent,
            result: end.get_mut("result").map(Value::take),
            error: end.get_mut("error").map(Value::take),
            skipped: s.skipped,
            spawned: s.spawned,
            name: s.name,
        }
    }
}

/// A workflow as it stands.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct WorkflowView {
    pub id: String,
    pub state: WorkflowStateView,
    pub created_at: DateTime<Utc>,
    /// When its last step ended; null while running.
    #[schema(required = true)]
    pub ended_at: Option<DateTime<Utc>>,
    pub cancel_requested: bool,
    /// The submitted steps in order, each map step followed by what it spawned.
    pub steps: Vec<StepView>,
}

impl From<WorkflowRecord> for WorkflowView {
    fn from(r: WorkflowRecord) -> Self {
        Self {
            id: r.id,
            state: r.state.into(),
            created_at: r.created_at,
            ended_at: r.ended_at,
            cancel_requested: r.cancel_requested,
            steps: r.steps.into_iter().map(Into::into).collect(),
        }
    }
}

/// A workflow in a listing.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct WorkflowSummaryView {
    pub id: String,
    pub state: WorkflowStateView,
    pub created_at: DateTime<Utc>,
    #[schema(required = true)]
    pub ended_at: Option<DateTime<Utc>>,
    /// Steps, spawned ones included.
    pub steps: usize,
    pub ended_steps: usize,
}

impl From<WorkflowSummary> for WorkflowSummaryView {
    fn from(s: WorkflowSummary) -> Self {
        Self {
            id: s.id,
            state: s.state.into(),
            created_at: s.created_at,
            ended_at: s.ended_at,
            steps: s.steps,
            ended_steps: s.ended_steps,
        }
    }
}

/// One page of workflows, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct WorkflowPage {
    pub workflows: Vec<WorkflowSummaryView>,
    /// Pass as `cursor` for the next page; null when there is none.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

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
    w: SubmitWorkflow,
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
                AfterRequest::With(d) => Dependency {
                    step: d.step,
                    on_failure: d.on_failure.into(),
                },
                AfterRequest::Name(step) => Dependency {
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
                        .into(),
                },
            });
        }
        let task = prepare(
            state,
            &kinds,
            None,
            SubmitTask {
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
    request_body = SubmitWorkflow,
    responses(
        (status = 202, description = "Accepted; its first steps are queued", body = WorkflowView,
         headers(("Location" = String, description = "/v1/workflows/{id}"))),
        (status = 200, description = "A workflow with this id exists; nothing was written", body = WorkflowView,
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
    body: Result<JsonBody<SubmitWorkflow>, ApiError>,
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
        .json(WorkflowView::from(r)))
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
        (status = 200, body = WorkflowView),
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
        Some(r) => Ok(HttpResponse::Ok().json(WorkflowView::from(r))),
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
        (status = 200, body = WorkflowPage),
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
    Ok(HttpResponse::Ok().json(WorkflowPage {
        workflows: page.into_iter().map(Into::into).collect(),
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
        (status = 202, description = "Cancelling: the workflow as it stands", body = WorkflowView),
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
        Some(r) => Ok(HttpResponse::Accepted().json(WorkflowView::from(r))),
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
                let json = serde_json::to_string(&WorkflowView::from(r)).unwrap_or_default();
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
