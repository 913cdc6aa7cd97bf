//! Tasks: submit one (`POST /v1/tasks`), read one (with `?wait=` long-poll), and list them.
//! `prepare` is every submit route's check of a task (batch, schedules, workflow steps).

use std::{ops::RangeInclusive, time::Duration};

use actix_web::{HttpRequest, HttpResponse, get, http::header, post, web};
use chrono::{DateTime, Utc};
use errand_core::{
    store::{Cursor, Flow, ListQuery, NewTask, Submitted, Unique},
    task::{Callback, QueueName, TaskId, TaskState, bounds},
};
use errand_wire as wire;
use serde_json::Value;
use tracing::Instrument;

use super::{
    lookup::{missing, parse_id},
    query::{self, Query},
    watch,
};
use crate::{
    error::{ApiError, Problem},
    extract::JsonBody,
    registry::Snapshot,
    state::AppState,
    views::{IntoStore, IntoWire},
};

fn in_range<T: PartialOrd + std::fmt::Display>(
    field: &str,
    v: Option<T>,
    bounds: RangeInclusive<T>,
) -> Result<Option<T>, ApiError> {
    match v {
        Some(x) if !bounds.contains(&x) => Err(ApiError::invalid(
            field,
            format!("must be between {} and {}", bounds.start(), bounds.end()),
        )),
        other => Ok(other),
    }
}

/// The `Idempotency-Key` header, if given (a non-ASCII value fails id validation later).
pub(crate) fn idempotency_key(req: &HttpRequest) -> Option<String> {
    req.headers()
        .get("Idempotency-Key")
        .map(|v| v.to_str().unwrap_or("\u{0}").to_owned())
}

/// Validates a submission and applies defaults. Shared by every submit route.
pub(crate) fn prepare(
    state: &AppState,
    kinds: &Snapshot,
    header_key: Option<String>,
    t: wire::SubmitTask,
    now: DateTime<Utc>,
) -> Result<NewTask, ApiError> {
    let id = match (t.id, header_key) {
        (Some(a), Some(b)) if a != b => {
            return Err(ApiError::invalid(
                "id",
                "differs from the Idempotency-Key header",
            ));
        }
        (Some(a), _) | (None, Some(a)) => {
            TaskId::parse(&a).map_err(|e| ApiError::invalid("id", e.to_string()))?
        }
        (None, None) => TaskId::generate(),
    };
    let kind = kinds.kind(&t.kind)?;
    let payload = t
        .payload
        .unwrap_or_else(|| Value::Object(Default::default()));
    let size = payload.to_string().len();
    if size > state.settings.api.max_payload_bytes {
        return Err(ApiError::TooLarge(format!(
            "payload is {size} bytes; the limit is {} (api.max_payload_bytes)",
            state.settings.api.max_payload_bytes
        )));
    }
    state
        .kinds
        .check(kind, &payload)
        .map_err(|e| ApiError::invalid(e.field, e.message))?;
    let kind = kind.definition().name.clone();
    let queue = QueueName::parse(t.queue.as_deref().unwrap_or(QueueName::DEFAULT))
        .map_err(|e| ApiError::invalid("queue", e.to_string()))?;
    let max_attempts = in_range("max_attempts", t.max_attempts, bounds::MAX_ATTEMPTS)?
        .unwrap_or(state.settings.tasks.default_max_attempts);
    let timeout_secs = in_range("timeout_secs", t.timeout_secs, bounds::TIMEOUT_SECS)?;
    let result_ttl_secs = in_range(
        "result_ttl_secs",
        t.result_ttl_secs,
        bounds::RESULT_TTL_SECS,
    )?
    .unwrap_or(state.settings.tasks.default_result_ttl_secs);
    let horizon = chrono::Duration::seconds(*bounds::DELAY_SECS.end() as i64);
    let run_at = match (
        in_range("delay_secs", t.delay_secs, bounds::DELAY_SECS)?,
        t.run_at,
    ) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid(
                "delay_secs",
                "give delay_secs or run_at, not both",
            ));
        }
        (Some(d), None) => Some(now + chrono::Duration::seconds(d as i64)),
        (None, Some(at)) if at > now + horizon => {
            return Err(ApiError::invalid(
                "run_at",
                "must be within a year from now",
            ));
        }
        (None, at) => at,
    };
    let unique = match (t.unique_key, t.unique_for_secs) {
        (None, None) => None,
        (Some(_), None) => {
            return Err(ApiError::invalid(
                "unique_for_secs",
                "give unique_for_secs with unique_key: how long the key is held",
            ));
        }
        (None, Some(_)) => {
            return Err(ApiError::invalid(
                "unique_key",
                "give unique_key with unique_for_secs",
            ));
        }
        (Some(key), Some(secs)) => {
            // The same alphabet and length as ids: the key is part of a Redis key.
            TaskId::parse(&key).map_err(|e| ApiError::invalid("unique_key", e.to_string()))?;
            let for_secs =
                in_range("unique_for_secs", Some(secs), bounds::UNIQUE_FOR_SECS)?.unwrap_or(secs);
            Some(Unique { key, for_secs })
        }
    };
    let priority = in_range("priority", t.priority, bounds::PRIORITY)?
        .unwrap_or(errand_core::task::DEFAULT_PRIORITY);
    if let Some(k) = &t.concurrency_key {
        // The same alphabet and length as ids: the key is part of a Redis key.
        TaskId::parse(k).map_err(|e| ApiError::invalid("concurrency_key", e.to_string()))?;
    }
    let callback: Option<Callback> = t.callback.map(IntoStore::into_store);
    if let Some(cb) = &callback {
        state
            .settings
            .webhooks
            .check_callback(cb)
            .map_err(|(field, why)| ApiError::invalid(field, why))?;
    }
    Ok(NewTask {
        id,
        kind,
        queue: queue.into(),
        payload,
        max_attempts,
        timeout_secs,
        result_ttl_secs,
        run_at,
        callback,
        traceparent: errand_core::telemetry::current_traceparent(),
        unique,
        flow: Flow {
            priority,
            concurrency_key: t.concurrency_key,
        },
        step: None,
    })
}

/// Submit a task. Answers at once with the record; a worker runs it.
#[utoipa::path(
    tag = "tasks",
    request_body = wire::SubmitTask,
    params(("Idempotency-Key" = Option<String>, Header, description = "Same as the body's `id`", pattern = "^[A-Za-z0-9._:-]{1,128}$")),
    responses(
        (status = 202, description = "Accepted and queued (or scheduled)", body = wire::TaskRecord,
         headers(("Location" = String, description = "/v1/tasks/{id}"))),
        (status = 200, description = "A task with this id already exists; nothing was enqueued", body = wire::TaskRecord,
         headers(("Location" = String, description = "/v1/tasks/{id}"))),
        (status = 400, description = "Malformed request", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body or payload too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid field", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Submit rate limit (api.rate_limit) reached; see Retry-After", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Redis unavailable (the type names why); see Retry-After", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/v1/tasks")]
pub(crate) async fn submit_task(
    state: web::Data<AppState>,
    req: HttpRequest,
    // A `Result`, so a rate-limited caller hears 429 before anything about its body.
    body: Result<JsonBody<wire::SubmitTask>, ApiError>,
) -> Result<HttpResponse, ApiError> {
    crate::access::charge(&state, &req, 1)?;
    let now = Utc::now();
    let JsonBody(submit) = body?;
    // The span the stored traceparent names, so the worker's attempts hang under the submit.
    let span = tracing::info_span!(
        "submit",
        task_id = tracing::field::Empty,
        kind = tracing::field::Empty,
        queue = tracing::field::Empty
    );
    let kinds = state
        .kinds
        .knowing(&state.store, std::iter::once(submit.kind.as_str()))
        .await?;
    let task = span.in_scope(|| prepare(&state, &kinds, idempotency_key(&req), submit, now))?;
    span.record("task_id", task.id.to_string());
    span.record("kind", task.kind.as_str());
    span.record("queue", task.queue.as_str());
    match errand_core::telemetry::redis_call("submit", state.store.submit(task, now))
        .instrument(span)
        .await?
    {
        Submitted::Created(r) => {
            crate::metrics::submitted(&r.queue, &r.kind);
            tracing::info!(task_id = %r.id, kind = %r.kind, queue = %r.queue, "task accepted");
            Ok(HttpResponse::Accepted()
                .insert_header((header::LOCATION, format!("/v1/tasks/{}", r.id)))
                .json(r.into_wire()))
        }
        Submitted::Existing(r) | Submitted::Duplicate(r) => Ok(HttpResponse::Ok()
            .insert_header((header::LOCATION, format!("/v1/tasks/{}", r.id)))
            .json(r.into_wire())),
    }
}

/// A task's record: state, progress, result or error. With `wait`, answers as soon as the
/// task is terminal, or with its current record when `wait` seconds pass first.
#[utoipa::path(
    tag = "tasks",
    params(
        ("id" = wire::TaskId, Path, description = "Task id"),
        ("wait" = Option<u64>, Query, description = "Long-poll: wait up to this many seconds (at most api.max_wait_secs) for the task to end"),
    ),
    responses(
        (status = 200, body = wire::TaskRecord),
        (status = 400, description = "Malformed id or query", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such task, or its record expired (type task-expired)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Redis unavailable; see Retry-After", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/v1/tasks/{id}")]
pub(crate) async fn get_task(
    state: web::Data<AppState>,
    id: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&id)?;
    let mut q = Query::parse(req.query_string())?;
    let wait = q.uint("wait", 0, state.settings.api.max_wait_secs)?;
    q.finish()?;
    let record = match wait {
        Some(secs) if secs > 0 => {
            watch::until_terminal(&state, &id, Duration::from_secs(secs)).await?
        }
        _ => errand_core::telemetry::redis_call("get", state.store.get(&id)).await?,
    };
    match record {
        Some(r) => Ok(HttpResponse::Ok().json(r.into_wire())),
        None => Err(missing(&state, &id).await),
    }
}

/// Lists tasks, newest first. Filtered by `state`, the order is by when each task entered
/// that state; otherwise by creation. Cost per call is bounded whatever the filters.
#[utoipa::path(
    tag = "tasks",
    params(
        ("state" = Option<wire::TaskState>, Query, description = "Only tasks in this state"),
        ("queue" = Option<String>, Query, pattern = "^[A-Za-z0-9_.-]{1,64}$", description = "Only tasks of this queue"),
        ("kind" = Option<String>, Query, description = "Only tasks of this kind (an alias stands for its kind)"),
        ("limit" = Option<u64>, Query, minimum = 1, maximum = 500, description = "Page size, 1 to 500 (default 50)"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
    ),
    responses(
        (status = 200, body = wire::TaskPage),
        (status = 400, description = "Bad query parameter", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Redis unavailable; see Retry-After", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/v1/tasks")]
pub(crate) async fn list_tasks(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let mut q = Query::parse(req.query_string())?;
    let task_state = q
        .str("state")
        .map(|s| {
            s.parse::<TaskState>()
                .map_err(|e| query::bad("state", &e.to_string()))
        })
        .transpose()?;
    let queue = q
        .str("queue")
        .map(|name| {
            QueueName::parse(&name)
                .map(String::from)
                .map_err(|e| query::bad("queue", &e.to_string()))
        })
        .transpose()?;
    let kinds = state.kinds.current();
    let kind = q
        .str("kind")
        .map(|k| kinds.resolve(&k).map(str::to_owned).unwrap_or(k));
    let limit = q.uint("limit", 1, 500)?.unwrap_or(50) as usize;
    let after = q
        .str("cursor")
        .map(|c| {
            Cursor::decode(&c).ok_or_else(|| query::bad("cursor", "not a cursor from next_cursor"))
        })
        .transpose()?;
    q.finish()?;
    let query = ListQuery {
        state: task_state,
        queue,
        kind,
        after,
        limit,
        budget: (limit * 10).max(1000),
    };
    let page = errand_core::telemetry::redis_call("list", state.store.list(&query)).await?;
    Ok(HttpResponse::Ok().json(wire::TaskPage {
        tasks: page.tasks.into_iter().map(IntoWire::into_wire).collect(),
        next_cursor: page.next.map(|c| c.encode()),
    }))
}
