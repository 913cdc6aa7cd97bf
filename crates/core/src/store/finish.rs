//! The end of an attempt (`finish.lua`): fenced by the attempt's claim token, so only the
//! attempt that holds a task can end it. Group-committed by the worker.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{
    StoreError, TaskStore,
    script::{by_queue, reassemble, script},
};
use crate::task::{TaskError, rfc3339};

static FINISH: std::sync::LazyLock<redis::Script> = script!("finish.lua");

/// How an attempt ended.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Ran to the end with this result.
    Succeeded(Value),
    /// Failed for good: no attempts left, or a failure retrying cannot fix.
    Failed(TaskError),
    /// Failed, to be tried again after `delay`; `at` is when that is, for the record (the
    /// score is taken from Redis's clock plus `delay`).
    Retry {
        /// Why this attempt failed.
        error: TaskError,
        /// The backoff before the next attempt.
        delay: chrono::Duration,
        /// When the next attempt is due, as the worker computed it.
        at: DateTime<Utc>,
    },
    /// Stopped because a client cancelled it; the error says so.
    Cancelled(TaskError),
}

/// One attempt's end, as the worker reports it.
#[derive(Debug, Clone)]
pub struct AttemptEnd {
    /// The task id.
    pub id: String,
    /// The task's queue (its hash slot).
    pub queue: String,
    /// The claim token of the attempt that ended: the end of a claim the task no longer
    /// holds is dropped.
    pub token: String,
    /// The attempt's number (for the record's history of failed attempts).
    pub attempt: u32,
    /// How it ended.
    pub outcome: Outcome,
    /// The attempt's last progress (JSON) when newer than the record's: it is written with
    /// the outcome instead of costing a write of its own.
    pub progress: Option<String>,
}

impl TaskStore {
    /// Ends the attempt of `claimed`; returns false when the task no longer holds its claim
    /// (taken over after a lapsed lease, given back, retried). The same end sent again
    /// answers true, as the first did.
    pub async fn finish(
        &self,
        claimed: &super::Claimed,
        outcome: &Outcome,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let one = [AttemptEnd {
            id: claimed.id.clone(),
            queue: claimed.queue.clone(),
            token: claimed.token.clone(),
            attempt: claimed.attempt,
            outcome: outcome.clone(),
            progress: None,
        }];
        self.finish_many(&one, now)
            .await?
            .pop()
            .ok_or_else(|| StoreError::Protocol("empty finish reply".into()))
    }

    /// Ends several attempts in one script call, answering in order.
    pub async fn finish_many(
        &self,
        ends: &[AttemptEnd],
        now: DateTime<Utc>,
    ) -> Result<Vec<bool>, StoreError> {
        let groups = by_queue(ends, |e| e.queue.as_str());
        let answers = futures::future::try_join_all(
            groups
                .iter()
                .map(|(q, idx)| self.finish_in(q, idx.iter().map(|&n| &ends[n]), now)),
        )
        .await?;
        reassemble(ends.len(), &groups, answers, "finish")
    }

    async fn finish_in(
        &self,
        queue: &str,
        ends: impl Iterator<Item = &AttemptEnd>,
        now: DateTime<Utc>,
    ) -> Result<Vec<bool>, StoreError> {
        let mut inv = self.invoke_in(&FINISH, queue);
        inv.arg(queue).arg(rfc3339(now));
        for end in ends {
            let (name, body, retry) = match &end.outcome {
                Outcome::Succeeded(v) => ("succeeded", serde_json::to_string(v)?, None),
                Outcome::Failed(e) => ("failed", serde_json::to_string(e)?, None),
                Outcome::Retry { error, delay, at } => {
                    ("retry", serde_json::to_string(error)?, Some((delay, at)))
                }
                Outcome::Cancelled(e) => ("cancelled", serde_json::to_string(e)?, None),
            };
            inv.arg(&end.id)
                .arg(&end.token)
                .arg(end.attempt)
                .arg(name)
                .arg(body)
                .arg(retry.map_or(0, |(d, _)| d.num_milliseconds().max(0)))
                .arg(retry.map(|(_, at)| rfc3339(*at)).unwrap_or_default())
                .arg(end.progress.as_deref().unwrap_or_default());
        }
        let done: Vec<i64> = self.run(&inv).await?;
        Ok(done.into_iter().map(|n| n == 1).collect())
    }
}
