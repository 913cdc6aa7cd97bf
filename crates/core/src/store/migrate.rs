//! Upgrades in place. A single Redis written by an older errand holds the untagged layout
//! (every key directly under the prefix, one all-tasks index, one delayed set) and perhaps
//! what the layout before that left: apalis-redis's jobs and bookkeeping. Both binaries call
//! [`TaskStore::migrate`] before they serve; it converts whatever it finds, in slices, and
//! records [`LAYOUT_VERSION`](super::LAYOUT_VERSION) so later starts cost one GET. Queued,
//! running and finished tasks keep their ids, states and TTLs (docs/scaling.md, "Upgrading").
//!
//! Old and new binaries must not run against one Redis at once: stop the old ones, start
//! the new (tested by `tests::an_untagged_layout_is_converted_and_every_task_kept`).

use apalis_redis::Config as ApalisConfig;

use super::{LAYOUT_VERSION, StoreError, TaskStore, script::script};
use crate::task::TaskState;

static MIGRATE: std::sync::LazyLock<redis::Script> = script!("migrate.lua");
static LEGACY: std::sync::LazyLock<redis::Script> = script!("legacy.lua");

const SLICE: usize = 500;
const TOMBSTONE_MS: u64 = 24 * 3600 * 1000;

impl TaskStore {
    /// Converts an older layout to this one; returns how many keys and entries it moved
    /// (0 when the Redis already holds this layout, or nothing at all).
    pub async fn migrate(&self) -> Result<usize, StoreError> {
        let mut c = self.conn.clone();
        let version: Option<u32> = redis::cmd("GET")
            .arg(self.layout.version())
            .query_async(&mut c)
            .await?;
        if version == Some(LAYOUT_VERSION) || self.is_cluster() {
            // A cluster only ever held this layout: the untagged one could not run there.
            return Ok(0);
        }
        // A Redis no older errand wrote (every fresh deployment): nothing to convert.
        let p = self.layout.prefix();
        let old: usize = redis::cmd("EXISTS")
            .arg(
                [
                    "tasks",
                    "delayed",
                    "expired",
                    "queues",
                    "schedules",
                    "schedule-ids",
                    "workers",
                ]
                .map(|k| format!("{p}:{k}"))
                .to_vec(),
            )
            .query_async(&mut c)
            .await?;
        if old == 0 {
            redis::cmd("SET")
                .arg(self.layout.version())
                .arg(LAYOUT_VERSION)
                .query_async::<()>(&mut c)
                .await?;
            return Ok(0);
        }
        let probe = ApalisConfig::default().queue("\u{1}q");
        let sfx = |full: String| full.trim_start_matches("\u{1}q").to_owned();
        let mut moved = 0;
        loop {
            let mut inv = self.invoke(&MIGRATE, &self.layout.version());
            inv.arg(SLICE)
                .arg(sfx(probe.active_jobs_list()))
                .arg(sfx(probe.job_data_hash()))
                .arg(sfx(probe.job_meta_hash()))
                .arg(TOMBSTONE_MS);
            for s in TaskState::ALL {
                inv.arg(s.as_str());
            }
            let n: usize = self.run(&inv).await?;
            if n == 0 {
                break;
            }
            moved += n;
        }
        for q in self.queue_names().await? {
            loop {
                let n = self.clean_legacy(&q).await?;
                if n == 0 {
                    break;
                }
                moved += n;
            }
        }
        redis::cmd("SET")
            .arg(self.layout.version())
            .arg(LAYOUT_VERSION)
            .query_async::<()>(&mut c)
            .await?;
        if moved > 0 {
            tracing::info!(moved, "converted the previous key layout");
        }
        Ok(moved)
    }

    /// One slice of deleting what apalis-redis kept for `queue` (`legacy.lua`).
    async fn clean_legacy(&self, queue: &str) -> Result<usize, StoreError> {
        let apalis = format!("{}:q:{queue}", self.layout.prefix());
        let cfg = ApalisConfig::default().queue(&apalis);
        let mut inv = self.invoke(&LEGACY, &self.layout.version());
        inv.arg(&apalis)
            .arg(SLICE)
            .arg(cfg.done_jobs_set())
            .arg(cfg.dead_jobs_set())
            .arg(cfg.failed_jobs_set())
            .arg(cfg.workers_set())
            .arg(cfg.inflight_jobs_set())
            .arg(format!("{apalis}:workers:metadata:"))
            .arg(cfg.job_data_hash())
            .arg(cfg.job_meta_hash())
            .arg(cfg.inflight_jobs_set())
            .arg(cfg.scheduled_jobs_set())
            .arg(cfg.signal_list())
            .arg(cfg.idempotency_key_set());
        self.run(&inv).await
    }
}
