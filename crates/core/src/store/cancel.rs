//! Cancel (`cancel.lua`): at once for a task that has not started, by request for one
//! that is running.

use chrono::{DateTime, Utc};

use super::{
    StoreError, TaskStore,
    locate::Located,
    script::{Verdict, script},
};
use crate::task::{TaskId, TaskRecord, TaskState, rfc3339};

static CANCEL: std::sync::LazyLock<redis::Script> = script!("cancel.lua");

/// What a cancel did.
#[derive(Debug)]
pub enum Cancel {
    /// No such task (never existed, or its record expired).
    Gone,
    /// Already terminal: nothing to cancel.
    Terminal(TaskState),
    /// Running: its worker was told to stop it; it ends `cancelled` shortly.
    Requested(Box<TaskRecord>),
    /// It had not started and now never will.
    Cancelled(Box<TaskRecord>),
}

impl TaskStore {
    /// Cancels a task (see `lua/cancel.lua`).
    pub async fn cancel(&self, id: &TaskId, now: DateTime<Utc>) -> Result<Cancel, StoreError> {
        let Located::Queue(queue) = self.locate(id.as_str()).await? else {
            return Ok(Cancel::Gone);
        };
        let mut inv = self.invoke_in(&CANCEL, &queue);
        inv.arg(&queue).arg(id.as_str()).arg(rfc3339(now));
        let v = Verdict::decode("cancel", self.run(&inv).await?)?;
        Ok(match v.name.as_str() {
            "gone" => Cancel::Gone,
            "terminal" => Cancel::Terminal(v.state()?),
            "requested" => Cancel::Requested(Box::new(v.record()?)),
            "cancelled" => Cancel::Cancelled(Box::new(v.record()?)),
            _ => return Err(v.unknown()),
        })
    }
}
