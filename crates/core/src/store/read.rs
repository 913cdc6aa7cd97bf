//! Reads by id: the record, or when its record expired, since when.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::{StoreError, TaskStore, locate::Located};
use crate::task::{TaskId, TaskRecord};

impl TaskStore {
    /// The record of `id`, wherever its queue is; `None` if it never existed or expired.
    pub async fn get(&self, id: &TaskId) -> Result<Option<TaskRecord>, StoreError> {
        let Located::Queue(queue) = self.locate(id.as_str()).await? else {
            return Ok(None);
        };
        self.get_in(&queue, id.as_str()).await
    }

    /// The record of `id` in `queue`, when the caller knows the queue (a worker does).
    pub async fn get_in(&self, queue: &str, id: &str) -> Result<Option<TaskRecord>, StoreError> {
        let mut c = self.conn.clone();
        let h: HashMap<String, String> = redis::cmd("HGETALL")
            .arg(self.layout.record(queue, id))
            .query_async(&mut c)
            .await?;
        if h.is_empty() {
            return Ok(None);
        }
        Ok(Some(TaskRecord::from_hash(h)?))
    }

    /// When `id`'s record expired, while its tombstone lasts (404 `task-expired`): the id
    /// has no pointer (upkeep freed it) and a tombstone says so.
    pub async fn expired_at(&self, id: &TaskId) -> Result<Option<DateTime<Utc>>, StoreError> {
        match self.locate(id.as_str()).await? {
            Located::Expired(at) => Ok(Some(at.unwrap_or_else(Utc::now))),
            Located::Unknown => self.tombstone(id.as_str()).await,
            Located::Queue(_) => Ok(None),
        }
    }
}
