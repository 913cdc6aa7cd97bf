//! Every Redis key and channel errand uses, named in one place. The scripts derive theirs
//! from the prefix this hands them (`script_head`); the drift test below runs the prelude's
//! own key functions on a real Redis and compares every one with these methods.
//!
//! Every key of a queue carries the queue's hash tag (`<prefix>:{<queue>}:`), so each
//! script call touches one hash slot and errand runs on a Redis Cluster: a queue's records,
//! indexes, ready list and delayed set live together on one master. The few keys outside
//! any queue (the queue set, the id pointers, the schedules, the worker registry) are
//! touched by calls of their own (docs/scaling.md).

/// Which layout a Redis holds: 2 is this one; none (or 1) the untagged one before it, which
/// `migrate` converts.
pub const LAYOUT_VERSION: u32 = 2;

/// How many hash tags workflows are spread over.
pub const WORKFLOW_SHARDS: u64 = 16;

/// Which of [`WORKFLOW_SHARDS`] workflow `id` lives in.
pub(crate) fn workflow_shard(id: &str) -> u64 {
    let h = id
        .bytes()
        .fold(0u64, |h, b| (h * 31 + u64::from(b)) % 2_147_483_647);
    h % WORKFLOW_SHARDS
}

/// The name of every key errand owns, from one prefix (docs/architecture.md has the table).
#[derive(Debug, Clone)]
pub struct Layout {
    prefix: String,
}

impl Layout {
    /// Keys under `prefix:` (`redis.key_prefix`).
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
        }
    }

    /// The prefix, without its trailing `:`.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The start of every key of `queue`: its hash tag.
    fn tag(&self, queue: &str) -> String {
        format!("{}:{{{queue}}}:", self.prefix)
    }

    /// Hash: task `id` of `queue`.
    pub fn record(&self, queue: &str, id: &str) -> String {
        format!("{}task:{id}", self.tag(queue))
    }

    /// String: the queue task `id` lives in (on a cluster `<queue>@<created ms>` once its
    /// create is confirmed, a bare `<queue>` with a TTL while claimed). How a read with only
    /// an id finds the task's slot. `~<ms>`: a tombstone the layout before wrote.
    pub fn pointer(&self, id: &str) -> String {
        format!("{}:id:{id}", self.prefix)
    }

    /// Hash of tombstones (id -> expiry ms) of id shard `shard`, for ids that expired in
    /// bucket `n` of `width_secs` (ms since the epoch / width); expires with its bucket.
    pub fn tombstones(&self, shard: u64, width_secs: u64, n: u64) -> String {
        format!("{}:{{~tomb:{shard}}}:{width_secs}:{n}", self.prefix)
    }

    /// List: ids of `queue`'s tasks waiting to run, in order.
    pub fn ready_list(&self, queue: &str) -> String {
        format!("{}ready", self.tag(queue))
    }

    /// List: ids of `queue`'s tasks of priority `p` (1 to 9) waiting to run, in order; the
    /// default priority's is [`Layout::ready_list`].
    pub fn band_list(&self, queue: &str, p: u8) -> String {
        if p == crate::task::DEFAULT_PRIORITY {
            self.ready_list(queue)
        } else {
            format!("{}ready:p{p}", self.tag(queue))
        }
    }

    /// Hash of one bulk action's progress on `queue` (a day after its last change).
    pub fn bulk(&self, queue: &str, id: &str) -> String {
        format!("{}bulk:{id}", self.tag(queue))
    }

    /// Zset of `queue`'s most recent bulk action ids by start ms (the last 20, a day).
    pub fn bulks(&self, queue: &str) -> String {
        format!("{}bulks", self.tag(queue))
    }

    /// Hash of `queue`'s flow-control limits (`rate`, `rate:<kind>`, `per_key`).
    pub fn limits(&self, queue: &str) -> String {
        format!("{}limits", self.tag(queue))
    }

    /// Zset of `queue`'s queued task ids held back by their kind's rate, by when a token is due.
    pub fn throttled(&self, queue: &str) -> String {
        format!("{}throttled", self.tag(queue))
    }

    /// List of `queue`'s queued task ids waiting for concurrency key `key` to have room.
    pub fn key_waiting(&self, queue: &str, key: &str) -> String {
        format!("{}ck:wait:{key}", self.tag(queue))
    }

    /// Set of `queue`'s running task ids holding concurrency key `key`.
    pub fn key_running(&self, queue: &str, key: &str) -> String {
        format!("{}ck:run:{key}", self.tag(queue))
    }

    /// Zset of `queue`'s live task ids by creation ms.
    pub fn queue_index(&self, queue: &str) -> String {
        format!("{}idx", self.tag(queue))
    }

    /// Zset of `queue`'s task ids in `state`: scored by the ms the task entered it, except
    /// `running` (lease expiry: the lease table) and the terminal states (record expiry).
    pub fn state_index(&self, queue: &str, state: &str) -> String {
        format!("{}idx:{state}", self.tag(queue))
    }

    /// Zset of `queue`'s scheduled and retrying task ids by due ms.
    pub fn delayed(&self, queue: &str) -> String {
        format!("{}delayed", self.tag(queue))
    }

    /// What fetch `token` claimed, kept for a lease's time so a retried fetch whose reply was
    /// lost is answered with the same claims.
    pub fn fetch_memo(&self, queue: &str, token: &str) -> String {
        format!("{}fetch:{token}", self.tag(queue))
    }

    /// Set of the queues that hold something: added to by every submit, pruned by upkeep
    /// once a queue holds nothing (`expire.lua`).
    pub fn queues(&self) -> String {
        format!("{}:queues", self.prefix)
    }

    /// String: the layout version this Redis holds ([`LAYOUT_VERSION`]).
    pub fn version(&self) -> String {
        format!("{}:layout", self.prefix)
    }

    /// Channel a submit publishes on so idle workers of `queue` fetch at once.
    pub fn wake_channel(&self, queue: &str) -> String {
        format!("{}:wake:{queue}", self.prefix)
    }

    /// Channel carrying "<id> <state>" lines for every transition (long-poll, SSE).
    pub fn events_channel(&self) -> String {
        format!("{}:events", self.prefix)
    }

    /// Channel a cancel of a running task is announced on; workers stop the task.
    pub fn cancel_channel(&self) -> String {
        format!("{}:cancel", self.prefix)
    }

    /// Zset of worker process names by last heartbeat ms (one hash tag with their hashes).
    pub fn workers(&self) -> String {
        format!("{}:{{~workers}}:all", self.prefix)
    }

    /// Hash describing one worker process; expires when its heartbeats stop.
    pub fn worker(&self, name: &str) -> String {
        format!("{}:{{~workers}}:w:{name}", self.prefix)
    }

    /// Hash of kind definitions, `<name>\n<digest>` -> JSON ([`RegisteredKind`]): every
    /// schema a worker registered and that is still current or served. In the workers' slot,
    /// so one call reads the registry and who serves it.
    ///
    /// [`RegisteredKind`]: super::RegisteredKind
    pub fn kind_definitions(&self) -> String {
        format!("{}:{{~workers}}:kinds:defs", self.prefix)
    }

    /// Hash of kind name -> digest of its last registration: the schema that validates
    /// when no live worker serves the kind.
    pub fn kind_latest(&self) -> String {
        format!("{}:{{~workers}}:kinds:last", self.prefix)
    }

    /// Hash holding one schedule's definition and firing history.
    pub fn schedule(&self, id: &str) -> String {
        format!("{}:{{~schedules}}:s:{id}", self.prefix)
    }

    /// Zset of enabled schedule ids by the ms of the tick each waits for: what workers fire.
    pub fn schedules(&self) -> String {
        format!("{}:{{~schedules}}:due", self.prefix)
    }

    /// Zset of every schedule id, all scored 0, so listing pages through ids in order.
    pub fn schedule_ids(&self) -> String {
        format!("{}:{{~schedules}}:ids", self.prefix)
    }

    /// The hash tag of workflow shard `shard` (of [`WORKFLOW_SHARDS`]): a workflow's hash
    /// and its shard's indexes share it, so each workflow op is one call in one slot, and
    /// workflows spread over a cluster's masters.
    pub fn workflow_tag(&self, shard: u64) -> String {
        format!("{}:{{~wf:{shard}}}:", self.prefix)
    }

    /// Hash of workflow `id` (`lua/workflow.lua` names its fields).
    pub fn workflow(&self, id: &str) -> String {
        format!("{}wf:{id}", self.workflow_tag(workflow_shard(id)))
    }

    /// Zset of shard `shard`'s running workflow ids by the ms upkeep looks at each if
    /// nothing touched it before then.
    pub fn workflows_live(&self, shard: u64) -> String {
        format!("{}live", self.workflow_tag(shard))
    }

    /// Zset of shard `shard`'s workflow ids by creation ms (the listing).
    pub fn workflows_index(&self, shard: u64) -> String {
        format!("{}idx", self.workflow_tag(shard))
    }

    /// Zset of shard `shard`'s ended workflow ids by the ms their hash expires.
    pub fn workflows_ended(&self, shard: u64) -> String {
        format!("{}ended", self.workflow_tag(shard))
    }

    /// Zset: `queue`'s workflow outbox, the ids of steps whose task entered or left a
    /// terminal state, by the ms the entry is due (store/workflow_ends.rs).
    pub fn workflow_outbox(&self, queue: &str) -> String {
        format!("{}wf:out", self.tag(queue))
    }

    /// Channel of workflow changes: lines of `<workflow> <step> <state>` (`-` for the
    /// workflow's own).
    pub fn workflow_events_channel(&self) -> String {
        format!("{}:wf-events", self.prefix)
    }

    /// Flag of a paused queue (value: paused-at ms): while it exists fetches hand out none
    /// of the queue's tasks.
    pub fn paused(&self, queue: &str) -> String {
        format!("{}paused", self.tag(queue))
    }

    /// String: the id of the task that holds unique key `key` in `queue` for its window
    /// (`unique_for_secs`: the key's TTL), so a second submit inside it answers that task.
    pub fn unique(&self, queue: &str, key: &str) -> String {
        format!("{}uniq:{key}", self.tag(queue))
    }

    /// Hash of `queue`'s attempt ends in one minute (`minute` = ms since the epoch / 60000):
    /// counts per outcome and run-time buckets, for the dashboard; expires after a day.
    pub fn stats_minute(&self, queue: &str, minute: i64) -> String {
        format!("{}stats:{minute}", self.tag(queue))
    }

    /// Zset of `queue`'s pending webhook deliveries by the ms their next attempt is due (a
    /// claimed one: when its claim lapses). The outbox: written in the same script call as
    /// the task's terminal transition.
    pub fn webhook_due(&self, queue: &str) -> String {
        format!("{}webhook:due", self.tag(queue))
    }

    /// Hash of one pending webhook delivery of a `queue` task (what to send, attempts so
    /// far); deleted once delivered or given up.
    pub fn webhook_delivery(&self, queue: &str, delivery: &str) -> String {
        format!("{}webhook:d:{delivery}", self.tag(queue))
    }

    /// The fixed ARGV head every store script starts with (see `lua/prelude.lua`): the
    /// prefix, and whether the script may reach outside its slot (`cross`: a single Redis).
    pub(super) fn script_head(&self, cross: bool) -> [String; 2] {
        [
            format!("{}:", self.prefix),
            if cross { "1" } else { "0" }.to_owned(),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the prelude's own key functions on a real Redis and compares each key and
    /// channel a script derives with the method that names it here.
    #[tokio::test]
    async fn every_key_the_scripts_derive_is_the_layouts() {
        let redis = errand_testkit::RedisServer::start().await;
        let l = Layout::new("drift");
        let probe = redis::Script::new(concat!(
            include_str!("lua/prelude.lua"),
            "\nreturn {record_key('q', 'T1'), pointer_key('T1'), ready_list('q'), queue_index('q'),
              state_index('q', 'running'), delayed_key('q'), fetch_memo('q', 'T'), QUEUES,
              P .. 'events', P .. 'wake:q', P .. 'cancel', webhook_due('q'), webhook_delivery('q', 'T1.1'),
              band_list('q', 5), band_list('q', 9), limits_key('q'), throttled_key('q'),
              key_waiting('q', 'c1'), key_running('q', 'c1')}"
        ));
        let mut inv = probe.prepare_invoke();
        for a in l.script_head(true) {
            inv.arg(a);
        }
        let mut c = redis.conn().await;
        let derived: Vec<String> = inv.invoke_async(&mut c).await.unwrap();
        let named = vec![
            l.record("q", "T1"),
            l.pointer("T1"),
            l.ready_list("q"),
            l.queue_index("q"),
            l.state_index("q", "running"),
            l.delayed("q"),
            l.fetch_memo("q", "T"),
            l.queues(),
            l.events_channel(),
            l.wake_channel("q"),
            l.cancel_channel(),
            l.webhook_due("q"),
            l.webhook_delivery("q", "T1.1"),
            l.band_list("q", 5),
            l.band_list("q", 9),
            l.limits("q"),
            l.throttled("q"),
            l.key_waiting("q", "c1"),
            l.key_running("q", "c1"),
        ];
        assert_eq!(derived, named);

        let schedules = redis::Script::new(concat!(
            include_str!("lua/prelude.lua"),
            "\n",
            include_str!("lua/schedule_keys.lua"),
            "\nreturn {schedule_key('s1'), SCHEDULES, SCHEDULE_IDS}"
        ));
        let mut inv = schedules.prepare_invoke();
        for a in l.script_head(true) {
            inv.arg(a);
        }
        let derived: Vec<String> = inv.invoke_async(&mut c).await.unwrap();
        assert_eq!(
            derived,
            vec![l.schedule("s1"), l.schedules(), l.schedule_ids()]
        );

        // The dashboard's keys, and the clock count_finish reads run times with.
        let at = chrono::DateTime::parse_from_rfc3339("2026-02-28T23:59:58.123Z").unwrap();
        let dash = redis::Script::new(concat!(
            include_str!("lua/prelude.lua"),
            "\nreturn {paused_key('q'), stats_key('q', 29000000), unique_key('q', 'k'), \
              tostring(rfc3339_ms(ARGV[3])), tostring(rfc3339_ms('2024-03-01T00:00:00Z'))}"
        ));
        let mut inv = dash.prepare_invoke();
        for a in l.script_head(true) {
            inv.arg(a);
        }
        inv.arg(crate::task::rfc3339(at.to_utc()));
        let derived: Vec<String> = inv.invoke_async(&mut c).await.unwrap();
        assert_eq!(
            derived,
            vec![
                l.paused("q"),
                l.stats_minute("q", 29_000_000),
                l.unique("q", "k"),
                at.timestamp_millis().to_string(),
                "1709251200000".to_owned(),
            ]
        );
    }

    #[test]
    fn a_queues_keys_share_one_hash_slot_and_the_schedules_theirs() {
        let l = Layout::new("errand");
        let slot = |k: &str| {
            let tagged = k
                .find('{')
                .and_then(|a| k[a + 1..].find('}').map(|b| &k[a + 1..a + 1 + b]));
            tagged.unwrap_or(k).to_owned()
        };
        let q = "emails";
        for k in [
            l.record(q, "x"),
            l.ready_list(q),
            l.queue_index(q),
            l.state_index(q, "failed"),
            l.delayed(q),
            l.fetch_memo(q, "t"),
            l.paused(q),
            l.stats_minute(q, 1),
            l.unique(q, "k"),
        ] {
            assert_eq!(slot(&k), q, "{k}");
        }
        for k in [l.schedule("s"), l.schedules(), l.schedule_ids()] {
            assert_eq!(slot(&k), "~schedules", "{k}");
        }
        assert_eq!(slot(&l.worker("w")), slot(&l.workers()));
    }
}
