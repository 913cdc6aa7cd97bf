//! `/ui/schedules`: schedules, enable/disable and delete.

use actix_web::{HttpResponse, web};
use chrono::Utc;
use errand_core::settings::Scope;
use maud::html;

use super::{CsrfForm, Data, Params, enc, notice, opt_ts, param};
use crate::ui::guard::{Admin, Post};
use crate::ui::{Ctx, Main, UiError, see_other};

pub(in crate::ui) async fn schedules(
    state: Data,
    q: Params,
    ctx: Ctx,
) -> Result<HttpResponse, UiError> {
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

pub(in crate::ui) async fn schedule_action(
    state: Data,
    path: web::Path<(String, String)>,
    _: Post<CsrfForm, Admin>,
) -> Result<HttpResponse, UiError> {
    let (id, action) = path.into_inner();
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
