use std::{fmt, sync::Arc};

use errand_core::task::Progress;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::services::Services;

/// What a running task can see and do besides its payload.
#[derive(Clone)]
pub struct TaskContext {
    id: String,
    attempt: u32,
    progress: watch::Sender<Option<Progress>>,
    cancel: CancellationToken,
    /// The catalog's settings and clients; a context built outside a catalog gets defaults.
    services: Arc<Services>,
}

impl TaskContext {
    /// Used by the worker; the receiver side forwards progress to the task record.
    pub fn new(
        id: String,
        attempt: u32,
        progress: watch::Sender<Option<Progress>>,
        cancel: CancellationToken,
    ) -> Self {
        Self {
            id,
            attempt,
            progress,
            cancel,
            services: Arc::new(Services::default()),
        }
    }

    pub(crate) fn with_services(mut self, services: Arc<Services>) -> Self {
        self.services = services;
        self
    }

    pub(crate) fn services(&self) -> &Services {
        &self.services
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Reports progress. Cheap: only the latest value is kept and the worker writes it to
    /// Redis at its own pace, so a chatty task cannot flood Redis.
    pub fn report(&self, percent: u8, message: impl Into<Option<String>>) {
        let _ = self.progress.send(Some(Progress {
            percent: percent.min(100),
            message: message.into(),
        }));
    }

    /// Resolves when the task was cancelled (by a client, by its timeout, or by shutdown).
    pub async fn cancelled(&self) {
        self.cancel.cancelled().await
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }
}

impl fmt::Debug for TaskContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskContext")
            .field("id", &self.id)
            .field("attempt", &self.attempt)
            .finish()
    }
}

/// A failed attempt, as a task kind reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub kind: String,
    pub message: String,
    /// False for failures another attempt cannot fix (bad input, a 4xx from a peer).
    pub retryable: bool,
}

impl Failure {
    pub fn retryable(kind: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            kind: kind.into(),
            message: message.into(),
            retryable: true,
        }
    }

    pub fn permanent(kind: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            kind: kind.into(),
            message: message.into(),
            retryable: false,
        }
    }
}
