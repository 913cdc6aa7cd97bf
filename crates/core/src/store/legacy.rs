//! The previous layout, when apalis-redis delivered errand's jobs: an upgrade needs no
//! stop. Jobs it left waiting in a ready list are translated by `fetch.lua` when a worker
//! reaches them; what it kept of finished jobs, and its own registry, are deleted here by
//! each worker's upkeep, in slices, until nothing is left.

use super::{StoreError, TaskStore, script::script};

static LEGACY: std::sync::LazyLock<redis::Script> = script!("legacy.lua");

impl TaskStore {
    /// Deletes up to about `slice` entries of `queue`'s previous-layout bookkeeping per set;
    /// returns how many it removed (0 once there is nothing left).
    pub async fn clean_legacy(&self, queue: &str, slice: usize) -> Result<usize, StoreError> {
        let cfg = self.layout.apalis_config(queue);
        let apalis = self.layout.apalis_queue(queue);
        let mut inv = self.invoke(&LEGACY);
        inv.arg(queue)
            .arg(slice)
            .arg(cfg.done_jobs_set())
            .arg(cfg.dead_jobs_set())
            .arg(cfg.failed_jobs_set())
            .arg(cfg.workers_set())
            .arg(cfg.inflight_jobs_set())
            .arg(format!("{apalis}:workers:metadata:"))
            .arg(cfg.inflight_jobs_set())
            .arg(cfg.scheduled_jobs_set())
            .arg(cfg.signal_list())
            .arg(cfg.idempotency_key_set())
            .arg(cfg.job_data_hash());
        self.run(&inv).await
    }
}
