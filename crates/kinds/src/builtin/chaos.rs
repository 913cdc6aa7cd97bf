//! `chaos`: misbehaves on request, so errand's failure handling can be shown and tested
//! against real processes: a panic, a retryable or permanent failure, a task that blocks its
//! executor thread, one that ignores cancellation. Offered only with
//! `tasks.diagnostic_kinds: true`. Idempotent: it has no side effects.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

use crate::{Failure, Invalid, Limits, TaskContext, TaskKind};

/// The `chaos` kind's [`TaskKind`] impl; the catalog registers it only with
/// `tasks.diagnostic_kinds`.
#[derive(Debug)]
pub struct Chaos;

/// How the `chaos` task misbehaves.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChaosMode {
    /// Panics after `secs`.
    Panic,
    /// Fails with a retryable error after `secs`.
    Fail,
    /// Fails with a permanent (not retried) error after `secs`.
    FailPermanent,
    /// Blocks its executor thread for `secs` (what a task must never do), then succeeds.
    BlockThread,
    /// Sleeps `secs` without looking at its cancellation token, then succeeds.
    IgnoreCancel,
}

/// Payload of the `chaos` kind.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChaosPayload {
    /// Which misbehaviour to show.
    #[schema(inline)]
    pub mode: ChaosMode,
    /// Seconds before misbehaving (or how long to block/sleep), at most `tasks.max_sleep_secs`.
    #[serde(default)]
    #[schema(minimum = 0)]
    pub secs: f64,
}

/// Result of the `chaos` kind, for the two modes that succeed.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChaosResult {
    /// `block_thread`: how long it blocked its thread.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub blocked_secs: Option<f64>,
    /// `ignore_cancel`: how long it slept.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub slept_secs: Option<f64>,
    /// The attempt that succeeded.
    pub attempt: u32,
}

impl TaskKind for Chaos {
    type Payload = ChaosPayload;
    type Output = ChaosResult;
    const NAME: &'static str = "chaos";
    const SUMMARY: &'static str = "Misbehaves on request (panic, fail, block its thread, ignore cancel) to exercise failure handling.";
    const IDEMPOTENT: bool = true;

    fn example() -> Value {
        json!({"mode": "fail", "secs": 0.5})
    }

    fn check(p: &ChaosPayload, limits: &Limits) -> Result<(), Invalid> {
        if !p.secs.is_finite() || p.secs < 0.0 || p.secs > limits.max_sleep_secs as f64 {
            return Err(Invalid::new(
                "payload.secs",
                format!(
                    "must be between 0 and {} (tasks.max_sleep_secs)",
                    limits.max_sleep_secs
                ),
            ));
        }
        Ok(())
    }

    fn document(schema: &mut Value, limits: &Limits) {
        schema["properties"]["secs"]["maximum"] = json!(limits.max_sleep_secs);
    }

    async fn run(ctx: TaskContext, p: ChaosPayload) -> Result<ChaosResult, Failure> {
        let d = Duration::from_secs_f64(p.secs);
        match p.mode {
            ChaosMode::BlockThread => {
                // Deliberately blocking: this is the failure being demonstrated.
                std::thread::sleep(d);
                return Ok(ChaosResult {
                    blocked_secs: Some(p.secs),
                    slept_secs: None,
                    attempt: ctx.attempt(),
                });
            }
            ChaosMode::IgnoreCancel => {
                tokio::time::sleep(d).await;
                return Ok(ChaosResult {
                    blocked_secs: None,
                    slept_secs: Some(p.secs),
                    attempt: ctx.attempt(),
                });
            }
            _ => {}
        }
        tokio::select! {
            _ = tokio::time::sleep(d) => {}
            _ = ctx.cancelled() => return Err(Failure::permanent("cancelled", "chaos was cancelled")),
        }
        match p.mode {
            ChaosMode::Panic => panic!("chaos panic on attempt {}", ctx.attempt()),
            ChaosMode::Fail => Err(Failure::retryable(
                "chaos",
                format!("chaos failure on attempt {}", ctx.attempt()),
            )),
            _ => Err(Failure::permanent(
                "chaos",
                format!("permanent chaos failure on attempt {}", ctx.attempt()),
            )),
        }
    }
}
