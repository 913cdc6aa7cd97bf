//! What every handler is given: the store, the kind registry, settings and the process's shared parts.

use std::sync::Arc;

use errand_core::{Settings, TaskStore};
use tokio_util::sync::CancellationToken;

use crate::{
    access::{keys::Keys, rate_limit::RateLimiter},
    events::Events,
    registry::Kinds,
};

/// Everything a handler needs. One per HTTP worker thread: each has its own Redis
/// connection (see `errand_core::store::Connector`); the rest is shared by all of them.
#[derive(Clone)]
pub(crate) struct AppState {
    /// This worker thread's connection.
    pub store: TaskStore,
    /// The kind registry as this process last read it.
    pub kinds: Arc<Kinds>,
    pub settings: Settings,
    /// Task events from Redis pub/sub, for long-poll and SSE.
    pub events: Events,
    /// Workflow events (`<workflow> <step> <state>` lines), for the workflow SSE.
    pub workflow_events: Events,
    /// Told of every workflow step ended through this process (the HTTP worker protocol,
    /// cancel, retry), so the next step starts at once.
    pub advancer: errand_core::advance::Advancer,
    /// `api.api_keys`, as digests.
    pub keys: Arc<Keys>,
    /// `api.rate_limit`, when on (one budget per process, across worker threads).
    pub rate_limiter: Option<Arc<RateLimiter>>,
    /// Cancelled when the process starts to stop: long-polls answer with the record as it
    /// is and event streams end, rather than hold the stop up.
    pub stopping: CancellationToken,
}
