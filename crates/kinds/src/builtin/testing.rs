//! Helpers for the kinds' unit tests: a context outside any worker, and strict decoding.

use errand_core::task::Progress;
use serde_json::Value;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::{Invalid, TaskContext, TaskKind, catalog::decode};

/// A context with default services; the receiver sees its progress reports and the token
/// cancels it.
pub(crate) fn context() -> (
    TaskContext,
    watch::Receiver<Option<Progress>>,
    CancellationToken,
) {
    let (tx, rx) = watch::channel(None);
    let cancel = CancellationToken::new();
    let ctx = TaskContext::new("t-1".into(), 1, tx, cancel.clone());
    (ctx, rx, cancel)
}

/// Decodes `v` as `K`'s payload exactly as the catalog does (field names included).
pub(crate) fn payload<K: TaskKind>(v: Value) -> Result<K::Payload, Invalid> {
    decode::<K>(&v)
}
