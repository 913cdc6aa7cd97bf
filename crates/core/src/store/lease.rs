//! Leases of running tasks (`renew.lua`): a lease is the task's score in its queue's
//! `running` index, so renewing one is one ZADD and a lapsed one is found by score.

use std::time::Duration;

use super::{
    StoreError, TaskStore,
    script::{by_queue, script},
};

static RENEW: std::sync::LazyLock<redis::Script> = script!("renew.lua");

impl TaskStore {
    /// Extends the leases of tasks this process is running to `lease` from now, by Redis's
    /// clock (a lease already given up is never resurrected), and returns those among them
    /// with a cancel requested.
    pub async fn renew_leases(
        &self,
        running: &[(String, String)],
        lease: Duration,
    ) -> Result<Vec<String>, StoreError> {
        let groups = by_queue(running, |(q, _)| q.as_str());
        let cancels = futures::future::try_join_all(groups.iter().map(|(q, idx)| async move {
            let mut inv = self.invoke_in(&RENEW, q);
            inv.arg(*q).arg(lease.as_millis() as u64);
            for &n in idx {
                inv.arg(&running[n].1);
            }
            self.run::<Vec<String>>(&inv).await
        }))
        .await?;
        Ok(cancels.into_iter().flatten().collect())
    }
}
