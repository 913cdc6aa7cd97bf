//! The dashboard's pages and form actions, one module per page; what they share is here.

mod kinds;
mod login;
mod overview;
mod queues;
mod schedules;
mod task;
mod tasks;
mod workers;
mod workflows;

use std::collections::HashMap;

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use errand_core::task::{InvalidQueueName, TaskState};
use maud::{Markup, html};
use serde::Deserialize;

use super::{UiError, charts, guard::CsrfToken};
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

pub(super) use super::enc;

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
                    li { a href="/ui" { "Dashboard" } " — queues, tasks, workers, kinds, schedules" }
                    li { a href="/docs/" { "API reference (Swagger UI)" } " · " a href="/redoc" { "ReDoc" } }
                    li { a href="/openapi.json" { "OpenAPI document" } }
                }
            }
        },
    );
    super::html_response(actix_web::http::StatusCode::OK).body(markup.into_string())
}

pub(super) use kinds::kinds;
pub(super) use login::{login, login_form, logout};
pub(super) use overview::overview;
pub(super) use queues::{queue_action, queue_bulk, queues};
pub(super) use schedules::{schedule_action, schedules};
pub(super) use task::{task, task_action, task_events};
pub(super) use tasks::{bulk, tasks};
pub(super) use workers::workers;
pub(super) use workflows::{workflow, workflow_cancel, workflows};

/// A form that carries only the session's CSRF token (the action is in the path).
#[derive(Deserialize)]
pub(super) struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

impl CsrfToken for CsrfForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}
