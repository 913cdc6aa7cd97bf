//! errand's task model: the record clients see, its states and identifiers.
//! apalis's own job statuses never leave the worker; this is the only truth the API serves.

mod backoff;
pub mod bounds;
mod id;
mod queue;
pub(crate) mod record;
mod state;
mod webhook;

pub use backoff::{backoff, jitter};

/// The priority of a task submitted without one: the middle of [`bounds::PRIORITY`].
pub const DEFAULT_PRIORITY: u8 = 5;
pub use id::{InvalidTaskId, TaskId};
pub use queue::{InvalidQueueName, QueueName};
pub use record::{CorruptRecord, Progress, TaskError, TaskRecord, rfc3339};
pub use state::{TaskState, UnknownState};
pub use webhook::{Callback, WebhookEvent, WebhookState, WebhookStatus};
