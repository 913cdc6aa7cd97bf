//! `/ui/workflows`: workflows, newest first; `/ui/workflows/{id}`: one workflow's graph,
//! drawn on the server as SVG (steps in columns by how many steps lead to them, a map
//! step's spawned steps in the column after it), its steps' states refreshed while it runs,
//! and its cancel.

use std::collections::HashMap;

use actix_web::{HttpResponse, web};
use chrono::Utc;
use errand_core::{
    settings::Scope,
    workflow::{StepRecord, WorkflowId, WorkflowRecord, WorkflowState},
};
use maud::{Markup, html};

use super::{CsrfForm, Data, Params, enc, notice, opt_ts, ts};
use crate::ui::guard::{Post, Submit};
use crate::ui::{Ctx, Main, UiError, see_other};

/// Graphs of more steps than this are left to the table (a browser draws them poorly).
const MOST_DRAWN: usize = 300;
const NODE_W: i64 = 150;
const NODE_H: i64 = 38;
const GAP_X: i64 = 56;
const GAP_Y: i64 = 14;

fn state_badge(s: &str) -> Markup {
    html! { span class=(format!("badge {s}")) { (s) } }
}

fn parse(id: &str) -> Result<WorkflowId, UiError> {
    WorkflowId::parse(id).map_err(|e| UiError::BadRequest {
        field: "id",
        detail: e.to_string(),
    })
}

pub(in crate::ui) async fn workflows(
    state: Data,
    q: Params,
    ctx: Ctx,
) -> Result<HttpResponse, UiError> {
    let (page, _) = state.store.workflows(None, 100).await?;
    let body = html! {
        h1 { "Workflows" }
        (notice(&q))
        @if page.is_empty() { p.muted { "No workflows. Submit one with " code { "POST /v1/workflows" } " (docs/workflows.md)." } }
        div.scroll {
            table.workflows {
                thead { tr { th { "Workflow" } th { "State" } th { "Steps ended" } th { "Submitted" } th { "Ended" } } }
                tbody {
                    @for w in &page {
                        tr data-workflow=(w.id) {
                            td.mono { a href=(format!("/ui/workflows/{}", enc(&w.id))) { (w.id) } }
                            td { (state_badge(w.state.as_str())) }
                            td { (w.ended_steps) " / " (w.steps) }
                            td { (ts(w.created_at)) }
                            td { (opt_ts(w.ended_at)) }
                        }
                    }
                }
            }
        }
    };
    Ok(ctx.page(
        "workflows",
        "Workflows",
        Main {
            refresh: Some(3),
            ..Main::default()
        },
        body,
    ))
}

/// What a step shows: its task's state while it runs, else its own.
fn shown(s: &StepRecord) -> String {
    match (s.state.as_str(), s.task_state) {
        ("started", Some(t)) => t.as_str().to_owned(),
        (st, _) => st.to_owned(),
    }
}

/// Each step's column: one after the deepest step it runs after; a spawned step right
/// after its map step. Columns are then numbered without gaps.
fn columns(r: &WorkflowRecord) -> HashMap<&str, i64> {
    let mut depth: HashMap<&str, i64> = HashMap::new();
    // Submitted steps come before what they spawn and, being a DAG checked at submit, any
    // order of them settles in as many passes as the longest path.
    for _ in 0..r.steps.len() {
        let mut changed = false;
        for s in &r.steps {
            let d = match &s.parent {
                Some(p) => depth.get(p.as_str()).copied().unwrap_or(0) + 1,
                None => s
                    .after
                    .iter()
                    .map(|a| {
                        let dep = depth.get(a.step.as_str()).copied().unwrap_or(0);
                        // After a map step: one more column for what it spawned.
                        let spawned = r.steps.iter().any(|x| x.name == a.step && x.map);
                        dep + if spawned { 2 } else { 1 }
                    })
                    .max()
                    .unwrap_or(0),
            };
            if depth.get(s.name.as_str()) != Some(&d) {
                depth.insert(&s.name, d);
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    let mut used: Vec<i64> = depth.values().copied().collect();
    used.sort_unstable();
    used.dedup();
    let at: HashMap<i64, i64> = used
        .iter()
        .enumerate()
        .map(|(i, d)| (*d, i as i64))
        .collect();
    depth.into_iter().map(|(k, d)| (k, at[&d])).collect()
}

/// The graph: a box per step (class = what it shows, for the colours), a curve per
/// dependency, and from a map step to each step it spawned.
fn graph(r: &WorkflowRecord) -> Markup {
    let col = columns(r);
    let mut rows: HashMap<i64, i64> = HashMap::new();
    let mut pos: HashMap<&str, (i64, i64)> = HashMap::new();
    for s in &r.steps {
        let c = col[s.name.as_str()];
        let row = rows.entry(c).or_insert(0);
        pos.insert(
            &s.name,
            (c * (NODE_W + GAP_X) + 8, *row * (NODE_H + GAP_Y) + 8),
        );
        *row += 1;
    }
    let width = (rows.keys().max().copied().unwrap_or(0) + 1) * (NODE_W + GAP_X);
    let height = rows.values().max().copied().unwrap_or(1) * (NODE_H + GAP_Y) + 8;
    let mut edges: Vec<(&str, &str)> = Vec::new();
    for s in &r.steps {
        for a in &s.after {
            // What a map step spawned feeds the step after it.
            let kids: Vec<&str> = r
                .steps
                .iter()
                .filter(|k| k.parent.as_deref() == Some(a.step.as_str()))
                .map(|k| k.name.as_str())
                .collect();
            if kids.is_empty() {
                edges.push((&a.step, &s.name));
            } else {
                edges.extend(kids.into_iter().map(|k| (k, s.name.as_str())));
            }
        }
        if let Some(p) = &s.parent {
            edges.push((p, &s.name));
        }
    }
    html! {
        svg.graph role="img" aria-label=(format!("graph of workflow {}", r.id))
            width=(width) height=(height) viewBox=(format!("0 0 {width} {height}")) xmlns="http://www.w3.org/2000/svg" {
            @for (from, to) in &edges {
                @if let (Some(&(x1, y1)), Some(&(x2, y2))) = (pos.get(from), pos.get(to)) {
                    @let (sx, sy, ex, ey) = (x1 + NODE_W, y1 + NODE_H / 2, x2, y2 + NODE_H / 2);
                    path.edge d=(format!("M{sx},{sy} C{},{sy} {},{ey} {ex},{ey}", sx + GAP_X / 2, ex - GAP_X / 2)) {}
                }
            }
            @for s in &r.steps {
                @let (x, y) = pos[s.name.as_str()];
                @let what = shown(s);
                g class=(format!("node {what}")) data-step=(s.name) data-state=(what) {
                    title { (s.name) ": " (what) " (" (s.task.kind) ", queue " (s.task.queue) ")" }
                    rect x=(x) y=(y) width=(NODE_W) height=(NODE_H) rx="5" {}
                    text.name x=(x + 8) y=(y + 15) { (truncate(&s.name, 20)) }
                    text.state x=(x + 8) y=(y + 31) { (what) @if s.map && s.spawned > 0 { " · " (s.spawned) " spawned" } }
                }
            }
        }
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        format!("{}…", s.chars().take(n - 1).collect::<String>())
    }
}

pub(in crate::ui) async fn workflow(
    state: Data,
    path: web::Path<String>,
    q: Params,
    ctx: Ctx,
) -> Result<HttpResponse, UiError> {
    let id = parse(&path)?;
    let Some(r) = state.store.workflow(id.as_str()).await? else {
        return Err(UiError::NotFound(format!(
            "no workflow `{id}` (never submitted, or it ended longer ago than its result TTL)"
        )));
    };
    let running = r.state == WorkflowState::Running;
    let ended = r.steps.iter().filter(|s| s.state.is_terminal()).count();
    let now = Utc::now();
    let body = html! {
        div.title-row {
            h1 { "Workflow " span.mono { (r.id) } " " (state_badge(r.state.as_str())) }
            @if running && ctx.can(Scope::Submit) {
                form method="post" action=(format!("/ui/workflows/{}/cancel", enc(&r.id))) {
                    (ctx.csrf_field())
                    button.danger type="submit" disabled[r.cancel_requested] {
                        @if r.cancel_requested { "Cancelling…" } @else { "Cancel workflow" }
                    }
                }
            }
        }
        (notice(&q))
        p {
            (ended) " of " (r.steps.len()) " steps ended · submitted " (ts(r.created_at))
            @if let Some(e) = r.ended_at { " · ended " (ts(e)) " (" (super::charts::duration((e - r.created_at).num_milliseconds() as f64)) ")" }
            @else { " · running for " (super::charts::duration((now - r.created_at).num_milliseconds().max(0) as f64)) }
        }
        @if r.steps.len() <= MOST_DRAWN {
            div.scroll.graph-box { (graph(&r)) }
        } @else {
            p.muted { "The graph is drawn for workflows of at most " (MOST_DRAWN) " steps; the table has every step." }
        }
        div.scroll {
            table.steps {
                thead { tr { th { "Step" } th { "State" } th { "Task" } th { "Kind" } th { "Queue" } th { "After" } th { "Error" } } }
                tbody {
                    @for s in &r.steps {
                        tr data-step=(s.name) {
                            td.mono { (s.name) }
                            td { (state_badge(&shown(s))) }
                            td.mono {
                                @if s.skipped || s.state.as_str() == "waiting" { span.muted { "—" } }
                                @else { a href=(format!("/ui/tasks/{}", enc(&s.task_id))) { (s.task_id) } }
                            }
                            td { (s.task.kind) }
                            td { (s.task.queue) }
                            td { @for (i, a) in s.after.iter().enumerate() { @if i > 0 { ", " } (a.step) @if a.on_failure == errand_core::workflow::OnFailure::Run { span.muted { " (runs on failure)" } } } }
                            td { @if let Some(k) = s.end.as_ref().and_then(|e| e.get("error")).and_then(|e| e.get("kind")).and_then(|k| k.as_str()) { code { (k) } } }
                        }
                    }
                }
            }
        }
    };
    Ok(ctx.page(
        "workflows",
        &format!("Workflow {}", r.id),
        Main {
            refresh: running.then_some(1),
            ..Main::default()
        },
        body,
    ))
}

pub(in crate::ui) async fn workflow_cancel(
    state: Data,
    path: web::Path<String>,
    _: Post<CsrfForm, Submit>,
) -> Result<HttpResponse, UiError> {
    let id = parse(&path)?;
    let Some(before) = state.store.workflow(id.as_str()).await? else {
        return Err(UiError::NotFound(format!("no workflow `{id}`")));
    };
    crate::routes::workflows::cancel(&state, &before).await?;
    Ok(see_other(&format!(
        "/ui/workflows/{}?notice={}",
        enc(id.as_str()),
        enc("Cancel requested: steps not started never will; running ones are told to stop.")
    )))
}
