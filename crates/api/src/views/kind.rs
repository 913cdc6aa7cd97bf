//! Kinds to the wire (`GET /v1/kinds`): the registered definition, and who runs it.

use errand_wire as wire;

use super::IntoWire;
use crate::registry::Kind;

impl IntoWire for &Kind {
    type Wire = wire::KindInfo;
    fn into_wire(self) -> wire::KindInfo {
        let c = &self.current;
        let d = &c.kind.definition;
        wire::KindInfo {
            name: d.name.clone(),
            aliases: d.aliases.clone(),
            summary: d.summary.clone(),
            idempotent: d.idempotent,
            payload_schema: d.payload_schema.clone(),
            result_schema: d.result_schema.clone(),
            example: d.example.clone(),
            digest: c.kind.digest.clone(),
            registered_at: c.kind.registered_at,
            registered_by: c.kind.registered_by.clone(),
            workers: c.workers.iter().map(|w| w.name.clone()).collect(),
            queues: c.queues.clone(),
            schemas_differ: c.schemas_differ(),
        }
    }
}
