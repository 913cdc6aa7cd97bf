//! Leases of running tasks (`renew.lua`): a lease is the task's score in its queue's
//! `running` index, so renewing one is one ZADD and a lapsed one is found by score.

use std::time::Duration;

use super::{StoreError, TaskStore, script::script};

static RENEW: std::sync::LazyLock<redis::Script> = script!("renew.lua");

impl TaskStore {
    /// Extends the leases of tasks this process is running to `lease` from now, by Redis's
    /// clock (a lease already given up is never resurrected), and returns those among them
    /// with a cancel requested.
    pub async fn renew_leases(
        &self,
        ids: &[String],
        lease: Duration,
    ) -> Result<Vec<String>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut inv = self.invoke(&RENEW);
        inv.arg(lease.as_millis() as u64);
        for id in ids {
            inv.arg(id);
        }
        self.run(&inv).await
    }
}
