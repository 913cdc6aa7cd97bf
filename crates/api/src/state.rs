use errand_core::{Settings, TaskStore};
use errand_tasks::Catalog;

use crate::events::Events;

/// Everything a handler needs, shared by all workers of the HTTP server.
#[derive(Clone)]
pub struct AppState {
    pub store: TaskStore,
    pub catalog: Catalog,
    pub settings: Settings,
    /// Task events from Redis pub/sub, for long-poll and SSE.
    pub events: Events,
}
