//! Progress reports of running attempts (`progress.lua`), group-committed by the worker.

use chrono::{DateTime, Utc};

use super::{StoreError, TaskStore, script::script};
use crate::task::{Progress, rfc3339};

static PROGRESS: std::sync::LazyLock<redis::Script> = script!("progress.lua");

/// One attempt's latest progress.
#[derive(Debug, Clone)]
pub struct ProgressReport {
    pub id: String,
    /// The attempt reporting: a report of an attempt that no longer owns its task is dropped.
    pub attempt: u32,
    /// The progress, as JSON.
    pub json: String,
}

impl TaskStore {
    /// Records progress; returns false when the attempt no longer owns the task.
    pub async fn progress(
        &self,
        id: &str,
        attempt: u32,
        progress: &Progress,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let one = [ProgressReport {
            id: id.to_owned(),
            attempt,
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
        let mut inv = self.invoke(&PROGRESS);
        inv.arg(rfc3339(now));
        for r in reports {
            inv.arg(&r.id).arg(r.attempt).arg(&r.json);
        }
        let done: Vec<i64> = self.run(&inv).await?;
        Ok(done.into_iter().map(|n| n == 1).collect())
    }
}
