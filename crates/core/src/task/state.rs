//! The seven states a stored task can be in, and their names in Redis and the scripts.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

/// Where a task is in its life. Who moves it:
/// - `scheduled`: submitted with a delay; upkeep (in any worker or api process) queues it when due.
/// - `queued`: waiting for a worker; a worker moves it to `running`.
/// - `running`: a worker holds its lease; the worker ends it, or another worker takes it over
///   (as a new attempt) when the lease lapses.
/// - `retrying`: the last attempt failed and attempts remain; re-queued at `next_attempt_at`.
/// - `succeeded`, `failed`, `cancelled`: terminal, kept for the result TTL, then deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskState {
    /// Waiting for its `run_at` (or a delay) before it is queued.
    Scheduled,
    /// Ready; the next free worker slot on its queue takes it.
    Queued,
    /// An attempt holds it, under a lease.
    Running,
    /// An attempt failed with attempts left; waiting for its backoff.
    Retrying,
    /// Terminal: ran to the end, its result is recorded.
    Succeeded,
    /// Terminal: no attempts left, or a failure retrying cannot fix.
    Failed,
    /// Terminal: a client cancelled it.
    Cancelled,
}

impl TaskState {
    /// Every state, in lifecycle order (listings and counts show them so).
    pub const ALL: [TaskState; 7] = [
        Self::Scheduled,
        Self::Queued,
        Self::Running,
        Self::Retrying,
        Self::Succeeded,
        Self::Failed,
        Self::Cancelled,
    ];

    /// The name used in the API and in Redis.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Scheduled => "scheduled",
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Retrying => "retrying",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    /// Whether nothing will move it any more (its record now has a TTL).
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Cancelled)
    }
}

/// A state name that is none of the seven.
#[derive(Debug, thiserror::Error)]
#[error("unknown task state `{0}`")]
pub struct UnknownState(pub String);

impl FromStr for TaskState {
    type Err = UnknownState;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| UnknownState(s.to_owned()))
    }
}

impl fmt::Display for TaskState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_its_wire_name() {
        for st in TaskState::ALL {
            assert_eq!(st.as_str().parse::<TaskState>().unwrap(), st);
            assert_eq!(serde_json::to_value(st).unwrap(), st.as_str());
        }
        assert!("done".parse::<TaskState>().is_err());
    }

    #[test]
    fn exactly_three_states_are_terminal() {
        let terminal: Vec<_> = TaskState::ALL
            .into_iter()
            .filter(|s| s.is_terminal())
            .collect();
        assert_eq!(
            terminal,
            [
                TaskState::Succeeded,
                TaskState::Failed,
                TaskState::Cancelled
            ]
        );
    }
}
