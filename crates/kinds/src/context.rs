//! What a running attempt sees (`TaskContext`: payload, inputs, progress, cancel) and how it
//! fails (`Failure`, `FailureKind`).

use std::{fmt, sync::Arc};

use errand_core::task::{Progress, TaskError};
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
    /// A workflow step's dependencies' ends by step name (docs/workflows.md).
    inputs: Option<Arc<serde_json::Value>>,
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
            inputs: None,
        }
    }

    /// The same context for a workflow step with these inputs (`None`: not a step).
    pub fn with_inputs(mut self, inputs: Option<serde_json::Value>) -> Self {
        self.inputs = inputs.map(Arc::new);
        self
    }

    /// A workflow step's inputs: for each step it runs after, by name, that step's end:
    /// `{"id", "state", "result"}` when it succeeded, `{"id", "state", "error"}` when not
    /// (a map step's `result` is the list of what it spawned's results). `None` for a task
    /// outside a workflow; an empty object for a first step.
    pub fn inputs(&self) -> Option<&serde_json::Value> {
        self.inputs.as_deref()
    }

    /// The result of dependency `step`, when it succeeded.
    pub fn input(&self, step: &str) -> Option<&serde_json::Value> {
        self.inputs()?.get(step)?.get("result")
    }

    pub(crate) fn with_services(mut self, services: Arc<Services>) -> Self {
        self.services = services;
        self
    }

    pub(crate) fn services(&self) -> &Services {
        &self.services
    }

    /// The task's id (for logs, or an idempotency key towards other systems).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Which attempt this is, 1 for the first: a kind may behave differently on a retry.
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
        self.cancel.cancelled().await;
    }

    /// Whether [`cancelled`](Self::cancelled) has resolved: for loops that poll.
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
    /// The stored `error.kind`: one of [`FailureKind`]'s names, or one a task kind defines
    /// (`http_status`, `smtp_transient` …). Free text so that a kind can add categories
    /// without touching errand; the ones errand itself acts on are typed by [`FailureKind`].
    pub kind: String,
    /// For people: what went wrong.
    pub message: String,
    /// False for failures another attempt cannot fix (bad input, a 4xx from a peer).
    pub retryable: bool,
}

impl Failure {
    /// A failure another attempt may not meet (a timeout of a peer, a 5xx, a dropped link).
    pub fn retryable(kind: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            kind: kind.into(),
            message: message.into(),
            retryable: true,
        }
    }

    /// A failure every attempt would meet: the task fails at once, attempts left or not.
    pub fn permanent(kind: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            kind: kind.into(),
            message: message.into(),
            retryable: false,
        }
    }

    /// Whether this failure is of errand's kind `kind`: the one place a failure's text is
    /// matched against a category errand acts on, so the names live in [`FailureKind`].
    pub fn is(&self, kind: FailureKind) -> bool {
        self.kind == kind.as_str()
    }
}

/// The failure categories errand itself produces or acts on; their names are part of the
/// API (`error.kind` on a record, the `kind` label of the failure metrics) and must not
/// change. Task kinds may use them too (`timeout`, `cancelled`), and may add their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureKind {
    /// The attempt ran past the task's `timeout_secs`.
    Timeout,
    /// Stopped on request; with the task's token cancelled this ends the task `cancelled`.
    Cancelled,
    /// The task's code panicked (caught, recorded, retried like any retryable failure).
    Panic,
    /// The attempt's tokio task was aborted without panicking.
    Aborted,
    /// The stored record's payload does not decode.
    CorruptRecord,
    /// The output is over `tasks.max_result_bytes`.
    ResultTooLarge,
}

impl FailureKind {
    /// The stored name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Cancelled => "cancelled",
            Self::Panic => "panic",
            Self::Aborted => "aborted",
            Self::CorruptRecord => "corrupt_record",
            Self::ResultTooLarge => "result_too_large",
        }
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<FailureKind> for String {
    fn from(k: FailureKind) -> Self {
        k.as_str().to_owned()
    }
}

/// What a record stores of a failure: its kind and message (retryability was spent on the
/// retry decision).
impl From<Failure> for TaskError {
    fn from(f: Failure) -> Self {
        Self {
            kind: f.kind,
            message: f.message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_kinds_match_their_stored_names() {
        let f = Failure::retryable(FailureKind::Timeout, "slow");
        assert_eq!(f.kind, "timeout");
        assert!(f.is(FailureKind::Timeout));
        assert!(!f.is(FailureKind::Cancelled));
        assert!(Failure::permanent("cancelled", "stop").is(FailureKind::Cancelled));
        let e = TaskError::from(Failure::permanent("http_status", "404"));
        assert_eq!(
            (e.kind.as_str(), e.message.as_str()),
            ("http_status", "404")
        );
    }
}
