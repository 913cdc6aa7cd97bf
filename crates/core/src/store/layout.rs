//! Every Redis key and channel errand uses, named in one place. apalis-redis's key names
//! are taken from `apalis_redis::Config` itself, so a change in its layout shows up here
//! (and in the test below) rather than as silently lost jobs.

use apalis_redis::Config as ApalisConfig;

#[derive(Debug, Clone)]
pub struct Layout {
    prefix: String,
    apalis_data_sfx: String,
    apalis_meta_sfx: String,
    apalis_active_sfx: String,
}

impl Layout {
    pub fn new(prefix: &str) -> Self {
        // Derive apalis-redis's per-queue suffixes from its own key builders.
        const Q: &str = "\u{1}q";
        let probe = ApalisConfig::default().queue(Q);
        let sfx = |full: String| {
            full.strip_prefix(Q)
                .expect("apalis-redis keys start with the queue name")
                .to_owned()
        };
        Self {
            prefix: prefix.to_owned(),
            apalis_data_sfx: sfx(probe.job_data_hash()),
            apalis_meta_sfx: sfx(probe.job_meta_hash()),
            apalis_active_sfx: sfx(probe.active_jobs_list()),
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn record(&self, id: &str) -> String {
        format!("{}:task:{id}", self.prefix)
    }

    /// Name of the apalis-redis queue that carries errand queue `queue`.
    pub fn apalis_queue(&self, queue: &str) -> String {
        format!("{}:q:{queue}", self.prefix)
    }

    /// The apalis-redis configuration for errand queue `queue`, the one place its keys come from.
    pub fn apalis_config(&self, queue: &str) -> ApalisConfig {
        ApalisConfig::default().queue(self.apalis_queue(queue))
    }

    /// Channel a submit publishes on so idle workers of `queue` fetch at once.
    pub fn wake_channel(&self, queue: &str) -> String {
        format!("{}:wake:{queue}", self.prefix)
    }

    /// Channel carrying "<id> <state>" for every transition (long-poll, SSE).
    pub fn events_channel(&self) -> String {
        format!("{}:events", self.prefix)
    }

    pub fn delayed(&self) -> String {
        format!("{}:delayed", self.prefix)
    }

    /// Zset of every live task id by creation ms: the unfiltered listing.
    pub fn index(&self) -> String {
        format!("{}:tasks", self.prefix)
    }

    /// Channel a cancel of a running task is announced on; workers stop the task.
    pub fn cancel_channel(&self) -> String {
        format!("{}:cancel", self.prefix)
    }

    /// Zset of ids whose records expired recently (tombstones, trimmed to a fixed count).
    pub fn expired(&self) -> String {
        format!("{}:expired", self.prefix)
    }

    /// Zset of worker process names by last heartbeat ms.
    pub fn workers(&self) -> String {
        format!("{}:workers", self.prefix)
    }

    /// Hash describing one worker process; expires when its heartbeats stop.
    pub fn worker(&self, name: &str) -> String {
        format!("{}:worker:{name}", self.prefix)
    }

    /// Hash holding one schedule's definition and firing history.
    pub fn schedule(&self, id: &str) -> String {
        format!("{}:schedule:{id}", self.prefix)
    }

    /// Zset of enabled schedule ids by the ms of the tick each waits for: what workers fire.
    pub fn schedules(&self) -> String {
        format!("{}:schedules", self.prefix)
    }

    /// Zset of every schedule id, all scored 0, so listing pages through ids in order.
    pub fn schedule_ids(&self) -> String {
        format!("{}:schedule-ids", self.prefix)
    }

    /// The fixed ARGV head every store script starts with (see `lua/prelude.lua`).
    pub(super) fn script_head(&self) -> [String; 8] {
        [
            format!("{}:task:", self.prefix),
            self.index(),
            self.delayed(),
            format!("{}:q:", self.prefix),
            self.apalis_data_sfx.clone(),
            self.apalis_meta_sfx.clone(),
            self.apalis_active_sfx.clone(),
            format!("{}:", self.prefix),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apalis_keys_are_the_ones_errand_writes() {
        let l = Layout::new("errand");
        let c = l.apalis_config("default");
        let head = l.script_head();
        assert_eq!(c.job_data_hash(), format!("{}default{}", head[3], head[4]));
        assert_eq!(c.job_meta_hash(), format!("{}default{}", head[3], head[5]));
        assert_eq!(
            c.active_jobs_list(),
            format!("{}default{}", head[3], head[6])
        );
        assert_eq!(
            l.wake_channel("default"),
            format!("{}wake:default", head[7])
        );
        assert_eq!(l.events_channel(), format!("{}events", head[7]));
    }

    #[test]
    fn schedule_keys_are_the_ones_the_schedule_scripts_derive() {
        let l = Layout::new("errand");
        let head = l.script_head();
        // lua/schedule_*.lua build these from ARGV[8].
        assert_eq!(l.schedule("s1"), format!("{}schedule:s1", head[7]));
        assert_eq!(l.schedules(), format!("{}schedules", head[7]));
        assert_eq!(l.schedule_ids(), format!("{}schedule-ids", head[7]));
    }
}
