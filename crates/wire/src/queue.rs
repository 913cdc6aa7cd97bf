//! Queues on the wire: their counts, their pause state, and their flow-control limits.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A queue with its tasks counted by state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct QueueInfo {
    #[schema(example = "default")]
    pub name: String,
    /// Live tasks per state (terminal ones until their record expires).
    #[schema(example = json!({"scheduled": 0, "queued": 12, "running": 4, "retrying": 1, "succeeded": 950, "failed": 3, "cancelled": 0}))]
    pub counts: BTreeMap<String, u64>,
    /// How long the longest-waiting queued task has waited, in ms; null if none waits.
    #[schema(required = true)]
    pub oldest_queued_age_ms: Option<u64>,
    /// Paused: workers take none of its tasks until it is resumed (submits still accepted).
    pub paused: bool,
}

/// A queue's pause state after a pause or resume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct QueuePause {
    #[schema(example = "default")]
    pub name: String,
    pub paused: bool,
    /// When it was paused; null when it is not.
    #[schema(required = true)]
    pub paused_at: Option<DateTime<Utc>>,
}

/// Every queue ever submitted to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct QueueList {
    pub queues: Vec<QueueInfo>,
}

/// `count` tasks per `period_ms` across every worker, `burst` of them at once after an
/// idle spell (GCRA: in any window of `w` ms at most `burst + w * count / period_ms` start).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"count": 500, "period_ms": 1000, "burst": 50}))]
#[schema(as = RateView)]
pub struct Rate {
    /// Tasks per period (1 to 1000000).
    #[schema(minimum = 1, maximum = 1000000)]
    pub count: u32,
    /// The period in ms (1 to 86400000, a day).
    #[schema(minimum = 1, maximum = 86400000)]
    pub period_ms: u64,
    /// Most at once after an idle spell (1 to 1000000); default 1.
    #[serde(default = "one")]
    #[schema(minimum = 1, maximum = 1000000)]
    pub burst: u32,
}

fn one() -> u32 {
    1
}

/// A queue's limits to set. A `PUT` replaces them all: a limit left out (or null) is
/// removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"rate": {"count": 500, "period_ms": 1000, "burst": 50}, "kinds": {"thumbnail": {"count": 10, "period_ms": 1000, "burst": 1}}, "per_key": 2}))]
pub struct SetLimits {
    /// The whole queue's rate; left out or null for none.
    pub rate: Option<Rate>,
    /// Per kind (registered names or aliases), on top of the queue's rate.
    #[serde(default)]
    pub kinds: BTreeMap<String, Rate>,
    /// Most running tasks per concurrency key (1 to 100000); left out or null for no limit.
    #[schema(minimum = 1, maximum = 100000)]
    pub per_key: Option<u32>,
}

/// Every limit of a queue.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(as = LimitsView)]
pub struct Limits {
    /// The whole queue's rate; null for none.
    #[schema(required = true)]
    pub rate: Option<Rate>,
    /// Per kind (registered names), on top of the queue's rate.
    pub kinds: BTreeMap<String, Rate>,
    /// Most running tasks per concurrency key (1 to 100000); null for no limit.
    #[schema(required = true, minimum = 1, maximum = 100000)]
    pub per_key: Option<u32>,
}

impl From<Limits> for SetLimits {
    /// The limits as read, to set again (changed or not).
    fn from(l: Limits) -> Self {
        Self {
            rate: l.rate,
            kinds: l.kinds,
            per_key: l.per_key,
        }
    }
}

/// A concurrency key and how many of its tasks wait for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct KeyWaiting {
    #[schema(example = "customer-7")]
    pub key: String,
    pub waiting: u64,
}

/// What the limits hold back now: tasks still `queued`, none of their attempts used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(as = HeldView)]
pub struct Held {
    /// Tasks whose kind is out of tokens, waiting for the next.
    pub throttled: u64,
    /// Tasks waiting for a running task of their concurrency key to end.
    pub waiting_for_key: u64,
    /// The keys with the most waiting tasks (at most 20).
    pub keys: Vec<KeyWaiting>,
}

/// A queue's limits and what they hold back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(as = QueueLimitsView)]
pub struct QueueLimits {
    #[schema(example = "default")]
    pub queue: String,
    pub limits: Limits,
    pub held: Held,
}
