//! `/ui/tasks`: the filtered task list and its bulk actions.

use std::collections::HashMap;

use actix_web::HttpResponse;
use chrono::Utc;
use errand_core::{
    settings::Scope,
    store::{Cancel, Cursor, ListQuery, Retry},
    task::{QueueName, TaskId, TaskRecord, TaskState},
};
use maud::{Markup, html};
use serde::Deserialize;

use super::{BULK_LIMIT, Data, PAGE, Params, ago, bad_queue, badge, enc, notice, param};
use crate::state::AppState;
use crate::ui::guard::{CsrfToken, Post, Submit};
use crate::ui::{Ctx, Main, UiError, see_other};

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
                .kinds
                .current()
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

    /// The store's listing of the tasks these filters match: a page of the list, or the
    /// slice a bulk action changes.
    fn list(&self, after: Option<Cursor>, limit: usize, budget: usize) -> ListQuery {
        ListQuery {
            state: self.state,
            queue: self.queue.clone(),
            kind: self.kind.clone(),
            after,
            limit,
            budget,
        }
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

pub(in crate::ui) async fn tasks(
    state: Data,
    q: Params,
    ctx: Ctx,
) -> Result<HttpResponse, UiError> {
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
    let page = state.store.list(&f.list(after, PAGE, 1000)).await?;
    let queues = state.store.queues(Utc::now()).await?;
    let known = state.kinds.current();
    let kinds: Vec<&str> = known.names().collect();
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
pub(in crate::ui) struct BulkForm {
    #[serde(default)]
    csrf: String,
    action: String,
    #[serde(flatten)]
    filters: HashMap<String, String>,
}

impl CsrfToken for BulkForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

pub(in crate::ui) async fn bulk(
    state: Data,
    form: Post<BulkForm, Submit>,
) -> Result<HttpResponse, UiError> {
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
        .list(&f.list(None, BULK_LIMIT, BULK_LIMIT * 10))
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
