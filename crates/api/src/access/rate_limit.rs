//! The per-caller submit rate limit (`api.rate_limit`): token buckets in this process.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use errand_core::settings::RateLimitSettings;

/// Token buckets per caller, in this process. A request is let through while its bucket
/// holds at least one token and then pays for every task it submits, so a batch larger
/// than the burst still goes through once, after which the caller waits its debt off.
pub(crate) struct RateLimiter {
    pub(super) per_sec: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

/// Callers idle this long are forgotten, so the map cannot grow without bound.
const FORGET_AFTER: Duration = Duration::from_secs(600);

impl RateLimiter {
    pub(crate) fn new(s: &RateLimitSettings) -> Option<Self> {
        s.enabled().then(|| Self {
            per_sec: s.submits_per_sec,
            burst: f64::from(s.burst),
            buckets: Mutex::new(HashMap::new()),
        })
    }

    /// Takes `tasks` tokens from `caller`'s bucket, or says how long until it may try.
    pub(crate) fn take(&self, caller: &str, tasks: usize, now: Instant) -> Result<(), Duration> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() > 10_000 {
            buckets.retain(|_, (_, at)| now.duration_since(*at) < FORGET_AFTER);
        }
        let (tokens, at) = buckets
            .entry(caller.to_owned())
            .or_insert((self.burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * self.per_sec).min(self.burst);
        *at = now;
        if *tokens < 1.0 {
            return Err(Duration::from_secs_f64((1.0 - *tokens) / self.per_sec));
        }
        *tokens -= tasks as f64;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bucket_refills_at_the_rate_and_a_big_batch_goes_into_debt() {
        let l = RateLimiter::new(&RateLimitSettings {
            submits_per_sec: 10.0,
            burst: 5,
        })
        .unwrap();
        let t0 = Instant::now();
        for _ in 0..5 {
            assert!(l.take("a", 1, t0).is_ok());
        }
        let wait = l.take("a", 1, t0).unwrap_err();
        assert!((wait.as_secs_f64() - 0.1).abs() < 1e-6, "{wait:?}");
        assert!(l.take("b", 1, t0).is_ok(), "callers are counted apart");
        assert!(l.take("a", 1, t0 + Duration::from_millis(100)).is_ok());
        // A batch of 20 passes once, then the debt (15 tokens) takes 1.6 s to pay off.
        assert!(l.take("c", 20, t0).is_ok());
        let wait = l.take("c", 1, t0).unwrap_err();
        assert!((wait.as_secs_f64() - 1.6).abs() < 1e-6, "{wait:?}");
        assert!(
            RateLimiter::new(&RateLimitSettings {
                submits_per_sec: 0.0,
                burst: 5
            })
            .is_none()
        );
    }
}
