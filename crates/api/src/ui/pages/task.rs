//! `/ui/tasks/{id}`: one task, its live progress, and cancel/retry.

use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::Utc;
use errand_core::{
    settings::Scope,
    store::{Cancel, Retry},
    task::{TaskId, TaskRecord, TaskState},
};
use maud::{Markup, html};

use super::{CsrfForm, Data, Params, badge, enc, notice, opt_ts, ts};
use crate::ui::guard::{Post, Submit};
use crate::ui::{Auth, Ctx, Main, UiError, charts, see_other};

fn json_block(v: &serde_json::Value) -> Markup {
    html! { pre.json { code { (serde_json::to_string_pretty(v).unwrap_or_default()) } } }
}

pub(in crate::ui) async fn task(
    state: Data,
    id: web::Path<String>,
    q: Params,
    ctx: Ctx,
) -> Result<HttpResponse, UiError> {
    let id = TaskId::parse(&id).map_err(|e| UiError::BadRequest {
        field: "id",
        detail: e.to_string(),
    })?;
    let Some(r) = state.store.get(&id).await? else {
        let why = match state.store.expired_at(&id).await {
            Ok(Some(at)) => format!(
                "task `{id}` expired at {}; its record was kept for its result TTL",
                errand_core::task::rfc3339(at)
            ),
            _ => format!("no task `{id}`"),
        };
        return Err(UiError::NotFound(why));
    };
    let failed = state.store.failed_attempts(&r.queue, &id).await?;
    let pct = if r.state == TaskState::Succeeded {
        100
    } else {
        r.progress.as_ref().map_or(0, |p| p.percent)
    };
    let message = r
        .progress
        .as_ref()
        .and_then(|p| p.message.clone())
        .unwrap_or_default();
    let terminal = r.state.is_terminal();
    let body = html! {
        h1 { "Task " code.mono { (r.id.as_str()) } }
        (notice(&q))
        p.summary { (badge(r.state)) " " (r.kind) " on queue "
            a href=(format!("/ui/tasks?queue={}", enc(&r.queue))) { (r.queue) }
            @if r.cancel_requested && !terminal { " · " span.badge.cancelling { "cancel requested" } }
        }
        section.progress aria-label="Progress" {
            progress #progress max="100" value=(pct) aria-valuenow=(pct) aria-label="Progress" {}
            span #progress-text { (pct) " %" @if !message.is_empty() { " — " (message) } }
        }
        div.actions {
            @if ctx.can(Scope::Submit) && !terminal {
                form method="post" action=(format!("/ui/tasks/{}/cancel", enc(r.id.as_str()))) {
                    (ctx.csrf_field())
                    button.danger type="submit" { "Cancel task" }
                }
            }
            @if ctx.can(Scope::Submit) && matches!(r.state, TaskState::Failed | TaskState::Cancelled) {
                form method="post" action=(format!("/ui/tasks/{}/retry", enc(r.id.as_str()))) {
                    (ctx.csrf_field())
                    button type="submit" { "Retry task" }
                }
            }
        }
        dl.facts {
            dt { "Attempt" } dd { (r.attempt) " of " (r.max_attempts) }
            dt { "Worker" } dd.mono { @match &r.worker { Some(w) => (w), None => "—" } }
            dt { "Created" } dd { (ts(r.created_at)) }
            dt { "Scheduled for" } dd { (opt_ts(r.scheduled_for)) }
            dt { "Started" } dd { (opt_ts(r.started_at)) }
            dt { "Finished" } dd { (opt_ts(r.finished_at)) }
            dt { "Updated" } dd { (ts(r.updated_at)) }
            dt { "Next attempt" } dd { (opt_ts(r.next_attempt_at)) }
            dt { "Ran for" } dd {
                @match (r.started_at, r.finished_at) {
                    (Some(s), Some(f)) => (charts::duration((f - s).num_milliseconds().max(0) as f64)),
                    _ => "—",
                }
            }
            dt { "Time limit" } dd { @match r.timeout_secs { Some(s) => (format!("{s} s")), None => "none" } }
            dt { "Kept after it ends" } dd { (r.result_ttl_secs) " s" }
            dt { "Schedule" } dd {
                @match &r.schedule_id {
                    Some(s) => a href=(format!("/ui/schedules#s-{s}")) { (s) },
                    None => "— (submitted by a client)",
                }
            }
            @if let Some(cb) = &r.callback {
                dt { "Webhook" } dd.mono { (cb.url) }
                dt { "Delivery" } dd {
                    @match &r.webhook {
                        Some(w) => {
                            (format!("{:?}", w.state).to_lowercase()) " · " (w.event.as_str())
                            " · " (w.attempts) " attempt(s)"
                            @if let Some(st) = w.last_status { " · last answered " (st) }
                            @if let Some(e) = &w.last_error { " · " (e) }
                            @if let Some(at) = w.next_attempt_at { " · next " (ts(at)) }
                        }
                        None => "none yet (sent when the task ends)",
                    }
                }
            }
        }
        h2 { "Payload" }
        (json_block(&r.payload))
        @if let Some(res) = &r.result {
            h2 { "Result" }
            (json_block(res))
        }
        h2 { "Failed attempts" }
        @if failed.is_empty() {
            @if let Some(e) = &r.error {
                p { "Last error: " code { (e.kind) } " — " (e.message) }
            } @else {
                p.muted { "None." }
            }
        } @else {
            div.scroll {
                table.errors {
                    thead { tr { th { "Attempt" } th { "Ended" } th { "Ran for" } th { "Error" } th { "Message" } } }
                    tbody {
                        @for a in &failed {
                            tr {
                                td { (a.attempt) }
                                td { (ts(a.ended_at)) }
                                td { @match a.run_ms { Some(ms) => (charts::duration(ms as f64)), None => "—" } }
                                td { code { (a.error.kind) } }
                                td { (a.error.message) }
                            }
                        }
                    }
                }
            }
        }
    };
    let main = Main {
        task: Some(r.id.as_str().to_owned()),
        state: Some(r.state.as_str().to_owned()),
        ..Main::default()
    };
    Ok(ctx.page("tasks", &format!("Task {}", r.id.as_str()), main, body))
}

/// Live progress for the task page: an SSE frame with state, percent and message whenever
/// they change, until the task ends. The same fan-out as the API's SSE (one subscription
/// per process); a separate route because EventSource cannot send the API's bearer key.
pub(in crate::ui) async fn task_events(
    state: Data,
    auth: web::Data<Auth>,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, UiError> {
    if auth.session(&req, Utc::now().timestamp()).is_none() {
        return Err(UiError::Forbidden("log in first".into()));
    }
    let id = TaskId::parse(&id).map_err(|e| UiError::BadRequest {
        field: "id",
        detail: e.to_string(),
    })?;
    let watch = state.events.watch(id.as_str());
    let first = state.store.get(&id).await?;
    let Some(first) = first else {
        return Err(UiError::NotFound(format!("no task `{id}`")));
    };
    fn frame(r: &TaskRecord) -> String {
        let pct = if r.state == TaskState::Succeeded {
            100
        } else {
            r.progress.as_ref().map_or(0, |p| p.percent)
        };
        let v = serde_json::json!({
            "state": r.state.as_str(),
            "percent": pct,
            "message": r.progress.as_ref().and_then(|p| p.message.clone()),
            "attempt": r.attempt,
            "cancel_requested": r.cancel_requested,
        });
        format!("data: {v}\n\n")
    }
    struct S {
        state: Data,
        id: TaskId,
        queue: String,
        watch: crate::events::Watch,
        last: String,
        pending: Option<TaskRecord>,
        done: bool,
    }
    let s = S {
        state,
        id,
        queue: first.queue.clone(),
        watch,
        last: String::new(),
        pending: Some(first),
        done: false,
    };
    let body = futures::stream::unfold(s, |mut s| async move {
        if s.done {
            return None;
        }
        loop {
            if let Some(r) = s.pending.take() {
                let f = frame(&r);
                s.done = r.state.is_terminal();
                if f != s.last {
                    s.last = f.clone();
                    return Some((Ok::<_, std::convert::Infallible>(web::Bytes::from(f)), s));
                }
                if s.done {
                    return None;
                }
            }
            tokio::select! {
                _ = s.watch.rx.recv() => {}
                _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            }
            // The record's queue is known: re-reads skip the id's pointer.
            match s.state.store.get_in(&s.queue, s.id.as_str()).await {
                Ok(Some(r)) => s.pending = Some(r),
                Ok(None) => {
                    s.done = true;
                    return Some((Ok(web::Bytes::from_static(b"event: gone\ndata: {}\n\n")), s));
                }
                Err(e) => tracing::debug!(error = %e, "dashboard sse re-read failed"),
            }
        }
    });
    Ok(crate::routes::watch::event_stream(body))
}

pub(in crate::ui) async fn task_action(
    state: Data,
    path: web::Path<(String, String)>,
    _: Post<CsrfForm, Submit>,
) -> Result<HttpResponse, UiError> {
    let (id, action) = path.into_inner();
    let id = TaskId::parse(&id).map_err(|e| UiError::BadRequest {
        field: "id",
        detail: e.to_string(),
    })?;
    let now = Utc::now();
    let msg = match action.as_str() {
        "cancel" => match state.store.cancel(&id, now).await? {
            Cancel::Gone => return Err(UiError::NotFound(format!("no task `{id}`"))),
            Cancel::Terminal(s) => format!("Not cancelled: the task is already {s}."),
            Cancel::Requested(_) => "Cancel requested: the worker is stopping the task.".to_owned(),
            Cancel::Cancelled(_) => "Cancelled before it ran.".to_owned(),
        },
        "retry" => match state.store.retry(&id, now).await? {
            Retry::Gone => return Err(UiError::NotFound(format!("no task `{id}`"))),
            Retry::Conflict(s) => {
                format!("Not retried: the task is {s}; only failed or cancelled tasks can be.")
            }
            Retry::Queued(_) => "Queued again.".to_owned(),
        },
        other => return Err(UiError::NotFound(format!("no action `{other}`"))),
    };
    tracing::info!(task_id = %id, action = %action, "dashboard task action");
    Ok(see_other(&format!(
        "/ui/tasks/{}?notice={}",
        enc(id.as_str()),
        enc(&msg)
    )))
}
