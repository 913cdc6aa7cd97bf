use errand_core::{Settings, TaskStore};
use errand_kinds::Catalog;

use crate::{
    access::{Keys, RateLimiter},
    events::Events,
};

/// Everything a handler needs, shared by all workers of the HTTP server.
pub(crate) struct AppState {
    pub store: TaskStore,
    pub catalog: Catalog,
    pub settings: Settings,
    /// Task events from Redis pub/sub, for long-poll and SSE.
    pub events: Events,
    /// `api.api_keys`, as digests.
    pub keys: Keys,
    /// `api.rate_limit`, when on.
    pub rate_limiter: Option<RateLimiter>,
}
