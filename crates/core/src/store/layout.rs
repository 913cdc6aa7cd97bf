//! Every Redis key and channel errand uses, named in one place. The scripts derive theirs
//! from the head of arguments this builds (`script_head`); `tests/layout.rs` runs the
//! prelude's own key functions on a real Redis and compares every one with these methods.
//! The ready lists keep apalis-redis's name for a queue's active list, taken from
//! `apalis_redis::Config` itself, so data the previous layout left there is found.

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

    /// Ids of `queue`'s tasks waiting to run, in order (apalis-redis's active-list name).
    pub fn ready_list(&self, queue: &str) -> String {
        format!("{}{}", self.apalis_queue(queue), self.apalis_active_sfx)
    }

    /// Zset of `queue`'s live task ids by creation ms.
    pub fn queue_index(&self, queue: &str) -> String {
        format!("{}:idx:{queue}", self.prefix)
    }

    /// Zset of `queue`'s task ids in `state`: scored by the ms the task entered it, except
    /// `running` (lease expiry: the lease table) and the terminal states (record expiry).
    pub fn state_index(&self, queue: &str, state: &str) -> String {
        format!("{}:idx:{queue}:{state}", self.prefix)
    }

    /// What fetch `token` claimed, kept for a lease's time so a retried fetch whose reply was
    /// lost is answered with the same claims.
    pub fn fetch_memo(&self, token: &str) -> String {
        format!("{}:fetch:{token}", self.prefix)
    }

    /// Set of every queue ever submitted to.
    pub fn queues(&self) -> String {
        format!("{}:queues", self.prefix)
    }

    /// Name of the apalis-redis queue that carried errand queue `queue` in the previous
    /// layout (the prefix of its keys, some still read by the upgrade path).
    pub fn apalis_queue(&self, queue: &str) -> String {
        format!("{}:q:{queue}", self.prefix)
    }

    /// The apalis-redis configuration for errand queue `queue`, the one place its key names
    /// come from.
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

    /// Zset of `queue`'s pending webhook deliveries by the ms their next attempt is due (a
    /// claimed one: when its claim lapses). The outbox: written in the same script call as
    /// the task's terminal transition.
    pub fn webhook_due(&self, queue: &str) -> String {
        format!("{}:webhook:{queue}:due", self.prefix)
    }

    /// Hash of one pending webhook delivery of a `queue` task (what to send, attempts so
    /// far); deleted once delivered or given up.
    pub fn webhook_delivery(&self, queue: &str, delivery: &str) -> String {
        format!("{}:webhook:{queue}:d:{delivery}", self.prefix)
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
    fn ready_lists_keep_apalis_redis_active_list_names() {
        let l = Layout::new("errand");
        assert_eq!(
            l.ready_list("default"),
            l.apalis_config("default").active_jobs_list()
        );
        let c = l.apalis_config("default");
        let head = l.script_head();
        assert_eq!(c.job_data_hash(), format!("{}default{}", head[3], head[4]));
        assert_eq!(c.job_meta_hash(), format!("{}default{}", head[3], head[5]));
    }

    /// Runs the prelude's own key functions on a real Redis and compares each key and
    /// channel a script derives with the method that names it here.
    #[tokio::test]
    async fn every_key_the_scripts_derive_is_the_layouts() {
        let redis = errand_testkit::RedisServer::start().await;
        let l = Layout::new("drift");
        let probe = redis::Script::new(concat!(
            include_str!("lua/prelude.lua"),
            "\nreturn {L.record .. 'T1', L.index, L.delayed, ready_list('q'), queue_index('q'),
              state_index('q', 'running'), EXPIRED, QUEUES, L.chan .. 'events',
              L.chan .. 'wake:q', L.chan .. 'cancel', L.apalis .. 'q', L.chan .. 'fetch:T',
              webhook_due('q'), webhook_delivery('q', 'T1.1')}"
        ));
        let mut inv = probe.prepare_invoke();
        for a in l.script_head() {
            inv.arg(a);
        }
        let mut c = redis.conn().await;
        let derived: Vec<String> = inv.invoke_async(&mut c).await.unwrap();
        let named = vec![
            l.record("T1"),
            l.index(),
            l.delayed(),
            l.ready_list("q"),
            l.queue_index("q"),
            l.state_index("q", "running"),
            l.expired(),
            l.queues(),
            l.events_channel(),
            l.wake_channel("q"),
            l.cancel_channel(),
            l.apalis_queue("q"),
            l.fetch_memo("T"),
            l.webhook_due("q"),
            l.webhook_delivery("q", "T1.1"),
        ];
        assert_eq!(derived, named);

        let schedules = redis::Script::new(concat!(
            include_str!("lua/prelude.lua"),
            "\n",
            include_str!("lua/schedule_keys.lua"),
            "\nreturn {schedule_key('s1'), SCHEDULES, SCHEDULE_IDS}"
        ));
        let mut inv = schedules.prepare_invoke();
        for a in l.script_head() {
            inv.arg(a);
        }
        let derived: Vec<String> = inv.invoke_async(&mut c).await.unwrap();
        assert_eq!(
            derived,
            vec![l.schedule("s1"), l.schedules(), l.schedule_ids()]
        );
    }
}
