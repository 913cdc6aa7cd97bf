//! `/ui/kinds`: the kind registry: what each kind takes (its payload schema), who runs it
//! and on which queues, and the kinds whose tasks wait because no live worker runs them.

use actix_web::HttpResponse;
use maud::html;

use super::{Data, ts};
use crate::ui::{Ctx, Main, UiError};

pub(in crate::ui) async fn kinds(state: Data, ctx: Ctx) -> Result<HttpResponse, UiError> {
    let snapshot = state.kinds.refresh(&state.store).await?;
    let body = html! {
        h1 { "Kinds" }
        p.muted { "Registered by the workers that run them; submits are validated against each kind's payload schema." }
        @if snapshot.kinds.is_empty() { p.muted { "No kind is registered yet." } }
        div.scroll {
            table.kinds {
                thead { tr { th { "Kind" } th { "Aliases" } th { "Summary" } th { "Idempotent" } th { "Workers" } th { "Queues" } th { "Schema" } } }
                tbody {
                    @for k in snapshot.kinds.values() {
                        @let d = k.definition();
                        @let c = &k.current;
                        tr id=(format!("kind-{}", d.name)) {
                            td.mono { (d.name) }
                            td.mono { @if d.aliases.is_empty() { "—" } @else { (d.aliases.join(", ")) } }
                            td { (d.summary) }
                            td { @if d.idempotent { "yes" } @else { "no" } }
                            td {
                                @if c.workers.is_empty() {
                                    span.badge.paused title="Tasks of this kind are accepted and wait for a worker that runs it." { "no live worker" }
                                } @else {
                                    (c.workers.len())
                                    @for w in &c.workers { br; span.mono.muted { (w.name) } }
                                }
                                @if c.schemas_differ() {
                                    br; span.badge.paused title="Live workers registered different definitions (a rolling deploy); the newest worker's validates." { "schemas differ" }
                                }
                            }
                            td { @if c.queues.is_empty() { "—" } @else { (c.queues.join(", ")) } }
                            td {
                                details {
                                    summary { span.mono { (c.kind.digest) } }
                                    p.muted { "Registered " (ts(c.kind.registered_at)) " by " span.mono { (c.kind.registered_by) } }
                                    p { "Payload schema" }
                                    pre.mono { (format!("{:#}", d.payload_schema)) }
                                    p { "Result schema" }
                                    pre.mono { (format!("{:#}", d.result_schema)) }
                                    p { "Example payload" }
                                    pre.mono { (format!("{:#}", d.example)) }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(ctx.page(
        "kinds",
        "Kinds",
        Main {
            refresh: Some(5),
            ..Main::default()
        },
        body,
    ))
}
