//! Recovery (`recover.lua`): delayed tasks that are due, and running tasks whose lease
//! lapsed, back onto their queue. Run by every worker's upkeep; bounded per call.

use chrono::{DateTime, Utc};

use super::{StoreError, TaskStore, script::script};
use crate::task::rfc3339;

static RECOVER: std::sync::LazyLock<redis::Script> = script!("recover.lua");

/// Which zset `recover` drains.
#[derive(Debug, Clone, Copy)]
pub enum Recover {
    /// Scheduled and retrying tasks that are due.
    Due,
    /// Running tasks whose lease lapsed.
    LapsedLeases,
}

impl TaskStore {
    /// Re-queues up to `limit` tasks from the given zset; returns (examined, queued).
    pub async fn recover(
        &self,
        queue: &str,
        which: Recover,
        limit: usize,
        now: DateTime<Utc>,
    ) -> Result<(usize, usize), StoreError> {
        let mut inv = self.invoke_in(&RECOVER, queue);
        inv.arg(queue)
            .arg(match which {
                Recover::Due => "delayed",
                Recover::LapsedLeases => "running",
            })
            .arg(rfc3339(now))
            .arg(limit.max(1));
        self.run(&inv).await
    }
}
