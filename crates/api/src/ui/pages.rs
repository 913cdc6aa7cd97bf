//! The dashboard's pages and form actions.

use std::collections::HashMap;
use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, http::header, web};
use chrono::{DateTime, Utc};
use errand_core::{
    settings::Scope,
    store::{Cancel, Cursor, ListQuery, Retry},
    task::{InvalidQueueName, QueueName, TaskId, TaskRecord, TaskState},
};
use maud::{Markup, html};
use serde::Deserialize;

use super::{Auth, Ctx, Main, UiError, charts, see_other};
use crate::state::AppState;

type Data = web::Data<AppState>;
type Params = web::Query<HashMap<String, String>>;

/// The most tasks one bulk action changes; the page says when more are left.
pub(super) const BULK_LIMIT: usize = 100;
const PAGE: usize = 50;

fn bad_queue(e: InvalidQueueName) -> UiError {
    UiError::BadRequest {
        field: "queue",
        detail: e.to_string(),
    }
}

/// Percent-encodes a query value.
pub(super) fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn param<'a>(q: &'a HashMap<String, String>, name: &str) -> Option<&'a str> {
    q.get(name).map(|v| v.trim()).filter(|v| !v.is_empty())
}

fn ts(t: DateTime<Utc>) -> Markup {
    html! { time datetime=(errand_core::task::rfc3339(t)) { (t.format("%Y-%m-%d %H:%M:%S")) } }
}

fn opt_ts(t: Option<DateTime<Utc>>) -> Markup {
    match t {
        Some(t) => ts(t),
        None => html! { span.muted { "—" } },
    }
}

fn ago(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let ms = (now - t).num_milliseconds().max(0) as f64;
    format!("{} ago", charts::duration(ms))
}

fn badge(state: TaskState) -> Markup {
    html! { span class=(format!("badge {}", state.as_str())) data-badge { (state.as_str()) } }
}

fn notice(q: &HashMap<String, String>) -> Markup {
    html! {
        @if let Some(n) = param(q, "notice") {
            p.notice role="status" { (n) }
        }
    }
}

/// `/`: where the dashboard and the API's documents are.
pub(super) async fn landing() -> HttpResponse {
    let markup = super::bare_page(
        "errand",
        html! {
            main #main.landing {
                h1 { "errand" }
                p { "A Redis-backed distributed task queue." }
                ul {
                    li { a href="/ui" { "Dashboard" } " — queues, tasks, workers, schedules" }
                    li { a href="/docs/" { "API reference (Swagger UI)" } " · " a href="/redoc" { "ReDoc" } }
                    li { a href="/openapi.json" { "OpenAPI document" } }
                }
            }
        },
    );
    super::html_response(actix_web::http::StatusCode::OK).body(markup.into_string())
}

// ---- login ----

fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with("/ui") && !n.contains("//") && !n.contains('\\') => n.to_owned(),
        _ => "/ui".to_owned(),
    }
}

fn login_page(next: &str, failed: bool) -> HttpResponse {
    let markup = super::bare_page(
        "Log in · errand",
        html! {
            main #main.login {
                h1 { "errand dashboard" }
                form method="post" action="/ui/login" {
                    @if failed {
                        p.notice.bad role="alert" { "That key is not one of this server's API keys." }
                    }
                    label for="key" { "API key" }
                    input #key type="password" name="key" required autocomplete="current-password" autofocus;
                    input type="hidden" name="next" value=(next);
                    button type="submit" { "Log in" }
                    p.muted { "Any configured key works; its scope (read, submit, admin) decides what you can change." }
                }
            }
        },
    );
    let status = if failed {
        actix_web::http::StatusCode::UNAUTHORIZED
    } else {
        actix_web::http::StatusCode::OK
    };
    super::html_response(status).body(markup.into_string())
}

pub(super) async fn login_form(auth: web::Data<Auth>, req: HttpRequest, q: Params) -> HttpResponse {
    let next = safe_next(param(&q, "next"));
    if !auth.keyed() || auth.session(&req, Utc::now().timestamp()).is_some() {
        return see_other(&next);
    }
    login_page(&next, false)
}

#[derive(Deserialize)]
pub(super) struct LoginForm {
    key: String,
    next: Option<String>,
}

pub(super) async fn login(
    auth: web::Data<Auth>,
    req: HttpRequest,
    form: web::Form<LoginForm>,
) -> HttpResponse {
    let next = safe_next(form.next.as_deref());
    match auth.login(&form.key, Utc::now().timestamp()) {
        Some(s) => {
            tracing::info!(key_id = %s.key_id, scope = s.scope.as_str(), "dashboard login");
            HttpResponse::SeeOther()
                .insert_header((header::LOCATION, next))
                .insert_header((header::SET_COOKIE, auth.cookie(&s, super::secure(&req))))
                .finish()
        }
        None => {
            tracing::warn!("dashboard login with a key that matches none");
            login_page(&next, true)
        }
    }
}

#[derive(Deserialize)]
pub(super) struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

pub(super) async fn logout(
    auth: web::Data<Auth>,
    req: HttpRequest,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, UiError> {
    Ctx::act(&auth, &req, &form.csrf, Scope::Read)?;
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/ui/login"))
        .insert_header((header::SET_COOKIE, Auth::clear_cookie(super::secure(&req))))
        .finish())
}

// ---- overview ----

pub(super) async fn overview(
    state: Data,
    auth: web::Data<Auth>,
    req: HttpRequest,
    q: Params,
) -> Result<HttpResponse, UiError> {
    let ctx = match Ctx::view(&auth, &req) {
        Ok(c) => c,
        Err(login) => return Ok(login.response()),
    };
    let day = param(&q, "range") == Some("day");
    let (points, width) = if day { (96, 15) } else { (60, 1) };
    let now = Utc::now();
    let queues = state.store.queues(now).await?;
    let names: Vec<String> = queues.iter().map(|q| q.name.clone()).collect();
    let paused = state.store.paused(&names).await?;
    let mut cards = Vec::new();
    for (qs, p) in queues.iter().zip(&paused) {
        let h = state.store.history(&qs.name, points, width).await?;
        cards.push((qs, p, h));
    }
    let body = html! {
        div.title-row {
            h1 { "Overview" }
            nav.range aria-label="Time range" {
                a href="/ui?range=hour" aria-current=[(!day).then_some("true")] { "Last hour" }
                a href="/ui?range=day" aria-current=[day.then_some("true")] { "Last day" }
            }
        }
        @if cards.is_empty() {
            p.muted { "No queue has had a task yet. Submit one with " code { "POST /v1/tasks" } "." }
        }
        div.cards {
            @for (qs, p, h) in &cards {
                section.card data-queue=(qs.name) aria-labelledby=(format!("q-{}", qs.name)) {
                    h2 #(format!("q-{}", qs.name)) {
                        a href=(format!("/ui/tasks?queue={}", enc(&qs.name))) { (qs.name) }
                        @if p.is_some() { " " span.badge.paused { "paused" } }
                    }
                    dl.counts {
                        @for (s, n) in &qs.counts {
                            div {
                                dt { a href=(format!("/ui/tasks?queue={}&state={}", enc(&qs.name), s.as_str())) { (s.as_str()) } }
                                dd data-count=(s.as_str()) { (n) }
                            }
                        }
                        div {
                            dt { "oldest waiting" }
                            dd { @match qs.oldest_queued_ms { Some(ms) => (charts::duration(ms as f64)), None => "—" } }
                        }
                    }
                    (charts::throughput(h))
                    (charts::run_time(h))
                }
            }
        }
    };
    Ok(ctx.page(
        "overview",
        "Overview",
        Main {
            refresh: Some(5),
            ..Main::default()
        },
        body,
    ))
}

// ---- tasks ----

struct Filters {
    state: Option<TaskState>,
    queue: Option<String>,
    kind: Option<String>,
}

impl Filters {
    fn parse(state: &AppState, q: &HashMap<String, String>) -> Result<Self, UiError> {
        let task_state = param(q, "state")
            .map(|s| {
                s.parse::<TaskState>().map_err(|e| UiError::BadRequest {
                    field: "state",
                    detail: e.to_string(),
                })
            })
            .transpose()?;
        let queue = param(q, "queue")
            .map(|name| QueueName::parse(name).map(String::from).map_err(bad_queue))
            .transpose()?;
        let kind = param(q, "kind").map(|k| {
            state
                .catalog
                .resolve(k)
                .map(str::to_owned)
                .unwrap_or_else(|| k.to_owned())
        });
        Ok(Self {
            state: task_state,
            queue,
            kind,
        })
    }

    fn query(&self) -> String {
        let mut parts = Vec::new();
        if let Some(s) = self.state {
            parts.push(format!("state={}", s.as_str()));
        }
        if let Some(q) = &self.queue {
            parts.push(format!("queue={}", enc(q)));
        }
        if let Some(k) = &self.kind {
            parts.push(format!("kind={}", enc(k)));
        }
        parts.join("&")
    }

    fn hidden(&self) -> Markup {
        html! {
            @if let Some(s) = self.state { input type="hidden" name="state" value=(s.as_str()); }
            @if let Some(q) = &self.queue { input type="hidden" name="queue" value=(q); }
            @if let Some(k) = &self.kind { input type="hidden" name="kind" value=(k); }
        }
    }
}

fn progress_cell(r: &TaskRecord) -> Markup {
    let pct = match (&r.progress, r.state) {
        (_, TaskState::Succeeded) => Some(100),
        (Some(p), _) => Some(p.percent),
        _ => None,
    };
    html! {
        @if let Some(p) = pct {
            progress max="100" value=(p) aria-label=(format!("{p} %")) {} " " span.muted { (p) " %" }
        }
    }
}

pub(super) async fn tasks(
    state: Data,
    auth: web::Data<Auth>,
    req: HttpRequest,
    q: Params,
) -> Result<HttpResponse, UiError> {
    let ctx = match Ctx::view(&auth, &req) {
        Ok(c) => c,
        Err(login) => return Ok(login.response()),
    };
    if let Some(id) = param(&q, "id") {
        return match TaskId::parse(id) {
            Ok(id) => Ok(see_other(&format!("/ui/tasks/{}", enc(id.as_str())))),
            Err(e) => Err(UiError::BadRequest {
                field: "id",
                detail: e.to_string(),
            }),
        };
    }
    let f = Filters::parse(&state, &q)?;
    let after = param(&q, "cursor")
        .map(|c| {
            Cursor::decode(c).ok_or(UiError::BadRequest {
                field: "cursor",
                detail: "not a cursor from a next-page link".into(),
            })
        })
        .transpose()?;
    let page = state
        .store
        .list(&ListQuery {
            state: f.state,
            queue: f.queue.clone(),
            kind: f.kind.clone(),
            after,
            limit: PAGE,
            budget: 1000,
        })
        .await?;
    let queues = state.store.queues(Utc::now()).await?;
    let kinds: Vec<&str> = state.catalog.names().collect();
    let now = Utc::now();
    let body = html! {
        h1 { "Tasks" }
        (notice(&q))
        form.search method="get" action="/ui/tasks" role="search" {
            label for="id" { "Find a task by id" }
            input #id name="id" type="search" placeholder="task id" autocomplete="off" spellcheck="false";
            button type="submit" { "Open" }
        }
        form.filters method="get" action="/ui/tasks" {
            label { "State "
                select name="state" {
                    option value="" { "any" }
                    @for s in TaskState::ALL {
                        option value=(s.as_str()) selected[f.state == Some(s)] { (s.as_str()) }
                    }
                }
            }
            label { "Queue "
                select name="queue" {
                    option value="" { "any" }
                    @for qs in &queues {
                        option value=(qs.name) selected[f.queue.as_deref() == Some(qs.name.as_str())] { (qs.name) }
                    }
                }
            }
            label { "Kind "
                select name="kind" {
                    option value="" { "any" }
                    @for k in &kinds {
                        option value=(k) selected[f.kind.as_deref() == Some(*k)] { (k) }
                    }
                }
            }
            button type="submit" { "Filter" }
        }
        @if ctx.can(Scope::Submit) {
            form.bulk method="post" action="/ui/tasks/bulk" data-confirm="Apply to every matching task (up to 100 per click)?" {
                (ctx.csrf_field())
                (f.hidden())
                span { "With every task matching these filters (" (BULK_LIMIT) " per click): " }
                button type="submit" name="action" value="retry" { "Retry failed / cancelled" }
                button type="submit" name="action" value="cancel" class="danger" { "Cancel unfinished" }
            }
        }
        div.scroll {
            table.tasks {
                thead { tr { th { "Id" } th { "Kind" } th { "Queue" } th { "State" } th { "Attempt" } th { "Progress" } th { "Created" } th { "Updated" } } }
                tbody {
                    @for r in &page.tasks {
                        tr data-id=(r.id.as_str()) {
                            td { a.mono href=(format!("/ui/tasks/{}", enc(r.id.as_str()))) { (r.id.as_str()) } }
                            td { (r.kind) }
                            td { (r.queue) }
                            td { (badge(r.state)) }
                            td { (r.attempt) "/" (r.max_attempts) }
                            td { (progress_cell(r)) }
                            td title=(errand_core::task::rfc3339(r.created_at)) { (ago(r.created_at, now)) }
                            td title=(errand_core::task::rfc3339(r.updated_at)) { (ago(r.updated_at, now)) }
                        }
                    }
                }
            }
        }
        @if page.tasks.is_empty() { p.muted { "No task on this page matches." } }
        @if let Some(next) = &page.next {
            @let fq = f.query();
            p { a.next rel="next" href=(format!("/ui/tasks?{}{}cursor={}", fq, if fq.is_empty() { "" } else { "&" }, enc(&next.encode()))) { "Next page →" } }
        }
    };
    Ok(ctx.page("tasks", "Tasks", Main::default(), body))
}

#[derive(Deserialize)]
pub(super) struct BulkForm {
    #[serde(default)]
    csrf: String,
    action: String,
    #[serde(flatten)]
    filters: HashMap<String, String>,
}

pub(super) async fn bulk(
    state: Data,
    auth: web::Data<Auth>,
    req: HttpRequest,
    form: web::Form<BulkForm>,
) -> Result<HttpResponse, UiError> {
    let _ctx = Ctx::act(&auth, &req, &form.csrf, Scope::Submit)?;
    let f = Filters::parse(&state, &form.filters)?;
    let retry = match form.action.as_str() {
        "retry" => true,
        "cancel" => false,
        other => {
            return Err(UiError::BadRequest {
                field: "action",
                detail: format!("`{other}` is not retry or cancel"),
            });
        }
    };
    let page = state
        .store
        .list(&ListQuery {
            state: f.state,
            queue: f.queue.clone(),
            kind: f.kind.clone(),
            after: None,
            limit: BULK_LIMIT,
            budget: BULK_LIMIT * 10,
        })
        .await?;
    let (mut done, mut skipped) = (0, 0);
    let now = Utc::now();
    for r in &page.tasks {
        let changed = if retry {
            matches!(state.store.retry(&r.id, now).await?, Retry::Queued(_))
        } else {
            matches!(
                state.store.cancel(&r.id, now).await?,
                Cancel::Cancelled(_) | Cancel::Requested(_)
            )
        };
        if changed { done += 1 } else { skipped += 1 }
    }
    tracing::info!(action = %form.action, done, skipped, "dashboard bulk action");
    let verb = if retry { "Retried" } else { "Cancelled" };
    let mut msg = format!(
        "{verb} {done} task(s); {skipped} left as they were (not in a state that allows it)."
    );
    if page.next.is_some() || page.tasks.len() == BULK_LIMIT {
        msg.push_str(" More may match: click again for the next ones.");
    }
    let fq = f.query();
    Ok(see_other(&format!(
        "/ui/tasks?{fq}{}notice={}",
        if fq.is_empty() { "" } else { "&" },
        enc(&msg)
    )))
}

fn json_block(v: &serde_json::Value) -> Markup {
    html! { pre.json { code { (serde_json::to_string_pretty(v).unwrap_or_default()) } } }
}

pub(super) async fn task(
    state: Data,
    auth: web::Data<Auth>,
    req: HttpRequest,
    id: web::Path<String>,
    q: Params,
) -> Result<HttpResponse, UiError> {
    let ctx = match Ctx::view(&auth, &req) {
        Ok(c) => c,
        Err(login) => return Ok(login.response()),
    };
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
pub(super) async fn task_events(
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
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/event-stream"))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(body))
}

pub(super) async fn task_action(
    state: Data,
    auth: web::Data<Auth>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, UiError> {
    let (id, action) = path.into_inner();
    Ctx::act(&auth, &req, &form.csrf, Scope::Submit)?;
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

// ---- queues ----

pub(super) async fn queues(
    state: Data,
    auth: web::Data<Auth>,
    req: HttpRequest,
    q: Params,
) -> Result<HttpResponse, UiError> {
    let ctx = match Ctx::view(&auth, &req) {
        Ok(c) => c,
        Err(login) => return Ok(login.response()),
    };
    let now = Utc::now();
    let queues = state.store.queues(now).await?;
    let names: Vec<String> = queues.iter().map(|q| q.name.clone()).collect();
    let paused = state.store.paused(&names).await?;
    let body = html! {
        h1 { "Queues" }
        (notice(&q))
        p.muted { "A paused queue keeps accepting tasks; its workers take none of them until it is resumed. Tasks already running finish." }
        div.scroll {
            table.queues {
                thead { tr {
                    th { "Queue" } th { "Status" }
                    @for s in TaskState::ALL { th { (s.as_str()) } }
                    th { "Oldest waiting" } th { span.sr-only { "Action" } }
                } }
                tbody {
                    @for (qs, p) in queues.iter().zip(&paused) {
                        tr data-queue=(qs.name) {
                            td { a href=(format!("/ui/tasks?queue={}", enc(&qs.name))) { (qs.name) } }
                            td {
                                @match p {
                                    Some(at) => { span.badge.paused { "paused" } " " span.muted { (ago(*at, now)) } },
                                    None => span.badge.active { "active" },
                                }
                            }
                            @for (s, n) in &qs.counts { td data-count=(s.as_str()) { (n) } }
                            td { @match qs.oldest_queued_ms { Some(ms) => (charts::duration(ms as f64)), None => "—" } }
                            td {
                                @if ctx.can(Scope::Admin) {
                                    form method="post" action=(format!("/ui/queues/{}/{}", enc(&qs.name), if p.is_some() { "resume" } else { "pause" })) {
                                        (ctx.csrf_field())
                                        @if p.is_some() {
                                            button type="submit" { "Resume " (qs.name) }
                                        } @else {
                                            button.danger type="submit" { "Pause " (qs.name) }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(ctx.page(
        "queues",
        "Queues",
        Main {
            refresh: Some(3),
            ..Main::default()
        },
        body,
    ))
}

pub(super) async fn queue_action(
    state: Data,
    auth: web::Data<Auth>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, UiError> {
    let (queue, action) = path.into_inner();
    Ctx::act(&auth, &req, &form.csrf, Scope::Admin)?;
    QueueName::parse(&queue).map_err(bad_queue)?;
    let msg = match action.as_str() {
        "pause" => {
            state.store.pause_queue(&queue).await?;
            format!("Paused {queue}: its workers take no new tasks.")
        }
        "resume" => {
            state.store.resume_queue(&queue).await?;
            format!("Resumed {queue}.")
        }
        other => return Err(UiError::NotFound(format!("no action `{other}`"))),
    };
    tracing::info!(queue = %queue, action = %action, "dashboard queue action");
    Ok(see_other(&format!("/ui/queues?notice={}", enc(&msg))))
}

// ---- workers ----

pub(super) async fn workers(
    state: Data,
    auth: web::Data<Auth>,
    req: HttpRequest,
) -> Result<HttpResponse, UiError> {
    let ctx = match Ctx::view(&auth, &req) {
        Ok(c) => c,
        Err(login) => return Ok(login.response()),
    };
    let now = Utc::now();
    let workers = state.store.workers().await?;
    let body = html! {
        h1 { "Workers" }
        @if workers.is_empty() { p.muted { "No worker is alive (none has sent a heartbeat lately)." } }
        div.scroll {
            table.workers {
                thead { tr { th { "Worker" } th { "Host" } th { "Pid" } th { "Queues (concurrency)" } th { "Running" } th { "Last heartbeat" } th { "Started" } th { "Status" } } }
                tbody {
                    @for w in &workers {
                        tr {
                            td.mono { (w.name) }
                            td { (w.host) }
                            td { (w.pid) }
                            td { @for (i, q) in w.queues.iter().enumerate() { @if i > 0 { ", " } (q.name) " (" (q.concurrency) ")" } }
                            td {
                                (w.running)
                                @for id in w.running_ids.iter().take(5) {
                                    " " a.mono href=(format!("/ui/tasks/{}", enc(id))) { (id.get(..8).unwrap_or(id)) "…" }
                                }
                            }
                            td title=(errand_core::task::rfc3339(w.last_seen)) { (ago(w.last_seen, now)) }
                            td { (ts(w.started_at)) }
                            td { @if w.stopping { span.badge.paused { "draining" } } @else { span.badge.active { "running" } } }
                        }
                    }
                }
            }
        }
    };
    Ok(ctx.page(
        "workers",
        "Workers",
        Main {
            refresh: Some(3),
            ..Main::default()
        },
        body,
    ))
}

// ---- schedules ----

pub(super) async fn schedules(
    state: Data,
    auth: web::Data<Auth>,
    req: HttpRequest,
    q: Params,
) -> Result<HttpResponse, UiError> {
    let ctx = match Ctx::view(&auth, &req) {
        Ok(c) => c,
        Err(login) => return Ok(login.response()),
    };
    let after = param(&q, "after")
        .map(|a| {
            errand_core::schedule::ScheduleId::parse(a).map_err(|e| UiError::BadRequest {
                field: "after",
                detail: e.to_string(),
            })
        })
        .transpose()?;
    let page = state.store.list_schedules(after.as_ref(), 100).await?;
    let body = html! {
        h1 { "Schedules" }
        (notice(&q))
        @if page.schedules.is_empty() { p.muted { "No schedules. Create one with " code { "POST /v1/schedules" } "." } }
        div.scroll {
            table.schedules {
                thead { tr { th { "Schedule" } th { "Kind" } th { "Queue" } th { "When" } th { "Next fire" } th { "Last run" } th { "Runs" } th { "Status" } th { span.sr-only { "Action" } } } }
                tbody {
                    @for s in &page.schedules {
                        tr #(format!("s-{}", s.id.as_str())) data-schedule=(s.id.as_str()) {
                            td.mono { (s.id.as_str()) }
                            td { (s.kind) }
                            td { a href=(format!("/ui/tasks?queue={}", enc(&s.queue))) { (s.queue) } }
                            td { code { (s.cron) } " " span.muted { (s.timezone) } }
                            td { (opt_ts(s.next_run_at)) }
                            td {
                                (opt_ts(s.last_run_at))
                                @if let Some(t) = &s.last_task_id {
                                    " " a href=(format!("/ui/tasks/{}", enc(t.as_str()))) { "task" }
                                }
                            }
                            td { (s.run_count) }
                            td { @if s.enabled { span.badge.active { "enabled" } } @else { span.badge.paused { "disabled" } } }
                            td {
                                @if ctx.can(Scope::Admin) {
                                    form method="post" action=(format!("/ui/schedules/{}/{}", enc(s.id.as_str()), if s.enabled { "disable" } else { "enable" })) {
                                        (ctx.csrf_field())
                                        button type="submit" { @if s.enabled { "Disable" } @else { "Enable" } }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if let Some(next) = &page.next {
            p { a.next rel="next" href=(format!("/ui/schedules?after={}", enc(next.as_str()))) { "Next page →" } }
        }
    };
    Ok(ctx.page("schedules", "Schedules", Main::default(), body))
}

pub(super) async fn schedule_action(
    state: Data,
    auth: web::Data<Auth>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, UiError> {
    let (id, action) = path.into_inner();
    Ctx::act(&auth, &req, &form.csrf, Scope::Admin)?;
    let sid = errand_core::schedule::ScheduleId::parse(&id).map_err(|e| UiError::BadRequest {
        field: "id",
        detail: e.to_string(),
    })?;
    let enable = match action.as_str() {
        "enable" => true,
        "disable" => false,
        other => return Err(UiError::NotFound(format!("no action `{other}`"))),
    };
    let done = state
        .store
        .set_schedule_enabled(&sid, enable, Utc::now())
        .await?;
    if done.is_none() {
        return Err(UiError::NotFound(format!("no schedule `{id}`")));
    }
    let msg = format!("{} {id}.", if enable { "Enabled" } else { "Disabled" });
    Ok(see_other(&format!(
        "/ui/schedules?notice={}#s-{}",
        enc(&msg),
        enc(&id)
    )))
}
