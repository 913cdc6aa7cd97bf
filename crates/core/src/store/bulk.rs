//! Bulk actions (`bulk.lua`): retry, cancel or delete every task of a queue matching a
//! state, a kind and an error kind, in bounded slices, so a million matches never hold
//! Redis for more than one slice's call. A job's progress lives in Redis
//! (`prefix:{q}:bulk:<id>`, a day after its last change) so any api process answers for it
//! (docs/flow-control.md).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use super::{Cursor, ListQuery, StoreError, TaskStore, script::script};
use crate::task::{TaskState, rfc3339};

static BULK: std::sync::LazyLock<redis::Script> = script!("bulk.lua");

/// Records one listing call reads, and most index entries it examines.
const SLICE: usize = 500;
const BUDGET: usize = 5_000;
/// How many of a queue's jobs [`TaskStore::recent_bulks`] keeps.
const RECENT: usize = 20;
/// How long a job's progress stays readable after its last change.
const KEEP_SECS: i64 = 86_400;

/// What a bulk action does to each match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BulkAction {
    /// Queue a failed or cancelled task again with a fresh budget.
    Retry,
    /// Cancel a task that has not ended (a running one by request to its worker).
    Cancel,
    /// Remove a terminal record now (its id then reads as expired).
    Delete,
}

impl BulkAction {
    /// Its name on the wire and in the job record.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Retry => "retry",
            Self::Cancel => "cancel",
            Self::Delete => "delete",
        }
    }

    /// The states it applies to; the first is the default.
    pub fn states(self) -> &'static [TaskState] {
        match self {
            Self::Retry => &[TaskState::Failed, TaskState::Cancelled],
            Self::Cancel => &[
                TaskState::Queued,
                TaskState::Scheduled,
                TaskState::Retrying,
                TaskState::Running,
            ],
            Self::Delete => &[
                TaskState::Failed,
                TaskState::Cancelled,
                TaskState::Succeeded,
            ],
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [Self::Retry, Self::Cancel, Self::Delete]
            .into_iter()
            .find(|a| a.as_str() == s)
    }
}

/// Which tasks of the queue a job acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkFilter {
    /// One of the action's [`BulkAction::states`].
    pub state: TaskState,
    /// Only this kind.
    pub kind: Option<String>,
    /// Only tasks whose last error has this kind (`timeout`, `worker_lost`, one a kind
    /// defines).
    pub error_kind: Option<String>,
}

/// A bulk job as stored: what it does and how far it got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkJob {
    /// Its id (time-ordered, the id alphabet).
    pub id: String,
    /// The queue it works on.
    pub queue: String,
    /// What it does.
    pub action: BulkAction,
    /// To what.
    pub filter: BulkFilter,
    /// `running`, `done`, `interrupted` (its api process stopped: start it again, it
    /// acts only on what still matches) or `failed` (Redis refused; `error` says why).
    pub status: String,
    /// Tasks in the state when it started: what `examined` runs up to, about.
    pub total: u64,
    /// Records looked at.
    pub examined: u64,
    /// Of those, the ones the filter matched.
    pub matched: u64,
    /// Matches acted on.
    pub done: u64,
    /// Matches whose state changed before their turn (left as they are).
    pub skipped: u64,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it ended; `None` while running.
    pub finished_at: Option<DateTime<Utc>>,
    /// Why it failed.
    pub error: Option<String>,
}

impl BulkJob {
    fn fields(&self) -> Vec<(&'static str, String)> {
        vec![
            ("action", self.action.as_str().to_owned()),
            ("state", self.filter.state.as_str().to_owned()),
            ("kind", self.filter.kind.clone().unwrap_or_default()),
            (
                "error_kind",
                self.filter.error_kind.clone().unwrap_or_default(),
            ),
            ("status", self.status.clone()),
            ("total", self.total.to_string()),
            ("examined", self.examined.to_string()),
            ("matched", self.matched.to_string()),
            ("done", self.done.to_string()),
            ("skipped", self.skipped.to_string()),
            ("started_at", rfc3339(self.started_at)),
            (
                "finished_at",
                self.finished_at.map(rfc3339).unwrap_or_default(),
            ),
            ("error", self.error.clone().unwrap_or_default()),
        ]
    }

    fn from_hash(queue: &str, id: &str, mut h: HashMap<String, String>) -> Option<Self> {
        let mut take = |f: &str| h.remove(f).unwrap_or_default();
        let some = |s: String| (!s.is_empty()).then_some(s);
        let time = |s: String| {
            DateTime::parse_from_rfc3339(&s)
                .ok()
                .map(|t| t.with_timezone(&Utc))
        };
        Some(Self {
            id: id.to_owned(),
            queue: queue.to_owned(),
            action: BulkAction::parse(&take("action"))?,
            filter: BulkFilter {
                state: take("state").parse().ok()?,
                kind: some(take("kind")),
                error_kind: some(take("error_kind")),
            },
            status: take("status"),
            total: take("total").parse().unwrap_or(0),
            examined: take("examined").parse().unwrap_or(0),
            matched: take("matched").parse().unwrap_or(0),
            done: take("done").parse().unwrap_or(0),
            skipped: take("skipped").parse().unwrap_or(0),
            started_at: time(take("started_at"))?,
            finished_at: time(take("finished_at")),
            error: some(take("error")),
        })
    }
}

impl TaskStore {
    /// Starts recording a job on `queue` (status `running`); [`TaskStore::run_bulk`] does
    /// the work.
    pub async fn create_bulk(
        &self,
        queue: &str,
        action: BulkAction,
        filter: BulkFilter,
        now: DateTime<Utc>,
    ) -> Result<BulkJob, StoreError> {
        let mut c = self.conn.clone();
        let total: u64 = redis::cmd("ZCARD")
            .arg(self.layout.state_index(queue, filter.state.as_str()))
            .query_async(&mut c)
            .await?;
        let job = BulkJob {
            id: crate::task::TaskId::generate().to_string(),
            queue: queue.to_owned(),
            action,
            filter,
            status: "running".into(),
            total,
            examined: 0,
            matched: 0,
            done: 0,
            skipped: 0,
            started_at: chrono::SubsecRound::trunc_subsecs(now, 3),
            finished_at: None,
            error: None,
        };
        self.save_bulk(&job).await?;
        // The queue's most recent jobs, for the dashboard (the last RECENT, a day).
        let recent = self.layout.bulks(queue);
        let mut c = self.conn.clone();
        redis::pipe()
            .atomic()
            .zadd(&recent, &job.id, job.started_at.timestamp_millis())
            .ignore()
            .zremrangebyrank(&recent, 0, -(RECENT as isize) - 1)
            .ignore()
            .expire(&recent, KEEP_SECS)
            .ignore()
            .query_async::<()>(&mut c)
            .await?;
        Ok(job)
    }

    /// `queue`'s most recent jobs (at most 20), newest first.
    pub async fn recent_bulks(&self, queue: &str) -> Result<Vec<BulkJob>, StoreError> {
        let mut c = self.conn.clone();
        let ids: Vec<String> = redis::cmd("ZREVRANGE")
            .arg(self.layout.bulks(queue))
            .arg(0)
            .arg(RECENT - 1)
            .query_async(&mut c)
            .await?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(j) = self.bulk(queue, &id).await? {
                out.push(j);
            }
        }
        Ok(out)
    }

    async fn save_bulk(&self, job: &BulkJob) -> Result<(), StoreError> {
        let key = self.layout.bulk(&job.queue, &job.id);
        let mut c = self.conn.clone();
        redis::pipe()
            .atomic()
            .hset_multiple(&key, &job.fields())
            .ignore()
            .expire(&key, KEEP_SECS)
            .ignore()
            .query_async::<()>(&mut c)
            .await?;
        Ok(())
    }

    /// A job's progress; `None` when unknown (or its record expired).
    pub async fn bulk(&self, queue: &str, id: &str) -> Result<Option<BulkJob>, StoreError> {
        let mut c = self.conn.clone();
        let h: HashMap<String, String> = redis::cmd("HGETALL")
            .arg(self.layout.bulk(queue, id))
            .query_async(&mut c)
            .await?;
        Ok(BulkJob::from_hash(queue, id, h))
    }

    /// Works `job` to its end in slices (a listing page, then one `bulk.lua` call on its
    /// matches), saving its progress after each; until `stop`, which leaves it
    /// `interrupted`. Returns the job as it ended.
    pub async fn run_bulk(&self, mut job: BulkJob, stop: CancellationToken) -> BulkJob {
        let mut after: Option<Cursor> = None;
        let outcome = loop {
            if stop.is_cancelled() {
                job.status = "interrupted".into();
                break Ok(());
            }
            match self.bulk_slice(&mut job, after.take()).await {
                Ok(Some(next)) => after = Some(next),
                Ok(None) => {
                    job.status = "done".into();
                    break Ok(());
                }
                Err(e) => break Err(e),
            }
            if let Err(e) = self.save_bulk(&job).await {
                break Err(e);
            }
        };
        if let Err(e) = outcome {
            job.status = "failed".into();
            job.error = Some(e.to_string());
        }
        job.finished_at = Some(chrono::SubsecRound::trunc_subsecs(Utc::now(), 3));
        if let Err(e) = self.save_bulk(&job).await {
            tracing::warn!(job = %job.id, error = %e, "bulk job's end not recorded");
        }
        job
    }

    /// One page of the job's state index and its matches acted on; the cursor to go on
    /// from, `None` at the end.
    async fn bulk_slice(
        &self,
        job: &mut BulkJob,
        after: Option<Cursor>,
    ) -> Result<Option<Cursor>, StoreError> {
        let page = self
            .list(&ListQuery {
                state: Some(job.filter.state),
                queue: Some(job.queue.clone()),
                kind: job.filter.kind.clone(),
                after,
                limit: SLICE,
                budget: BUDGET,
            })
            .await?;
        job.examined += page.tasks.len() as u64;
        let ids: Vec<String> = page
            .tasks
            .iter()
            .filter(|t| {
                t.state == job.filter.state
                    && job
                        .filter
                        .error_kind
                        .as_ref()
                        .is_none_or(|k| t.error.as_ref().is_some_and(|e| &e.kind == k))
            })
            .map(|t| t.id.to_string())
            .collect();
        job.matched += ids.len() as u64;
        if !ids.is_empty() {
            let mut inv = self.invoke_in(&BULK, &job.queue);
            inv.arg(&job.queue)
                .arg(job.action.as_str())
                .arg(rfc3339(Utc::now()));
            for id in &ids {
                inv.arg(id);
            }
            let (done, skipped): (u64, u64) = self.run(&inv).await?;
            job.done += done;
            job.skipped += skipped;
        }
        Ok(page.next)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use chrono::Utc;
    use errand_testkit::{RedisServer, cluster::RedisCluster};

    use super::super::bounds_tests::cluster_store;
    use super::super::pause::tests::{store, task};
    use super::*;
    use crate::store::Outcome;
    use crate::task::TaskError;

    async fn fail_all(s: &TaskStore, q: &str, n: usize, kind: &str) {
        let tasks = (0..n).map(|_| task(q)).collect();
        s.submit_many(tasks, Utc::now()).await.unwrap();
        let f = s
            .fetch(q, n, "w", Duration::from_secs(60), "tok", Utc::now())
            .await
            .unwrap();
        for c in &f.claimed {
            let err = TaskError {
                kind: kind.into(),
                message: "no".into(),
            };
            assert!(
                s.finish(c, &Outcome::Failed(err), Utc::now())
                    .await
                    .unwrap()
            );
        }
    }

    async fn count(s: &TaskStore, q: &str, state: &str) -> u64 {
        let mut c = s.connection();
        redis::cmd("ZCARD")
            .arg(s.layout().state_index(q, state))
            .query_async(&mut c)
            .await
            .unwrap()
    }

    async fn run(s: &TaskStore, q: &str, action: BulkAction, filter: BulkFilter) -> BulkJob {
        let job = s.create_bulk(q, action, filter, Utc::now()).await.unwrap();
        let id = job.id.clone();
        let ended = s.run_bulk(job, CancellationToken::new()).await;
        assert_eq!(s.bulk(q, &id).await.unwrap().as_ref(), Some(&ended));
        ended
    }

    fn filter(state: TaskState, error_kind: Option<&str>) -> BulkFilter {
        BulkFilter {
            state,
            kind: None,
            error_kind: error_kind.map(Into::into),
        }
    }

    async fn retry_delete_cancel(s: &TaskStore, q: &str, many: usize) {
        fail_all(s, q, 12, "timeout").await;
        // Told apart by their error kind; the fetch token differs per call.
        let tasks = (0..5).map(|_| task(q)).collect();
        s.submit_many(tasks, Utc::now()).await.unwrap();
        let f = s
            .fetch(q, 5, "w", Duration::from_secs(60), "tok2", Utc::now())
            .await
            .unwrap();
        for c in &f.claimed {
            let err = TaskError {
                kind: "boom".into(),
                message: "no".into(),
            };
            s.finish(c, &Outcome::Failed(err), Utc::now())
                .await
                .unwrap();
        }
        let job = run(
            s,
            q,
            BulkAction::Retry,
            filter(TaskState::Failed, Some("timeout")),
        )
        .await;
        assert_eq!(
            (
                job.status.as_str(),
                job.total,
                job.matched,
                job.done,
                job.skipped
            ),
            ("done", 17, 12, 12, 0),
            "{job:?}"
        );
        assert_eq!(
            (count(s, q, "queued").await, count(s, q, "failed").await),
            (12, 5)
        );

        let job = run(s, q, BulkAction::Delete, filter(TaskState::Failed, None)).await;
        assert_eq!((job.matched, job.done), (5, 5), "{job:?}");
        assert_eq!(job.examined, 5, "deleted records are not listed again");
        // Upkeep's expiry takes the deleted ids out of the indexes.
        s.expire_indexes(q, 500).await.unwrap();
        assert_eq!(count(s, q, "failed").await, 0);

        // Many, in slices: every queued task cancelled, none left behind.
        let tasks = (0..many).map(|_| task(q)).collect();
        s.submit_many(tasks, Utc::now()).await.unwrap();
        let job = run(s, q, BulkAction::Cancel, filter(TaskState::Queued, None)).await;
        assert_eq!(job.done, 12 + many as u64, "{job:?}");
        assert_eq!(count(s, q, "queued").await, 0);
        assert_eq!(count(s, q, "cancelled").await, 12 + many as u64);
        // Nothing cancelled runs.
        let f = s
            .fetch(q, 1000, "w", Duration::from_secs(60), "tok3", Utc::now())
            .await
            .unwrap();
        assert!(f.claimed.is_empty());
    }

    #[tokio::test]
    async fn bulk_retry_delete_and_cancel_act_on_what_matches_in_slices() {
        let redis = RedisServer::start().await;
        retry_delete_cancel(&store(&redis).await, "bulk", 1_200).await;
    }

    #[tokio::test]
    async fn bulk_actions_on_a_cluster() {
        let cluster = RedisCluster::start().await;
        let s = cluster_store(&cluster, "bk");
        errand_testkit::wait_for("the cluster", Duration::from_secs(10), || async {
            s.queues(Utc::now()).await.ok()
        })
        .await;
        retry_delete_cancel(&s, "bulk", 600).await;
    }

    #[tokio::test]
    async fn a_stopped_job_is_left_interrupted() {
        let redis = RedisServer::start().await;
        let s = store(&redis).await;
        let job = s
            .create_bulk(
                "q",
                BulkAction::Cancel,
                filter(TaskState::Queued, None),
                Utc::now(),
            )
            .await
            .unwrap();
        let stop = CancellationToken::new();
        stop.cancel();
        let ended = s.run_bulk(job, stop).await;
        assert_eq!(ended.status, "interrupted");
        assert!(ended.finished_at.is_some());
    }
}
