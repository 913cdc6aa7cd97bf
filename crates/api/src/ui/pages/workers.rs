//! `/ui/workers`: the live worker registry.

use actix_web::HttpResponse;
use chrono::Utc;
use maud::html;

use super::{Data, ago, enc, ts};
use crate::ui::{Ctx, Main, UiError};

pub(in crate::ui) async fn workers(state: Data, ctx: Ctx) -> Result<HttpResponse, UiError> {
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
