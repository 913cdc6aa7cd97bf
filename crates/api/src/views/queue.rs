//! Queue limits and bulk jobs to the wire, and a bulk action to the store.

use errand_core::store::{BulkAction, BulkJob, HeldBack, QueueLimits, Rate};
use errand_wire as wire;

use super::{IntoStore, IntoWire};

impl IntoWire for Rate {
    type Wire = wire::Rate;
    fn into_wire(self) -> wire::Rate {
        wire::Rate {
            count: self.count,
            period_ms: self.period_ms,
            burst: self.burst,
        }
    }
}

impl IntoWire for QueueLimits {
    type Wire = wire::Limits;
    fn into_wire(self) -> wire::Limits {
        wire::Limits {
            rate: self.rate.map(IntoWire::into_wire),
            kinds: self
                .kinds
                .into_iter()
                .map(|(k, r)| (k, r.into_wire()))
                .collect(),
            per_key: self.per_key,
        }
    }
}

impl IntoWire for HeldBack {
    type Wire = wire::Held;
    fn into_wire(self) -> wire::Held {
        wire::Held {
            throttled: self.throttled,
            waiting_for_key: self.waiting_for_key,
            keys: self
                .keys
                .into_iter()
                .map(|(key, waiting)| wire::KeyWaiting { key, waiting })
                .collect(),
        }
    }
}

impl IntoWire for BulkAction {
    type Wire = wire::BulkAction;
    fn into_wire(self) -> wire::BulkAction {
        match self {
            BulkAction::Retry => wire::BulkAction::Retry,
            BulkAction::Cancel => wire::BulkAction::Cancel,
            BulkAction::Delete => wire::BulkAction::Delete,
        }
    }
}

impl IntoStore for wire::BulkAction {
    type Store = BulkAction;
    fn into_store(self) -> BulkAction {
        match self {
            wire::BulkAction::Retry => BulkAction::Retry,
            wire::BulkAction::Cancel => BulkAction::Cancel,
            wire::BulkAction::Delete => BulkAction::Delete,
        }
    }
}

impl IntoWire for BulkJob {
    type Wire = wire::BulkJob;
    fn into_wire(self) -> wire::BulkJob {
        let j = self;
        wire::BulkJob {
            id: j.id,
            queue: j.queue,
            action: j.action.into_wire(),
            state: j.filter.state.into_wire(),
            kind: j.filter.kind,
            error_kind: j.filter.error_kind,
            status: j.status,
            total: j.total,
            examined: j.examined,
            matched: j.matched,
            done: j.done,
            skipped: j.skipped,
            started_at: j.started_at,
            finished_at: j.finished_at,
            error: j.error,
        }
    }
}
