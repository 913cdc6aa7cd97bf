//! Progress reports of running attempts (`progress.lua`), group-committed by the worker.

use chrono::{DateTime, Utc};

use super::{
    StoreError, TaskStore,
    script::{by_queue, reassemble, script},
};
use crate::task::{Progress, rfc3339};

static PROGRESS: std::sync::LazyLock<redis::Script> = script!("progress.lua");

/// One attempt's latest progress.
#[derive(Debug, Clone)]
pub struct ProgressReport {
    /// The task id.
    pub id: String,
    /// The task's queue (its hash slot).
    pub queue: String,
    /// The claim token of the attempt reporting: a report of a claim the task no longer
    /// holds is dropped.
    pub token: String,
    /// The progress, as JSON.
    pub json: String,
}

impl TaskStore {
    /// Records progress of the attempt of `claimed`; returns false when the task no longer
    /// holds its claim.
    pub async fn progress(
        &self,
        claimed: &super::Claimed,
        progress: &Progress,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let one = [ProgressReport {
            id: claimed.id.clone(),
            queue: claimed.queue.clone(),
            token: claimed.token.clone(),
            json: serde_json::to_string(progress)?,
        }];
        self.progress_many(&one, now)
            .await?
            .pop()
            .ok_or_else(|| StoreError::Protocol("empty progress reply".into()))
    }

    /// Records several reports in one script call, answering in order.
    pub async fn progress_many(
        &self,
        reports: &[ProgressReport],
        now: DateTime<Utc>,
    ) -> Result<Vec<bool>, StoreError> {
        let groups = by_queue(reports, |r| r.queue.as_str());
        let answers = futures::future::try_join_all(groups.iter().map(|(q, idx)| async move {
            let mut inv = self.invoke_in(&PROGRESS, q);
            inv.arg(*q).arg(rfc3339(now));
            for &n in idx {
                let r = &reports[n];
                inv.arg(&r.id).arg(&r.token).arg(&r.json);
            }
            let done: Vec<i64> = self.run(&inv).await?;
            Ok::<_, StoreError>(done.into_iter().map(|n| n == 1).collect::<Vec<_>>())
        }))
        .await?;
        reassemble(reports.len(), &groups, answers, "progress")
    }
}
