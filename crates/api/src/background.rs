//! In-process background tasks: the tutorial chapter's FastAPI `BackgroundTasks` counterpart.
//!
//! A task here is a tokio task inside this API process, and its status is a map entry in
//! this process's memory. That is the whole point of the comparison with the queue: nothing
//! is durable (a restart loses every entry and every task still sleeping), nothing is
//! shared (another API replica knows nothing of it), and nothing is retried. The map is
//! bounded so a client cannot grow the process's memory without limit: when full, the
//! oldest finished entry is evicted; when every entry is still unfinished, a new task is
//! refused.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

/// Where an in-process task is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum BackgroundState {
    /// Accepted; its tokio task has not been polled yet (the response goes out first).
    Pending,
    Running,
    Completed,
}

impl std::fmt::Display for BackgroundState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Completed => "completed",
        })
    }
}

/// Now, to the millisecond, as every errand timestamp is.
fn now() -> DateTime<Utc> {
    chrono::SubsecRound::trunc_subsecs(Utc::now(), 3)
}

/// One in-process task as the status route shows it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub(crate) struct BackgroundStatus {
    #[schema(example = "test123")]
    pub task_id: String,
    pub status: BackgroundState,
    #[schema(example = 5)]
    pub duration_secs: u64,
    pub created_at: DateTime<Utc>,
    /// Null while `pending`.
    #[schema(required = true)]
    pub started_at: Option<DateTime<Utc>>,
    /// Null until `completed`.
    #[schema(required = true)]
    pub finished_at: Option<DateTime<Utc>>,
    /// `task {id} done` once completed; null until then.
    #[schema(required = true, example = "task test123 done")]
    pub message: Option<String>,
}

/// Why a task was not accepted.
#[derive(Debug, PartialEq, thiserror::Error)]
pub(crate) enum Refused {
    #[error("background task `{0}` is still {1}; wait for it to complete")]
    Unfinished(String, BackgroundState),
    #[error("all {capacity} background task slots hold unfinished tasks")]
    Full {
        capacity: usize,
        /// Seconds until the first running task is due to finish.
        retry_after_secs: u64,
    },
}

struct Entry {
    status: BackgroundStatus,
    /// Tells this run's events from those of an earlier run under the same id.
    run: u64,
    /// Key in `Registry::finished` once completed.
    finished_seq: Option<u64>,
}

#[derive(Default)]
struct Registry {
    entries: HashMap<String, Entry>,
    /// Completed entries in completion order, so eviction takes the oldest first.
    finished: BTreeMap<u64, String>,
    next_seq: u64,
}

/// The registry of one API process, shared by all of its HTTP workers.
#[derive(Clone)]
pub(crate) struct BackgroundTasks {
    inner: Arc<Mutex<Registry>>,
    capacity: usize,
}

impl BackgroundTasks {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            inner: Arc::default(),
            capacity: capacity.max(1),
        }
    }

    /// Registers `id` and starts its tokio task on the caller's runtime; answers with the
    /// status as it is now (`pending`: the task runs once the caller yields).
    pub(crate) fn spawn(&self, id: &str, duration_secs: u64) -> Result<BackgroundStatus, Refused> {
        let (status, run) = self.admit(id, duration_secs, now())?;
        let this = self.clone();
        let id = id.to_owned();
        tokio::spawn(async move {
            this.started(&id, run, now());
            tokio::time::sleep(Duration::from_secs(duration_secs)).await;
            this.completed(&id, run, now());
            tracing::info!(task_id = %id, duration_secs, "in-process background task done");
        });
        Ok(status)
    }

    pub(crate) fn get(&self, id: &str) -> Option<BackgroundStatus> {
        self.lock().entries.get(id).map(|e| e.status.clone())
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().entries.len()
    }

    fn lock(&self) -> MutexGuard<'_, Registry> {
        // Every critical section leaves the maps consistent, so a panic elsewhere while
        // holding the lock cannot have left them half-updated.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn admit(
        &self,
        id: &str,
        duration_secs: u64,
        now: DateTime<Utc>,
    ) -> Result<(BackgroundStatus, u64), Refused> {
        let mut reg = self.lock();
        match reg.entries.get(id) {
            Some(e) if e.status.status != BackgroundState::Completed => {
                return Err(Refused::Unfinished(id.to_owned(), e.status.status));
            }
            // A finished id may run again; its old entry gives way.
            Some(e) => {
                if let Some(seq) = e.finished_seq {
                    reg.finished.remove(&seq);
                }
                reg.entries.remove(id);
            }
            None => {}
        }
        if reg.entries.len() >= self.capacity {
            match reg.finished.pop_first() {
                Some((_, old)) => {
                    reg.entries.remove(&old);
                }
                None => {
                    let retry_after_secs = reg
                        .entries
                        .values()
                        .map(|e| {
                            let start = e.status.started_at.unwrap_or(e.status.created_at);
                            let due =
                                start + chrono::Duration::seconds(e.status.duration_secs as i64);
                            (due - now).num_seconds().max(1) as u64
                        })
                        .min()
                        .unwrap_or(1);
                    return Err(Refused::Full {
                        capacity: self.capacity,
                        retry_after_secs,
                    });
                }
            }
        }
        let run = reg.next_seq;
        reg.next_seq += 1;
        let status = BackgroundStatus {
            task_id: id.to_owned(),
            status: BackgroundState::Pending,
            duration_secs,
            created_at: now,
            started_at: None,
            finished_at: None,
            message: None,
        };
        reg.entries.insert(
            id.to_owned(),
            Entry {
                status: status.clone(),
                run,
                finished_seq: None,
            },
        );
        Ok((status, run))
    }

    fn started(&self, id: &str, run: u64, now: DateTime<Utc>) {
        let mut reg = self.lock();
        if let Some(e) = reg.entries.get_mut(id).filter(|e| e.run == run) {
            e.status.status = BackgroundState::Running;
            e.status.started_at = Some(now);
        }
    }

    fn completed(&self, id: &str, run: u64, now: DateTime<Utc>) {
        let mut reg = self.lock();
        let seq = reg.next_seq;
        if let Some(e) = reg.entries.get_mut(id).filter(|e| e.run == run) {
            e.status.status = BackgroundState::Completed;
            e.status.finished_at = Some(now);
            e.status.message = Some(format!("task {id} done"));
            e.finished_seq = Some(seq);
            reg.next_seq += 1;
            reg.finished.insert(seq, id.to_owned());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finish(r: &BackgroundTasks, id: &str, run: u64) {
        r.started(id, run, Utc::now());
        r.completed(id, run, Utc::now());
    }

    #[test]
    fn goes_pending_running_completed_with_its_message() {
        let r = BackgroundTasks::new(10);
        let (s, run) = r.admit("a", 5, Utc::now()).unwrap();
        assert_eq!(s.status, BackgroundState::Pending);
        r.started("a", run, Utc::now());
        assert_eq!(r.get("a").unwrap().status, BackgroundState::Running);
        r.completed("a", run, Utc::now());
        let s = r.get("a").unwrap();
        assert_eq!(s.status, BackgroundState::Completed);
        assert_eq!(s.message.as_deref(), Some("task a done"));
        assert!(s.started_at.is_some() && s.finished_at.is_some());
    }

    #[test]
    fn an_unfinished_id_is_refused_and_a_finished_one_runs_again() {
        let r = BackgroundTasks::new(10);
        let (_, run) = r.admit("a", 5, Utc::now()).unwrap();
        assert_eq!(
            r.admit("a", 5, Utc::now()).unwrap_err(),
            Refused::Unfinished("a".into(), BackgroundState::Pending)
        );
        r.started("a", run, Utc::now());
        assert!(matches!(
            r.admit("a", 5, Utc::now()),
            Err(Refused::Unfinished(_, BackgroundState::Running))
        ));
        r.completed("a", run, Utc::now());
        let (_, run2) = r.admit("a", 1, Utc::now()).unwrap();
        assert_eq!(r.get("a").unwrap().status, BackgroundState::Pending);
        // A late event of the earlier run must not touch the new one.
        r.completed("a", run, Utc::now());
        assert_eq!(r.get("a").unwrap().status, BackgroundState::Pending);
        finish(&r, "a", run2);
        assert_eq!(r.len(), 1);
    }

    #[test]
    fn full_registry_evicts_the_oldest_finished_first() {
        let r = BackgroundTasks::new(3);
        let runs: Vec<u64> = ["a", "b", "c"]
            .iter()
            .map(|id| r.admit(id, 5, Utc::now()).unwrap().1)
            .collect();
        finish(&r, "c", runs[2]);
        finish(&r, "a", runs[0]);
        r.admit("d", 5, Utc::now()).unwrap();
        assert!(r.get("c").is_none(), "c finished first, so it went first");
        assert!(r.get("a").is_some() && r.get("b").is_some());
        r.admit("e", 5, Utc::now()).unwrap();
        assert!(r.get("a").is_none());
        assert_eq!(r.len(), 3);
    }

    #[test]
    fn full_of_unfinished_tasks_refuses_with_a_retry_hint() {
        let r = BackgroundTasks::new(2);
        let now = Utc::now();
        r.admit("a", 30, now).unwrap();
        r.admit("b", 7, now).unwrap();
        assert_eq!(
            r.admit("c", 1, now).unwrap_err(),
            Refused::Full {
                capacity: 2,
                retry_after_secs: 7
            }
        );
        assert!(r.get("c").is_none());
    }
}
