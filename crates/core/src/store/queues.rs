//! Per-queue figures for `GET /v1/queues` (`queues.lua`).

use chrono::{DateTime, Utc};

use super::{StoreError, TaskStore, script::script};
use crate::task::TaskState;

static QUEUES: std::sync::LazyLock<redis::Script> = script!("queues.lua");

impl TaskStore {
    /// Per-queue counts by state, oldest waiting task and active job count.
    pub async fn queues(&self, now: DateTime<Utc>) -> Result<Vec<QueueStats>, StoreError> {
        let mut names = self.queue_names().await?;
        names.sort();
        futures::future::try_join_all(names.into_iter().map(|name| async move {
            let mut inv = self.invoke_in(&QUEUES, &name);
            inv.arg(&name);
            for s in TaskState::ALL {
                inv.arg(s.as_str());
            }
            let row: Vec<redis::Value> = self.run(&inv).await?;
            let mut it = row.into_iter();
            let mut next = || {
                it.next()
                    .ok_or_else(|| StoreError::Protocol("queues: short row".into()))
            };
            let oldest: String = redis::from_redis_value(next()?)?;
            let active: u64 = redis::from_redis_value(next()?)?;
            let mut counts = Vec::with_capacity(TaskState::ALL.len());
            for s in TaskState::ALL {
                counts.push((s, redis::from_redis_value::<u64>(next()?)?));
            }
            let oldest_queued_ms = oldest
                .parse::<f64>()
                .ok()
                .map(|ms| (now.timestamp_millis() - ms as i64).max(0) as u64);
            Ok(QueueStats {
                name,
                counts,
                oldest_queued_ms,
                active_jobs: active,
            })
        }))
        .await
    }

    /// Every queue ever submitted to.
    pub async fn queue_names(&self) -> Result<Vec<String>, StoreError> {
        let mut c = self.conn.clone();
        Ok(redis::cmd("SMEMBERS")
            .arg(self.layout.queues())
            .query_async(&mut c)
            .await?)
    }
}

/// One queue's counts, as `GET /v1/queues` and the dashboard show them.
#[derive(Debug)]
pub struct QueueStats {
    /// The queue's name.
    pub name: String,
    /// Tasks per state, every state listed (zero included).
    pub counts: Vec<(TaskState, u64)>,
    /// Age of the task that has waited longest in `queued`.
    pub oldest_queued_ms: Option<u64>,
    /// Entries in the queue's ready list (includes entries of tasks cancelled while they
    /// waited, until a worker's fetch drops them).
    pub active_jobs: u64,
}
