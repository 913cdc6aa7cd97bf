//! `/ui`: every queue at a glance, with the last hour's charts.

use actix_web::HttpResponse;
use chrono::Utc;
use maud::html;

use super::{Data, Params, enc, param};
use crate::ui::{Ctx, Main, UiError, charts};

pub(in crate::ui) async fn overview(
    state: Data,
    q: Params,
    ctx: Ctx,
) -> Result<HttpResponse, UiError> {
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
