//! What the checker knows and what each simulated actor believes. The checker sees every
//! reply (a "lost" reply is one the actor forgets, not one the checker misses); the actors
//! act only on what they were told, as real workers and clients would.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap, VecDeque},
    time::Duration,
};

use chrono::{SubsecRound, Utc};
use errand_core::{
    TaskStore,
    schedule::{Misfire, NewSchedule, ScheduleId, ScheduleTemplate},
    store::{ClaimedWebhook, Layout, NewTask, QueueLimits, Rate},
};
use errand_testkit::RedisServer;
use redis::aio::MultiplexedConnection;
use serde_json::json;

use super::claims::Claim;
use crate::helpers::store_on;

/// The queues tasks are submitted to.
pub(crate) const QUEUES: [&str; 2] = ["a", "b"];
/// Simulated worker processes.
pub(crate) const WORKERS: usize = 3;
/// The lease a fetch takes: long enough that no lease lapses on its own during a run (a
/// lapse is always one the checker made), so a seed replays exactly.
pub(crate) const LEASE: Duration = Duration::from_secs(3600);
/// How many of the last steps a failure report shows.
pub(crate) const TRACE: usize = 30;
/// The queue and attempts of the tasks the schedule fires.
pub(crate) const TICK_QUEUE: &str = "b";
/// Queue `a` runs one task per concurrency key at a time.
pub(crate) const KEYED_QUEUE: &str = "a";
pub(crate) const PER_KEY: u32 = 1;
/// Queue `a`'s rate: this many a second, burst 5.
pub(crate) const QUEUE_RATE: u32 = 200;
/// Queue `b`'s noops are rate limited (so some wait throttled): this many a second, burst 3.
pub(crate) const NOOP_RATE: u32 = 100;
pub(crate) const TICK_ATTEMPTS: u32 = 2;

/// A claim a worker holds.
#[derive(Debug, Clone)]
pub(crate) struct Held {
    pub(crate) claim: Claim,
    /// A renewal said a cancel was requested: the attempt stops and ends `cancelled`.
    pub(crate) cancel_seen: bool,
}

/// A fetch whose reply the worker lost: sent again with the same token (what the real
/// worker does after a failed fetch).
#[derive(Debug, Clone)]
pub(crate) struct PendingFetch {
    pub(crate) token: String,
    pub(crate) queue: String,
    pub(crate) n: usize,
}

/// One simulated worker process; a crash or stop starts a new generation (a new name).
#[derive(Debug)]
pub(crate) struct Worker {
    pub(crate) slot: usize,
    pub(crate) generation: u32,
    pub(crate) held: Vec<Held>,
    pub(crate) pending: Option<PendingFetch>,
}

impl Worker {
    pub(crate) fn name(&self) -> String {
        format!("w{}.{}", self.slot, self.generation)
    }

    /// A new process in this slot: nothing held, nothing pending.
    pub(crate) fn restart(&mut self) {
        self.generation += 1;
        self.held.clear();
        self.pending = None;
    }
}

/// What the checker knows of one accepted task.
#[derive(Debug)]
pub(crate) struct Task {
    pub(crate) queue: String,
    /// The submit, for a client that resends it; `None` for a schedule's task.
    pub(crate) submit: Option<NewTask>,
    /// The checker deleted its record as its TTL would and ran the expiry path.
    pub(crate) expired: bool,
    /// The latest claim a fetch handed out, while the task is running under it.
    pub(crate) current: Option<Claim>,
    /// The step a cancel of it was accepted while it ran (cleared by a retry).
    pub(crate) cancel_since: Option<usize>,
    /// Its record as first seen terminal (less the webhook summary), until a retry.
    pub(crate) terminal: Option<BTreeMap<String, String>>,
    /// Its state as last read.
    pub(crate) state: String,
}

/// Who a claim was handed to, and when.
#[derive(Debug)]
pub(crate) struct Issued {
    pub(crate) task: String,
    pub(crate) step: usize,
    pub(crate) worker: String,
}

/// The first invariant a run broke.
#[derive(Debug, Clone)]
pub(crate) struct Violation {
    pub(crate) invariant: &'static str,
    pub(crate) detail: String,
}

/// Counts of what a run did, so a green run shows it exercised the fences.
#[derive(Debug, Default, Clone)]
pub(crate) struct Tally {
    pub(crate) ops: BTreeMap<&'static str, usize>,
    pub(crate) accepted: usize,
    pub(crate) claims: usize,
    pub(crate) replayed: usize,
    pub(crate) landed: usize,
    pub(crate) stale_refused: usize,
    pub(crate) lost_replies: usize,
    pub(crate) lapses: usize,
    pub(crate) cancels: usize,
    pub(crate) retries: usize,
    pub(crate) expired: usize,
    pub(crate) damaged: usize,
    pub(crate) fired: usize,
    pub(crate) hooks: usize,
    /// Submits answered with the task holding their unique key.
    pub(crate) duplicates: usize,
    pub(crate) errors: BTreeMap<String, usize>,
}

impl Tally {
    pub(crate) fn add(&mut self, o: &Tally) {
        for (k, v) in &o.ops {
            *self.ops.entry(*k).or_default() += v;
        }
        for (k, v) in &o.errors {
            *self.errors.entry(k.clone()).or_default() += v;
        }
        self.accepted += o.accepted;
        self.claims += o.claims;
        self.replayed += o.replayed;
        self.landed += o.landed;
        self.stale_refused += o.stale_refused;
        self.lost_replies += o.lost_replies;
        self.lapses += o.lapses;
        self.cancels += o.cancels;
        self.retries += o.retries;
        self.expired += o.expired;
        self.damaged += o.damaged;
        self.fired += o.fired;
        self.hooks += o.hooks;
        self.duplicates += o.duplicates;
    }

    /// The figures, as one line's tail.
    pub(crate) fn figures(&self) -> String {
        let errors: usize = self.errors.values().sum();
        format!(
            "accepted={} claims={} replayed_fetches={} writes_landed={} stale_writes_refused={} \
             lost_replies={} lapses={} cancels={} retries={} expired={} damaged={} ticks_fired={} \
             webhook_claims={} duplicates={} store_errors={errors}",
            self.accepted,
            self.claims,
            self.replayed,
            self.landed,
            self.stale_refused,
            self.lost_replies,
            self.lapses,
            self.cancels,
            self.retries,
            self.expired,
            self.damaged,
            self.fired,
            self.hooks,
            self.duplicates,
        )
    }
}

/// The task-id-like words of `text` (labels like `t3@2[f17]` give `t3`).
fn words(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-')))
        .filter(|w| !w.is_empty())
}

/// Everything a run has: the store, the actors, the checker's model and its trace.
#[derive(Debug)]
pub(crate) struct World {
    pub(crate) store: TaskStore,
    pub(crate) raw: MultiplexedConnection,
    pub(crate) layout: Layout,
    pub(crate) step: usize,
    pub(crate) workers: Vec<Worker>,
    pub(crate) tasks: BTreeMap<String, Task>,
    pub(crate) issued: BTreeMap<String, Issued>,
    /// Claims (keys) whose end was recorded: the same end sent again may be answered
    /// "recorded" without writing.
    pub(crate) ended: BTreeSet<String>,
    /// Webhook deliveries the sender holds.
    pub(crate) hooks: Vec<ClaimedWebhook>,
    /// Per delivery, the latest attempt claimed.
    pub(crate) hook_latest: BTreeMap<String, u32>,
    /// Ids whose submit reply the client lost: it may send them again.
    pub(crate) unsent: Vec<String>,
    pub(crate) schedule: ScheduleId,
    pub(crate) next_tick: i64,
    pub(crate) serial: usize,
    /// The id this step's op retried, if it was a retry.
    pub(crate) retried: Option<String>,
    pub(crate) trace: VecDeque<String>,
    /// Every step's line, for the earlier history of the tasks a failure names.
    pub(crate) history: Vec<String>,
    pub(crate) violation: Option<Violation>,
    pub(crate) tally: Tally,
    /// Per (queue, unique key), the task that took it.
    pub(crate) unique: BTreeMap<(String, String), String>,
    /// Workflows (`workflows`).
    pub(crate) wf: super::workflows::WfModel,
}

impl World {
    /// A fresh world under key prefix `prefix` on `redis`, with one enabled schedule.
    pub(crate) async fn new(redis: &RedisServer, prefix: &str) -> Self {
        let store = store_on(redis, prefix);
        let now = Utc::now().trunc_subsecs(3);
        let schedule = ScheduleId::parse("s1").unwrap();
        let def = NewSchedule {
            id: schedule.clone(),
            cron: "0 0 1 1 *".into(),
            timezone: "UTC".into(),
            misfire: Misfire::RunOnce,
            enabled: true,
            task: ScheduleTemplate {
                kind: "noop".into(),
                payload: json!({"from": "schedule"}),
                queue: TICK_QUEUE.into(),
                max_attempts: TICK_ATTEMPTS,
                timeout_secs: None,
                result_ttl_secs: 3600,
            },
        };
        store
            .create_schedule(&def, Some(now + chrono::Duration::days(30)), now)
            .await
            .unwrap();
        store
            .set_limits(
                KEYED_QUEUE,
                &QueueLimits {
                    per_key: Some(PER_KEY),
                    // And a queue rate, so some fetches find no token and take nothing.
                    rate: Some(Rate {
                        count: QUEUE_RATE,
                        period_ms: 1000,
                        burst: 5,
                    }),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let mut kinds = BTreeMap::new();
        kinds.insert(
            "noop".to_owned(),
            Rate {
                count: NOOP_RATE,
                period_ms: 1000,
                burst: 3,
            },
        );
        store
            .set_limits(
                TICK_QUEUE,
                &QueueLimits {
                    kinds,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        Self {
            layout: store.layout().clone(),
            store,
            raw: redis.conn().await,
            step: 0,
            workers: (0..WORKERS)
                .map(|slot| Worker {
                    slot,
                    generation: 0,
                    held: Vec::new(),
                    pending: None,
                })
                .collect(),
            tasks: BTreeMap::new(),
            issued: BTreeMap::new(),
            ended: BTreeSet::new(),
            hooks: Vec::new(),
            hook_latest: BTreeMap::new(),
            unsent: Vec::new(),
            schedule,
            // Ticks in the past (so due), one ms apart, each a task id of its own.
            next_tick: now.timestamp_millis() - 86_400_000,
            serial: 0,
            retried: None,
            trace: VecDeque::new(),
            history: Vec::new(),
            violation: None,
            tally: Tally::default(),
            unique: BTreeMap::new(),
            wf: Default::default(),
        }
    }

    /// Records the first violation of the run (later ones are its consequences).
    pub(crate) fn flag(&mut self, invariant: &'static str, detail: String) {
        if self.violation.is_none() {
            self.violation = Some(Violation { invariant, detail });
        }
    }

    pub(crate) fn log(&mut self, line: String) {
        let line = format!("#{} {line}", self.step);
        if self.trace.len() == TRACE {
            self.trace.pop_front();
        }
        self.trace.push_back(line.clone());
        self.history.push(line);
    }

    /// The lines before the last [`TRACE`] that name a task `text` names.
    pub(crate) fn earlier(&self, text: &str) -> Vec<String> {
        let named: Vec<&str> = words(text)
            .filter(|w| self.tasks.contains_key(*w))
            .collect();
        let upto = self.history.len().saturating_sub(self.trace.len());
        self.history[..upto]
            .iter()
            .filter(|l| words(l).any(|w| named.contains(&w)))
            .cloned()
            .collect()
    }

    pub(crate) fn error(&mut self, op: &str, e: &dyn std::fmt::Display) {
        let mut msg = format!("{op}: {e}");
        msg.truncate(120);
        *self.tally.errors.entry(msg).or_default() += 1;
    }

    pub(crate) fn next_serial(&mut self) -> usize {
        self.serial += 1;
        self.serial
    }

    /// Ids of live (not expired) tasks last seen in one of `states`.
    pub(crate) fn in_states(&self, states: &[&str]) -> Vec<String> {
        self.tasks
            .iter()
            .filter(|(_, t)| !t.expired && states.contains(&t.state.as_str()))
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Whether `c` is its task's latest claim, while the task runs under it.
    pub(crate) fn is_current(&self, c: &Claim) -> bool {
        self.tasks
            .get(c.id())
            .and_then(|t| t.current.as_ref())
            .is_some_and(|cur| cur.key() == c.key())
    }

    /// For reports: the latest claim of `id`, and who holds it.
    pub(crate) fn current_label(&self, id: &str) -> String {
        match self.tasks.get(id).and_then(|t| t.current.as_ref()) {
            None => "none (the task is not running under any claim handed out)".into(),
            Some(c) => {
                let who = self
                    .issued
                    .get(&c.key())
                    .map_or("?".into(), |i| i.worker.clone());
                format!("{} (handed to {who})", c.label())
            }
        }
    }

    /// The record of `id` as Redis holds it now.
    pub(crate) async fn record(&mut self, id: &str) -> HashMap<String, String> {
        let queue = self.tasks[id].queue.clone();
        redis::cmd("HGETALL")
            .arg(self.layout.record(&queue, id))
            .query_async(&mut self.raw)
            .await
            .unwrap()
    }
}
