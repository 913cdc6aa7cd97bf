//! errand's task model: the record clients see, its states and identifiers.
//! apalis's own job statuses never leave the worker; this is the only truth the API serves.

mod id;
pub(crate) mod record;
mod state;
mod webhook;

pub use id::{InvalidTaskId, TaskId};
pub use record::{Progress, TaskError, TaskRecord, rfc3339};
pub use state::{TaskState, UnknownState};
pub use webhook::{Callback, WebhookEvent, WebhookState, WebhookStatus};
