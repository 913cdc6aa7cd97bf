//! How long a retryable failure waits before its next attempt: one policy for Rust workers
//! and for HTTP workers' reports (`/v1/worker/complete`).

/// Exponential backoff: about 1 s, 2 s, 4 s … capped at 5 min, each scaled by `jitter` (a
/// random factor in [0.5, 1.0) in production, see [`jitter`]) so a burst of failures does
/// not retry in lockstep.
pub fn backoff(attempt: u32, jitter: f64) -> chrono::Duration {
    let base = 1000u64.saturating_mul(1 << attempt.saturating_sub(1).min(20));
    let capped = base.min(300_000) as f64;
    chrono::Duration::milliseconds((capped * jitter) as i64)
}

/// A jitter factor for [`backoff`], in [0.5, 1.0).
pub fn jitter() -> f64 {
    use rand::Rng;
    rand::rng().random_range(0.5..1.0)
}
