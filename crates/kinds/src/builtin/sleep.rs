//! `sleep` (alias `long_running`): the tutorial chapter's long task. Sleeps, reporting progress
//! every second, and answers "task <id> done". Idempotent: it has no side effects.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

use crate::{Failure, Invalid, Limits, TaskContext, TaskKind};

/// The `sleep` kind's [`TaskKind`] impl; the catalog registers it.
#[derive(Debug)]
pub struct Sleep;

/// Payload of the `sleep` kind.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"duration_secs": 5}))]
pub struct SleepPayload {
    /// How long to sleep, in seconds (fractions allowed), at most `tasks.max_sleep_secs`.
    #[schema(minimum = 0, example = 5)]
    pub duration_secs: f64,
}

/// Result of the `sleep` kind.
#[derive(Debug, Serialize, ToSchema)]
pub struct SleepResult {
    /// `task <id> done`, the tutorial chapter's answer.
    #[schema(example = "task 0193a0c4-5bd2-7c1e-9f3e-6c1d2b7a9e10 done")]
    pub message: String,
    /// How long it slept, in seconds: the payload's `duration_secs`.
    #[schema(example = 5)]
    pub slept_secs: f64,
}

impl TaskKind for Sleep {
    type Payload = SleepPayload;
    type Output = SleepResult;
    const NAME: &'static str = "sleep";
    const ALIASES: &'static [&'static str] = &["long_running"];
    const SUMMARY: &'static str =
        "Sleeps duration_secs, reporting progress every second (the tutorial's long_running_task).";
    const IDEMPOTENT: bool = true;

    fn example() -> Value {
        json!({"duration_secs": 5})
    }

    fn check(p: &SleepPayload, limits: &Limits) -> Result<(), Invalid> {
        if !p.duration_secs.is_finite() || p.duration_secs < 0.0 {
            return Err(Invalid::new(
                "payload.duration_secs",
                "must be a number >= 0",
            ));
        }
        if p.duration_secs > limits.max_sleep_secs as f64 {
            return Err(Invalid::new(
                "payload.duration_secs",
                format!(
                    "must be at most {} (tasks.max_sleep_secs)",
                    limits.max_sleep_secs
                ),
            ));
        }
        Ok(())
    }

    fn document(schema: &mut Value, limits: &Limits) {
        schema["properties"]["duration_secs"]["maximum"] = json!(limits.max_sleep_secs);
    }

    async fn run(ctx: TaskContext, p: SleepPayload) -> Result<SleepResult, Failure> {
        let total = Duration::from_secs_f64(p.duration_secs);
        let started = tokio::time::Instant::now();
        let deadline = started + total;
        ctx.report(0, format!("sleeping {} s", p.duration_secs));
        loop {
            let now = tokio::time::Instant::now();
            if now >= deadline {
                break;
            }
            let step = (deadline - now).min(Duration::from_secs(1));
            tokio::select! {
                _ = tokio::time::sleep(step) => {}
                _ = ctx.cancelled() => return Err(Failure::permanent("cancelled", "sleep was cancelled")),
            }
            let done = started.elapsed().min(total);
            let percent = if total.is_zero() {
                100
            } else {
                (done.as_secs_f64() / total.as_secs_f64() * 100.0) as u8
            };
            ctx.report(
                percent,
                format!("slept {:.0} of {} s", done.as_secs_f64(), p.duration_secs),
            );
        }
        Ok(SleepResult {
            message: format!("task {} done", ctx.id()),
            slept_secs: p.duration_secs,
        })
    }
}
