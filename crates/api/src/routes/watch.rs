//! Watching a task: long-poll (`?wait=`) and server-sent events. Both register for the
//! task's events before reading the record (see `events.rs`), then re-read it on each
//! relevant event; a slow re-read tick covers a subscription that is reconnecting.
//!
//! Neither holds up the process's stop: once it starts (`AppState::stopping`) a long-poll
//! answers with the record as it is, as if its wait had run out, and an event stream ends
//! (the client reconnects, to another api process).

use std::time::Duration;

use actix_web::{HttpResponse, get, http::header, web};
use errand_core::task::{TaskId, TaskRecord};
use errand_wire as wire;
use futures::stream;
use tokio::time::Instant;

use super::lookup::{missing, parse_id};
use crate::{
    error::{ApiError, Problem},
    state::AppState,
    views::IntoWire,
};

/// Re-read the record this often even without events (lost messages, reconnects).
pub(crate) const FALLBACK: Duration = Duration::from_secs(2);
/// An SSE comment this often keeps proxies from closing an idle stream.
pub(crate) const KEEPALIVE: Duration = Duration::from_secs(15);

/// A server-sent event stream of `body`, unbuffered by proxies (every stream errand serves).
pub(crate) fn event_stream<S>(body: S) -> HttpResponse
where
    S: futures::Stream<Item = Result<web::Bytes, std::convert::Infallible>> + 'static,
{
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/event-stream"))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(body)
}

fn is_terminal_event(e: &str) -> bool {
    matches!(e, "succeeded" | "failed" | "cancelled" | "reconnected")
}

/// The record once terminal, or as it is when `limit` runs out; `None` if there is none.
pub(crate) async fn until_terminal(
    state: &AppState,
    id: &TaskId,
    limit: Duration,
) -> Result<Option<TaskRecord>, ApiError> {
    let deadline = Instant::now() + limit;
    let mut watch = state.events.watch(id.as_str());
    // The task's queue, once known: a record never moves, so re-reads skip the pointer.
    let mut queue: Option<String> = None;
    loop {
        let record = match &queue {
            Some(q) => state.store.get_in(q, id.as_str()).await,
            None => state.store.get(id).await,
        }?;
        if let Some(r) = &record {
            queue.get_or_insert_with(|| r.queue.clone());
        }
        match record {
            Some(r) if !r.state.is_terminal() => {
                let fallback = tokio::time::sleep(FALLBACK);
                tokio::pin!(fallback);
                loop {
                    tokio::select! {
                        e = watch.rx.recv() => match e {
                            Some(e) if !is_terminal_event(&e) => continue,
                            _ => break,
                        },
                        _ = &mut fallback => break,
                        _ = tokio::time::sleep_until(deadline) => return Ok(Some(r)),
                        _ = state.stopping.cancelled() => return Ok(Some(r)),
                    }
                }
            }
            other => return Ok(other),
        }
    }
}

/// Server-sent events for one task: an event with the full record now, then one on every
/// state change (`event: <state>`) and progress report (`event: progress`); the stream
/// ends after the terminal state. A task that disappears ends it with `event: gone`.
// The document describes the body as a string and each event as `TaskEvent` (openapi.rs).
#[utoipa::path(
    tag = "tasks",
    params(("id" = wire::TaskId, Path, description = "Task id")),
    responses(
        (status = 200, description = "An event stream (`TaskEvent`s): the record now, then on every change until the task ends", content_type = "text/event-stream", body = String),
        (status = 400, description = "Malformed id", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such task", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Redis unavailable; see Retry-After", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/v1/tasks/{id}/events")]
pub(crate) async fn task_events(
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&id)?;
    let watch = state.events.watch(id.as_str());
    let first = state.store.get(&id).await?;
    let Some(first) = first else {
        return Err(missing(&state, &id).await);
    };
    struct S {
        state: web::Data<AppState>,
        id: TaskId,
        queue: String,
        watch: crate::events::Watch,
        last: Option<TaskRecord>,
        pending: Option<TaskRecord>,
        done: bool,
        /// When the next keep-alive is due: KEEPALIVE after the last frame sent. A deadline
        /// kept across loop turns, because a timer made afresh each turn never fires: the
        /// FALLBACK re-read always comes first.
        keepalive: Instant,
    }
    let s = S {
        state,
        id,
        queue: first.queue.clone(),
        watch,
        last: None,
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
                let name = match &s.last {
                    Some(l) if l.state == r.state => "progress",
                    _ => r.state.as_str(),
                };
                let changed = s.last.as_ref() != Some(&r);
                s.done = r.state.is_terminal();
                let frame = format!(
                    "event: {name}\ndata: {}\n\n",
                    serde_json::to_string(&(&r).into_wire()).unwrap_or_default()
                );
                s.last = Some(r);
                if changed {
                    s.keepalive = Instant::now() + KEEPALIVE;
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
                // The process is stopping: end the stream (after the frames already sent).
                _ = s.state.stopping.cancelled() => return None,
                _ = tokio::time::sleep_until(s.keepalive) => {
                    s.keepalive = Instant::now() + KEEPALIVE;
                    return Some((Ok(web::Bytes::from_static(b": keep-alive\n\n")), s));
                }
            }
            // The record's queue is known: re-reads skip the id's pointer.
            match s.state.store.get_in(&s.queue, s.id.as_str()).await {
                Ok(Some(r)) => s.pending = Some(r),
                Ok(None) => {
                    s.done = true;
                    return Some((Ok(web::Bytes::from_static(b"event: gone\ndata: {}\n\n")), s));
                }
                // Redis unavailable: keep the stream open and try again on the next wake.
                Err(e) => tracing::debug!(error = %e, "sse re-read failed"),
            }
        }
    });
    Ok(event_stream(body))
}
