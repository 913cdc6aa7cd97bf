//! `/ui/queues`: per-queue counts, limits and what they hold back, pause and resume, and
//! bulk actions over a whole queue with their progress.

use actix_web::{HttpResponse, web};
use chrono::Utc;
use errand_core::{
    settings::Scope,
    store::{BulkAction, BulkFilter, BulkJob, HeldBack, QueueLimits, Rate},
    task::{QueueName, TaskState},
};
use maud::html;

use super::{CsrfForm, Data, Params, ago, bad_queue, enc, notice};
use crate::ui::guard::{Admin, CsrfToken, Post};
use crate::ui::{Ctx, Main, UiError, charts, see_other};

pub(in crate::ui) async fn queues(
    state: Data,
    q: Params,
    ctx: Ctx,
) -> Result<HttpResponse, UiError> {
    let now = Utc::now();
    let queues = state.store.queues(now).await?;
    let names: Vec<String> = queues.iter().map(|q| q.name.clone()).collect();
    let paused = state.store.paused(&names).await?;
    let mut flow: Vec<(QueueLimits, HeldBack)> = Vec::with_capacity(names.len());
    let mut jobs: Vec<BulkJob> = Vec::new();
    for n in &names {
        flow.push((state.store.limits(n).await?, state.store.held(n).await?));
        jobs.extend(state.store.recent_bulks(n).await?);
    }
    jobs.sort_by_key(|j| std::cmp::Reverse(j.started_at));
    jobs.truncate(20);
    let body = html! {
        h1 { "Queues" }
        (notice(&q))
        p.muted { "A paused queue keeps accepting tasks; its workers take none of them until it is resumed. Tasks already running finish." }
        div.scroll {
            table.queues {
                thead { tr {
                    th { "Queue" } th { "Status" }
                    @for s in TaskState::ALL { th { (s.as_str()) } }
                    th { "Oldest waiting" } th { "Limits" } th { "Held back" } th { span.sr-only { "Action" } }
                } }
                tbody {
                    @for ((qs, p), (lim, held)) in queues.iter().zip(&paused).zip(&flow) {
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
                            td data-limits { (limits_text(lim)) }
                            td data-held {
                                @if held.throttled + held.waiting_for_key == 0 { "—" } @else {
                                    @if held.throttled > 0 { (held.throttled) " throttled" br; }
                                    @if held.waiting_for_key > 0 { (held.waiting_for_key) " wait for key" }
                                    @if let Some((k, n)) = held.keys.first() { br; span.muted { "most: " (k) " (" (n) ")" } }
                                }
                            }
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
        h2 { "Bulk actions" }
        p.muted { "Acts on every task of the queue in that state (and kind, and error kind, when given), in slices of 500 on the server; each task as its own button would: one whose state changed meanwhile is skipped. Limits are set with " code { "PUT /v1/queues/{queue}/limits" } " or " code { "errand limits" } "." }
        @if ctx.can(Scope::Admin) && !names.is_empty() {
            form.bulk method="post" action="/ui/queues/bulk" {
                (ctx.csrf_field())
                label { "Queue " select name="queue" { @for n in &names { option value=(n) { (n) } } } }
                label { "Action " select name="what" {
                    option value="retry:failed" { "Retry failed" }
                    option value="retry:cancelled" { "Retry cancelled" }
                    option value="cancel:queued" { "Cancel queued" }
                    option value="cancel:scheduled" { "Cancel scheduled" }
                    option value="cancel:retrying" { "Cancel retrying" }
                    option value="delete:failed" { "Delete failed" }
                    option value="delete:cancelled" { "Delete cancelled" }
                    option value="delete:succeeded" { "Delete succeeded" }
                } }
                label { "Kind " input name="kind" placeholder="any"; }
                label { "Error kind " input name="error_kind" placeholder="any"; }
                button.danger type="submit" data-confirm="Act on every matching task of the queue?" { "Start" }
            }
        }
        @if jobs.is_empty() { p.muted { "None in the last day." } } @else {
            div.scroll { table.bulks {
                thead { tr { th { "Started" } th { "Queue" } th { "Action" } th { "Filter" } th { "Status" } th { "Progress" } } }
                tbody { @for j in &jobs {
                    tr data-bulk=(j.id) data-status=(j.status) {
                        td { (ago(j.started_at, now)) }
                        td { (j.queue) }
                        td { (j.action.as_str()) " " (j.filter.state.as_str()) }
                        td { (j.filter.kind.as_deref().unwrap_or("any kind")) ", " (j.filter.error_kind.as_deref().unwrap_or("any error")) }
                        td { span.badge { (j.status) } }
                        td data-progress { (j.done) " done, " (j.skipped) " skipped of " (j.matched) " matched; " (j.examined) " of about " (j.total) " examined" }
                    }
                } }
            } }
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

pub(in crate::ui) async fn queue_action(
    state: Data,
    path: web::Path<(String, String)>,
    _: Post<CsrfForm, Admin>,
) -> Result<HttpResponse, UiError> {
    let (queue, action) = path.into_inner();
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

fn rate_text(r: &Rate) -> String {
    let per = match r.period_ms {
        1000 => "s".to_owned(),
        60_000 => "min".to_owned(),
        3_600_000 => "h".to_owned(),
        ms => format!("{ms} ms"),
    };
    if r.burst > 1 {
        format!("{}/{per} (burst {})", r.count, r.burst)
    } else {
        format!("{}/{per}", r.count)
    }
}

/// One line of what a queue's limits are, for its row.
fn limits_text(l: &QueueLimits) -> String {
    let mut parts = Vec::new();
    if let Some(r) = &l.rate {
        parts.push(rate_text(r));
    }
    for (k, r) in &l.kinds {
        parts.push(format!("{k} {}", rate_text(r)));
    }
    if let Some(n) = l.per_key {
        parts.push(format!("{n} per key"));
    }
    if parts.is_empty() {
        "—".to_owned()
    } else {
        parts.join(" · ")
    }
}

#[derive(serde::Deserialize)]
pub(in crate::ui) struct BulkForm {
    #[serde(default)]
    csrf: String,
    queue: String,
    /// `<action>:<state>`, as the form's options give it.
    what: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    error_kind: String,
}

impl CsrfToken for BulkForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

/// `POST /ui/queues/bulk`: starts a bulk action (admin), then back to the page, which
/// shows its progress.
pub(in crate::ui) async fn queue_bulk(
    state: Data,
    form: Post<BulkForm, Admin>,
) -> Result<HttpResponse, UiError> {
    QueueName::parse(&form.queue).map_err(bad_queue)?;
    let bad = |detail: String| UiError::BadRequest {
        field: "what",
        detail,
    };
    let (action, st) = form
        .what
        .split_once(':')
        .ok_or_else(|| bad(format!("`{}` is not <action>:<state>", form.what)))?;
    let action = match action {
        "retry" => BulkAction::Retry,
        "cancel" => BulkAction::Cancel,
        "delete" => BulkAction::Delete,
        other => return Err(bad(format!("no action `{other}`"))),
    };
    let st: TaskState = st.parse().map_err(|_| bad(format!("no state `{st}`")))?;
    if !action.states().contains(&st) {
        return Err(bad(format!(
            "{} does not apply to {} tasks",
            action.as_str(),
            st.as_str()
        )));
    }
    let kind = match form.kind.trim() {
        "" => None,
        k => match state.kinds.current().resolve(k) {
            Some(c) => Some(c.to_owned()),
            None => {
                return Err(UiError::BadRequest {
                    field: "kind",
                    detail: format!("no kind `{k}`"),
                });
            }
        },
    };
    let error_kind = Some(form.error_kind.trim().to_owned()).filter(|e| !e.is_empty());
    let job = crate::routes::bulk::begin(
        &state,
        &form.queue,
        action,
        BulkFilter {
            state: st,
            kind,
            error_kind,
        },
    )
    .await?;
    let msg = format!(
        "Started: {} every {} task of {} ({} in that state now).",
        action.as_str(),
        st.as_str(),
        form.queue,
        job.total
    );
    Ok(see_other(&format!("/ui/queues?notice={}", enc(&msg))))
}
