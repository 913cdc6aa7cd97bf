//! A queue's finish history for the dashboard (`stats.lua`): what `count_finish` in the
//! prelude writes from `finish.lua` in the same call that records each attempt's end, one
//! hash per queue and minute that expires after a day. Kept in Redis, so it survives api
//! and worker restarts and every api replica shows the same.

use std::collections::BTreeMap;

use super::{StoreError, TaskStore, script::script};

static STATS: std::sync::LazyLock<redis::Script> = script!("stats.lua");

/// A run of equal time buckets ending with the current minute.
#[derive(Debug, Clone)]
pub struct History {
    /// Minutes since the epoch of the last bucket's last minute (Redis's clock).
    pub last_minute: i64,
    /// Minutes each bucket covers.
    pub width_minutes: u32,
    /// Oldest first.
    pub buckets: Vec<Bucket>,
}

/// The attempts that ended in one bucket of time.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Bucket {
    /// Attempts that succeeded.
    pub succeeded: u64,
    /// Attempts that failed for good.
    pub failed: u64,
    /// Failed attempts that will be tried again.
    pub retrying: u64,
    /// Attempts ended by a cancel.
    pub cancelled: u64,
    /// Run-time histogram: bucket b holds runs of [2^(b/4) - 1, 2^((b+1)/4) - 1) ms.
    pub run_time: BTreeMap<u32, u64>,
}

impl Bucket {
    /// The run time (ms) below which fraction `q` of this bucket's attempts finished: the
    /// geometric middle of the histogram bucket it falls in (so within ~10 %). `None`
    /// without attempts.
    pub fn percentile(&self, q: f64) -> Option<f64> {
        let total: u64 = self.run_time.values().sum();
        if total == 0 {
            return None;
        }
        let rank = (q * total as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (b, n) in &self.run_time {
            seen += n;
            if seen >= rank {
                return Some(2f64.powf((f64::from(*b) + 0.5) / 4.0) - 1.0);
            }
        }
        None
    }

    fn add(&mut self, field: &str, n: u64) {
        match field {
            "succeeded" => self.succeeded += n,
            "failed" => self.failed += n,
            "retrying" => self.retrying += n,
            "cancelled" => self.cancelled += n,
            f => {
                if let Some(b) = f.strip_prefix("rt:").and_then(|b| b.parse().ok()) {
                    *self.run_time.entry(b).or_default() += n;
                }
            }
        }
    }
}

/// One failed attempt of a task, as the finish path recorded it.
#[derive(Debug, Clone, PartialEq)]
pub struct FailedAttempt {
    /// Which attempt (1 for the first).
    pub attempt: u32,
    /// When it ended (the worker's clock).
    pub ended_at: chrono::DateTime<chrono::Utc>,
    /// How long it ran (from its start to the recorded end); `None` if unknown.
    pub run_ms: Option<u64>,
    /// Why it failed.
    pub error: crate::task::TaskError,
}

impl TaskStore {
    /// Every failed attempt of task `id` that its record still holds, oldest first (the
    /// record itself keeps only the last error).
    pub async fn failed_attempts(
        &self,
        queue: &str,
        id: &crate::task::TaskId,
    ) -> Result<Vec<FailedAttempt>, StoreError> {
        let mut c = self.conn.clone();
        let raw: Option<String> = redis::cmd("HGET")
            .arg(self.layout.record(queue, id.as_str()))
            .arg("attempt_errors")
            .query_async(&mut c)
            .await?;
        Ok(raw.as_deref().map(parse_failed).unwrap_or_default())
    }

    /// `queue`'s last `points` buckets of `width_minutes` each (at most a day's worth is
    /// kept; older buckets read as empty).
    pub async fn history(
        &self,
        queue: &str,
        points: u32,
        width_minutes: u32,
    ) -> Result<History, StoreError> {
        let mut inv = self.invoke_in(&STATS, queue);
        inv.arg(queue).arg(points.max(1)).arg(width_minutes.max(1));
        let reply: Vec<redis::Value> = self.run(&inv).await?;
        let mut it = reply.into_iter();
        let last_minute: i64 = it
            .next()
            .map(redis::from_redis_value)
            .transpose()?
            .ok_or_else(|| StoreError::Protocol("stats: empty reply".into()))?;
        let buckets = it
            .map(|v| {
                let flat: Vec<String> = redis::from_redis_value(v)?;
                let mut b = Bucket::default();
                for pair in flat.chunks_exact(2) {
                    b.add(&pair[0], pair[1].parse().unwrap_or(0));
                }
                Ok(b)
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(History {
            last_minute,
            width_minutes: width_minutes.max(1),
            buckets,
        })
    }
}

/// Lines of `attempt TAB ended ms TAB run ms TAB error json`; a line that does not parse
/// is left out rather than failing the page that shows the rest.
fn parse_failed(raw: &str) -> Vec<FailedAttempt> {
    use chrono::TimeZone;
    raw.lines()
        .filter_map(|line| {
            let mut f = line.splitn(4, '\t');
            let attempt = f.next()?.parse().ok()?;
            let ended_at = chrono::Utc
                .timestamp_millis_opt(f.next()?.parse().ok()?)
                .single()?;
            let run_ms = f.next()?.parse().ok();
            let error = serde_json::from_str(f.next()?).ok()?;
            Some(FailedAttempt {
                attempt,
                ended_at,
                run_ms,
                error,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use chrono::Utc;
    use serde_json::json;

    use super::super::{AttemptEnd, Outcome, pause::tests as p};
    use super::*;
    use crate::task::TaskError;

    #[test]
    fn percentiles_come_from_the_histogram() {
        let mut b = Bucket::default();
        assert_eq!(b.percentile(0.5), None);
        b.add("rt:40", 99); // 2^10 - 1 ms
        b.add("rt:53", 1);
        let p50 = b.percentile(0.5).unwrap();
        assert!((1023.0..1300.0).contains(&p50), "{p50}");
        let p99 = b.percentile(0.99).unwrap();
        assert!(p99 < 1300.0, "99 of 100 are in the first bucket: {p99}");
        assert!(b.percentile(1.0).unwrap() > 8000.0);
    }

    #[tokio::test]
    async fn finishes_are_counted_in_the_minute_they_land_with_their_run_time() {
        let redis = errand_testkit::RedisServer::start().await;
        let s = p::store(&redis).await;
        let started = Utc::now() - chrono::Duration::milliseconds(1500);
        let lease = Duration::from_secs(30);
        let mut ends = Vec::new();
        for i in 0..3 {
            s.submit(p::task("h"), started).await.unwrap();
            let f = s
                .fetch("h", 1, "w", lease, &format!("t{i}"), started)
                .await
                .unwrap();
            let c = &f.claimed[0];
            let outcome = if i < 2 {
                Outcome::Succeeded(json!(1))
            } else {
                Outcome::Failed(TaskError {
                    kind: "boom".into(),
                    message: "x".into(),
                })
            };
            ends.push(AttemptEnd {
                id: c.id.clone(),
                queue: c.queue.clone(),
                token: c.token.clone(),
                attempt: c.attempt,
                outcome,
                progress: None,
            });
        }
        // Run times are measured on Redis's clock, from the claim to the finish.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        s.finish_many(&ends, Utc::now()).await.unwrap();
        let failed = s
            .failed_attempts("h", &crate::task::TaskId::parse(&ends[2].id).unwrap())
            .await
            .unwrap();
        assert_eq!(failed.len(), 1, "{failed:?}");
        assert_eq!(
            (failed[0].attempt, failed[0].error.kind.as_str()),
            (1, "boom")
        );
        assert!(
            failed[0]
                .run_ms
                .is_some_and(|ms| (1400..3000).contains(&ms)),
            "{failed:?}"
        );
        let ok = crate::task::TaskId::parse(&ends[0].id).unwrap();
        assert!(s.failed_attempts("h", &ok).await.unwrap().is_empty());
        let h = s.history("h", 60, 1).await.unwrap();
        assert_eq!(h.buckets.len(), 60);
        let last = h.buckets.last().unwrap();
        let prev = &h.buckets[58];
        let (ok, failed) = (last.succeeded + prev.succeeded, last.failed + prev.failed);
        assert_eq!((ok, failed), (2, 1), "{h:?}");
        let p50 = last.percentile(0.5).or(prev.percentile(0.5)).unwrap();
        assert!((1200.0..2200.0).contains(&p50), "run time ~1.5 s: {p50}");
        let day = s.history("h", 96, 15).await.unwrap();
        assert_eq!(day.buckets.last().unwrap().succeeded, 2);
        let ttl: i64 = redis::cmd("TTL")
            .arg(s.layout().stats_minute("h", h.last_minute))
            .query_async(&mut redis.conn().await)
            .await
            .unwrap();
        let ttl = if ttl < 0 {
            redis::cmd("TTL")
                .arg(s.layout().stats_minute("h", h.last_minute - 1))
                .query_async(&mut redis.conn().await)
                .await
                .unwrap()
        } else {
            ttl
        };
        assert!(
            (86_400..=90_000).contains(&ttl),
            "history is bounded by a TTL: {ttl}"
        );
    }
}
