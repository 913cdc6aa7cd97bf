//! `/ui/queues`: per-queue counts and history, pause and resume.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::Utc;
use errand_core::{
    settings::Scope,
    task::{QueueName, TaskState},
};
use maud::html;

use super::{CsrfForm, Data, Params, ago, bad_queue, enc, notice};
use crate::ui::{Auth, Ctx, Main, UiError, charts, see_other};

pub(in crate::ui) async fn queues(
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

pub(in crate::ui) async fn queue_action(
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
