//! A queue's flow-control limits (`limits.lua`; enforced by `fetch.lua`): its rate, its
//! kinds' rates and its running tasks per concurrency key, set at runtime and read by
//! every fetch, so a change holds from the next fetch of every worker at once. What the
//! limits hold back is counted by [`TaskStore::held`] (docs/flow-control.md).

use std::collections::BTreeMap;

use super::{StoreError, TaskStore, script::script};

static LIMITS: std::sync::LazyLock<redis::Script> = script!("limits.lua");

/// How many of the key's waiting tasks [`TaskStore::held`] names at most.
const HELD_KEYS: usize = 20;

/// `count` tasks per `period_ms`, with `burst` of them at once after an idle spell (GCRA:
/// one every `period_ms / count` ms in the long run, and never more than `burst` plus that
/// in any window).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Tasks per period, at least 1.
    pub count: u32,
    /// The period in ms.
    pub period_ms: u64,
    /// Most at once, at least 1.
    pub burst: u32,
}

impl Rate {
    /// The stored form, `"<count> <period ms> <burst>"` (what `fetch.lua` parses).
    fn encode(&self) -> String {
        format!("{} {} {}", self.count, self.period_ms, self.burst)
    }

    fn decode(s: &str) -> Option<Self> {
        let mut it = s.split(' ').map(str::parse::<u64>);
        let (Some(Ok(c)), Some(Ok(p)), Some(Ok(b)), None) =
            (it.next(), it.next(), it.next(), it.next())
        else {
            return None;
        };
        Some(Self {
            count: u32::try_from(c).ok()?,
            period_ms: p,
            burst: u32::try_from(b).ok()?,
        })
    }
}

/// Every limit of one queue; `Default` is none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueLimits {
    /// The whole queue's rate, across all its workers.
    pub rate: Option<Rate>,
    /// Per kind (canonical names), on top of the queue's.
    pub kinds: BTreeMap<String, Rate>,
    /// Most running tasks per concurrency key.
    pub per_key: Option<u32>,
}

impl QueueLimits {
    fn fields(&self) -> Vec<(String, String)> {
        let mut f = Vec::new();
        if let Some(r) = &self.rate {
            f.push(("rate".to_owned(), r.encode()));
        }
        for (k, r) in &self.kinds {
            f.push((format!("rate:{k}"), r.encode()));
        }
        if let Some(n) = self.per_key {
            f.push(("per_key".to_owned(), n.to_string()));
        }
        f
    }

    fn from_fields(raw: BTreeMap<String, String>) -> Self {
        let mut l = Self::default();
        for (f, v) in raw {
            if f == "rate" {
                l.rate = Rate::decode(&v);
            } else if f == "per_key" {
                l.per_key = v.parse().ok();
            } else if let Some(kind) = f.strip_prefix("rate:")
                && let Some(r) = Rate::decode(&v)
            {
                l.kinds.insert(kind.to_owned(), r);
            }
        }
        l
    }
}

/// What a queue's limits hold back now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeldBack {
    /// Queued tasks whose kind is out of tokens, waiting for their next one.
    pub throttled: u64,
    /// Queued tasks waiting for a running task of their concurrency key to end.
    pub waiting_for_key: u64,
    /// The keys with the most waiting tasks (at most 20), and how many wait for each.
    pub keys: Vec<(String, u64)>,
}

impl TaskStore {
    /// Replaces `queue`'s limits (all of them: a limit left out is removed) and wakes its
    /// workers; tasks a raised or removed limit frees go at once.
    pub async fn set_limits(&self, queue: &str, limits: &QueueLimits) -> Result<(), StoreError> {
        if self.is_cluster() {
            // The queue set lives outside the queue's slot.
            self.register(&[queue]).await?;
        }
        let mut inv = self.invoke_in(&LIMITS, queue);
        inv.arg(queue).arg("set");
        for (f, v) in limits.fields() {
            inv.arg(f).arg(v);
        }
        let _: i64 = self.run(&inv).await?;
        Ok(())
    }

    /// `queue`'s limits (none set: the default).
    pub async fn limits(&self, queue: &str) -> Result<QueueLimits, StoreError> {
        let mut c = self.conn.clone();
        let raw: BTreeMap<String, String> = redis::cmd("HGETALL")
            .arg(self.layout.limits(queue))
            .query_async(&mut c)
            .await?;
        Ok(QueueLimits::from_fields(raw))
    }

    /// What `queue`'s limits hold back now.
    pub async fn held(&self, queue: &str) -> Result<HeldBack, StoreError> {
        let mut inv = self.invoke_in(&LIMITS, queue);
        inv.arg(queue).arg("held").arg(HELD_KEYS);
        let (throttled, waiting, keys): (u64, u64, Vec<(String, u64)>) = self.run(&inv).await?;
        Ok(HeldBack {
            throttled,
            waiting_for_key: waiting,
            keys,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rate_reads_back_as_written_and_junk_reads_as_none() {
        let r = Rate {
            count: 500,
            period_ms: 1000,
            burst: 50,
        };
        assert_eq!(Rate::decode(&r.encode()), Some(r));
        for bad in ["", "1 2", "1 2 3 4", "a 2 3", "-1 2 3"] {
            assert_eq!(Rate::decode(bad), None, "{bad}");
        }
    }
}
