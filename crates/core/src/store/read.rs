//! Reads of one task by id.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::{StoreError, TaskStore};
use crate::task::{TaskId, TaskRecord};

impl TaskStore {
    pub async fn get(&self, id: &TaskId) -> Result<Option<TaskRecord>, StoreError> {
        let mut c = self.conn.clone();
        let h: HashMap<String, String> = redis::cmd("HGETALL")
            .arg(self.layout.record(id.as_str()))
            .query_async(&mut c)
            .await?;
        if h.is_empty() {
            return Ok(None);
        }
        Ok(Some(TaskRecord::from_hash(h)?))
    }

    /// When the record of `id` expired, if that is still remembered.
    pub async fn expired_at(&self, id: &TaskId) -> Result<Option<DateTime<Utc>>, StoreError> {
        let mut c = self.conn.clone();
        let ms: Option<f64> = redis::cmd("ZSCORE")
            .arg(self.layout.expired())
            .arg(id.as_str())
            .query_async(&mut c)
            .await?;
        Ok(ms.and_then(|ms| DateTime::from_timestamp_millis(ms as i64)))
    }
}
