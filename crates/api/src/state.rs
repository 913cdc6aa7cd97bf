use errand_core::{Settings, TaskStore};
use errand_tasks::Catalog;

/// Everything a handler needs, shared by all workers of the HTTP server.
#[derive(Clone)]
pub struct AppState {
    pub store: TaskStore,
    pub catalog: Catalog,
    pub settings: Settings,
}
