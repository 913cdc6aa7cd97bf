//! Runs one claimed attempt and records how it ended.
//!
//! The apalis handler always succeeds from apalis's point of view: errand owns retries, so
//! every failure is recorded on errand's record and, if attempts remain, the task waits in
//! errand's `delayed` zset for its backoff and is queued again by upkeep.

use std::{sync::Arc, time::Duration};

use chrono::Utc;
use errand_core::{
    Settings, StoreError, TaskStore,
    store::{AttemptEnd, Claimed, Outcome, ProgressReport},
    task::{Progress, TaskError},
    telemetry::{self, redis_call},
};
use errand_tasks::{Catalog, Failure, TaskContext};
use futures::FutureExt;
use rand::Rng;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::{
    batch::{Coalescer, Pending},
    leases::Running,
};

pub struct Runner {
    pub store: TaskStore,
    /// Progress reports and attempt ends, batched (see `batch.rs`).
    pub reports: Reports,
    pub ends: Ends,
    pub catalog: Catalog,
    pub settings: Settings,
    pub running: Running,
    /// Cancelled when the process is shutting down and the grace period ran out.
    pub abandon: CancellationToken,
}

/// Batched progress reports → recorded.
pub type Reports = Coalescer<ProgressReport, bool>;
/// Batched attempt ends → recorded.
pub type Ends = Coalescer<AttemptEnd, bool>;

impl Runner {
    /// The batching progress and finish paths.
    pub fn coalescers(store: &TaskStore) -> (Reports, Ends) {
        let s = store.clone();
        let reports = Coalescer::start(move |reports: Vec<ProgressReport>| {
            let s = s.clone();
            async move { redis_call("progress", s.progress_many(&reports, Utc::now())).await }
                .boxed()
        });
        let s = store.clone();
        let ends = Coalescer::start(move |ends: Vec<AttemptEnd>| {
            let s = s.clone();
            async move { redis_call("finish", s.finish_many(&ends, Utc::now())).await }.boxed()
        });
        (reports, ends)
    }

    /// Runs one claimed attempt: the claim was made by the fetch that delivered it.
    pub async fn run(self: Arc<Self>, claimed: Claimed) {
        // The attempt's span continues the submit's trace (docs/observability.md).
        let span = tracing::info_span!("task", task_id = %claimed.id, queue = %claimed.queue,
            kind = %claimed.kind, attempt = claimed.attempt, trace_id = tracing::field::Empty);
        if let Some(t) = telemetry::continue_trace(&span, claimed.traceparent.as_deref()) {
            span.record("trace_id", tracing::field::display(t));
        }
        let _busy = crate::metrics::busy(&claimed.queue);
        async move {
            if let Err(reason) = &claimed.payload {
                // The stored record does not decode: fail that task alone.
                let err = TaskError {
                    kind: "corrupt_record".into(),
                    message: format!("the stored task cannot be read: {reason}"),
                };
                self.end(&claimed, Outcome::Failed(err), None).await;
                return;
            }
            self.run_attempt(claimed).await;
        }
        .instrument(span)
        .await
    }

    /// Runs one attempt. Returns once the task's own work has ended, and records the outcome
    /// in the background: the apalis slot is free for the next job while the finish write is
    /// on its way (it goes out in the next group commit). The running guard, and with it the
    /// lease renewal and shutdown's wait, lasts until the outcome is recorded, so a crash
    /// before then still re-runs the task when its lease lapses.
    async fn run_attempt(self: &Arc<Self>, record: Claimed) {
        let id = record.id.to_string();
        let attempt = record.attempt;
        let cancel = self.abandon.child_token();
        let guard = self.running.enter(&record.queue, &id, cancel.clone());
        tracing::info!(kind = %record.kind, attempt, "attempt started");
        let metrics = crate::metrics::task(&record.queue, &record.kind);
        metrics.started(record.queued_at);
        let began = std::time::Instant::now();

        let (tx, mut rx) = watch::channel::<Option<Progress>>(None);
        let ctx = TaskContext::new(id.clone(), attempt, tx, cancel.clone());
        let mut record = record;
        let payload = std::mem::replace(&mut record.payload, Ok(serde_json::Value::Null));
        let fut = self
            .catalog
            .run(&record.kind, ctx, payload.unwrap_or_default());
        let mut handle = tokio::spawn(fut.in_current_span());

        let limit = record.timeout_secs.map(Duration::from_secs);
        let deadline = async {
            match limit {
                Some(l) => tokio::time::sleep(l).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(deadline);
        // Progress is written while the attempt runs, one report in flight at a time: a
        // burst between two writes costs one write of the latest value.
        let mut report: Option<(Pending<bool>, String)> = None;
        // The last progress known to be on the record.
        let mut recorded: Option<String> = None;
        let (mut dirty, mut reporting) = (false, true);
        let ended = loop {
            tokio::select! {
                j = &mut handle => break Ended::Joined(j),
                _ = &mut deadline => break Ended::TimedOut,
                _ = cancel.cancelled() => break Ended::Cancelled,
                changed = rx.changed(), if reporting => match changed {
                    Ok(()) => dirty = true,
                    Err(_) => reporting = false,
                },
                done = async { (&mut report.as_mut().expect("guarded").0).await }, if report.is_some() => {
                    let sent = report.take().map(|(_, json)| json);
                    match done {
                        Ok(true) => recorded = sent,
                        Ok(false) => {}
                        Err(e) => tracing::debug!(error = %e, "progress not recorded"),
                    }
                }
            }
            if dirty && report.is_none() {
                dirty = false;
                let json = rx
                    .borrow_and_update()
                    .as_ref()
                    .and_then(|p| serde_json::to_string(p).ok());
                if let Some(json) = json {
                    let pending = self.reports.send(ProgressReport {
                        id: id.clone(),
                        queue: record.queue.clone(),
                        attempt,
                        json: json.clone(),
                    });
                    report = Some((pending, json));
                }
            }
        };
        let outcome: Result<serde_json::Value, Failure> = match ended {
            Ended::Joined(j) => joined(j),
            Ended::TimedOut => {
                cancel.cancel();
                stop(&mut handle).await;
                Err(Failure::retryable(
                    "timeout",
                    format!(
                        "attempt ran longer than {} s",
                        limit.unwrap_or_default().as_secs()
                    ),
                ))
            }
            Ended::Cancelled => {
                stop(&mut handle).await;
                Err(Failure::permanent("cancelled", "cancelled by request"))
            }
        };
        // The last progress goes with the terminal write instead of before it (one round
        // trip less per task). A report already sent lands first (one connection, in
        // order); one still queued finds the attempt ended and is dropped.
        let progress = rx
            .borrow()
            .as_ref()
            .and_then(|p| serde_json::to_string(p).ok())
            .filter(|latest| recorded.as_ref() != Some(latest));

        if self.abandon.is_cancelled() {
            // Shutdown ran out of grace: leave the task running; its lease lapses and another
            // worker takes it over as a new attempt.
            tracing::warn!("attempt abandoned at shutdown");
            return;
        }
        let now = Utc::now();
        let outcome = match outcome {
            Err(f) if f.kind == "cancelled" && cancel.is_cancelled() => {
                Outcome::Cancelled(TaskError {
                    kind: f.kind,
                    message: f.message,
                })
            }
            Ok(result) => {
                let size = result.to_string().len();
                if size > self.settings.tasks.max_result_bytes {
                    Outcome::Failed(TaskError {
                        kind: "result_too_large".into(),
                        message: format!(
                            "result is {size} bytes; the limit is {} (tasks.max_result_bytes)",
                            self.settings.tasks.max_result_bytes
                        ),
                    })
                } else {
                    Outcome::Succeeded(result)
                }
            }
            Err(f) => {
                let error = TaskError {
                    kind: f.kind.clone(),
                    message: f.message.clone(),
                };
                if f.retryable && attempt < record.max_attempts {
                    let delay = backoff(attempt);
                    Outcome::Retry {
                        error,
                        delay,
                        at: now + delay,
                    }
                } else {
                    Outcome::Failed(error)
                }
            }
        };
        metrics.ran(&outcome, began.elapsed());
        match &outcome {
            Outcome::Succeeded(_) => tracing::info!("attempt succeeded"),
            Outcome::Retry { error, at, .. } => {
                tracing::warn!(kind = %error.kind, error = %error.message, next = %at, "attempt failed; will retry")
            }
            Outcome::Failed(error) | Outcome::Cancelled(error) => {
                tracing::warn!(kind = %error.kind, error = %error.message, "attempt failed; no retry")
            }
        }
        let this = self.clone();
        // JSON logs show the current span's fields only: the finish's lines keep the ids.
        let finish = tracing::info_span!("finish", outcome = outcome_name(&outcome), task_id = %id,
            trace_id = telemetry::current_trace_id().map(tracing::field::display));
        tokio::spawn(
            async move {
                this.end(&record, outcome, progress).await;
                drop(guard);
            }
            .instrument(finish),
        );
    }

    async fn end(&self, record: &Claimed, outcome: Outcome, progress: Option<String>) {
        let id = record.id.as_str();
        match self
            .retrying("finish", || {
                self.ends.call(AttemptEnd {
                    id: id.to_owned(),
                    queue: record.queue.clone(),
                    attempt: record.attempt,
                    outcome: outcome.clone(),
                    progress: progress.clone(),
                })
            })
            .await
        {
            Some(false) => {
                tracing::info!("attempt no longer owned the task; its outcome was not recorded")
            }
            Some(true) => crate::metrics::task(&record.queue, &record.kind).recorded(&outcome),
            None => {}
        }
    }

    /// Retries a store call while Redis is unavailable, until it works or shutdown gives up.
    /// Giving up is safe: the task's lease lapses and it is re-run (at least once).
    async fn retrying<T, F, Fut>(&self, what: &str, mut f: F) -> Option<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let mut wait = Duration::from_millis(50);
        loop {
            match f().await {
                Ok(v) => return Some(v),
                Err(e) if e.is_unavailable() && !self.abandon.is_cancelled() => {
                    tracing::warn!(error = %e, "{what}: redis unavailable; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = self.abandon.cancelled() => return None,
                    }
                    wait = (wait * 2).min(Duration::from_secs(2));
                }
                Err(e) => {
                    tracing::error!(error = %e, "{what} failed");
                    return None;
                }
            }
        }
    }
}

fn outcome_name(o: &Outcome) -> &'static str {
    match o {
        Outcome::Succeeded(_) => "succeeded",
        Outcome::Failed(_) => "failed",
        Outcome::Retry { .. } => "retried",
        Outcome::Cancelled(_) => "cancelled",
    }
}

enum Ended {
    Joined(Result<Result<serde_json::Value, Failure>, tokio::task::JoinError>),
    TimedOut,
    Cancelled,
}

fn joined(
    j: Result<Result<serde_json::Value, Failure>, tokio::task::JoinError>,
) -> Result<serde_json::Value, Failure> {
    match j {
        Ok(r) => r,
        Err(e) if e.is_panic() => Err(Failure::retryable("panic", panic_message(e.into_panic()))),
        Err(_) => Err(Failure::retryable("aborted", "the attempt was aborted")),
    }
}

/// Gives a task whose token was cancelled a moment to stop on its own, then aborts it at its
/// next await point. A task blocking its thread cannot be aborted; its result is ignored.
async fn stop(handle: &mut tokio::task::JoinHandle<Result<serde_json::Value, Failure>>) {
    if tokio::time::timeout(STOP_GRACE, &mut *handle)
        .await
        .is_err()
    {
        handle.abort();
    }
}

/// How long a cancelled task may take to notice before it is aborted.
const STOP_GRACE: Duration = Duration::from_millis(300);

/// Exponential backoff with jitter: about 1 s, 2 s, 4 s … capped at 5 min, each scaled by a
/// random factor in [0.5, 1.0) so a burst of failures does not retry in lockstep.
pub fn backoff(attempt: u32) -> chrono::Duration {
    let base = 1000u64.saturating_mul(1 << attempt.saturating_sub(1).min(20));
    let capped = base.min(300_000) as f64;
    let jittered = capped * rand::rng().random_range(0.5..1.0);
    chrono::Duration::milliseconds(jittered as i64)
}

fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        format!("task panicked: {s}")
    } else if let Some(s) = p.downcast_ref::<String>() {
        format!("task panicked: {s}")
    } else {
        "task panicked".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_exponentially_with_bounded_jitter() {
        for (attempt, lo, hi) in [
            (1, 500, 1000),
            (2, 1000, 2000),
            (4, 4000, 8000),
            (30, 150_000, 300_000),
        ] {
            for _ in 0..50 {
                let ms = backoff(attempt).num_milliseconds();
                assert!((lo..hi).contains(&ms), "attempt {attempt}: {ms} ms");
            }
        }
    }
}
