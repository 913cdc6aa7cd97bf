//! Manual retry (`retry.lua`): a failed or cancelled task queued again with a fresh budget.

use chrono::{DateTime, Utc};

use super::{
    StoreError, TaskStore,
    locate::Located,
    script::{Verdict, script},
};
use crate::task::{TaskId, TaskRecord, TaskState, rfc3339};

static RETRY: std::sync::LazyLock<redis::Script> = script!("retry.lua");

/// What a manual retry did.
#[derive(Debug)]
pub enum Retry {
    /// No such task.
    Gone,
    /// Only failed or cancelled tasks can be retried.
    Conflict(TaskState),
    /// Queued again as a new attempt; the record as it now is.
    Queued(Box<TaskRecord>),
}

impl TaskStore {
    /// Queues a failed or cancelled task again with a fresh budget of attempts.
    pub async fn retry(&self, id: &TaskId, now: DateTime<Utc>) -> Result<Retry, StoreError> {
        let Located::Queue(queue) = self.locate(id.as_str()).await? else {
            return Ok(Retry::Gone);
        };
        let mut inv = self.invoke_in(&RETRY, &queue);
        inv.arg(&queue).arg(id.as_str()).arg(rfc3339(now));
        let v = Verdict::decode("retry", self.run(&inv).await?)?;
        Ok(match v.name.as_str() {
            "gone" => Retry::Gone,
            "conflict" => Retry::Conflict(v.state()?),
            "queued" => Retry::Queued(Box::new(v.record()?)),
            _ => return Err(v.unknown()),
        })
    }
}
