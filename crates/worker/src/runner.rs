//! Runs one claimed attempt and records how it ended: run first (to an [`Ended`]), then
//! decide ([`crate::outcome`], the retry policy, pure), then log and write.
//!
//! The apalis handler always succeeds from apalis's point of view: errand owns retries, so
//! every failure is recorded on errand's record and, if attempts remain, the task waits in
//! errand's `delayed` zset for its backoff and is queued again by upkeep.

use std::{sync::Arc, time::Duration};

use chrono::Utc;
use errand_core::{
    Settings, StoreError, TaskStore,
    shutdown::Shutdown,
    store::{AttemptEnd, Claimed, Outcome, ProgressReport},
    task::Progress,
    telemetry::{self, redis_call},
};
use errand_kinds::{Catalog, Failure, FailureKind, TaskContext};
use futures::FutureExt;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::{
    batch::{Coalescer, Pending},
    leases::{Running, RunningGuard},
    outcome::{Ended, Policy, jitter, outcome},
};

pub(crate) struct Runner {
    pub store: TaskStore,
    /// Told of every workflow step's recorded end, so the next step starts at once.
    pub advancer: errand_core::advance::Advancer,
    /// Progress reports and attempt ends, batched (see `batch.rs`).
    pub reports: Reports,
    pub ends: Ends,
    pub catalog: Catalog,
    pub settings: Settings,
    pub running: Running,
    /// Cancelled when the process is shutting down and the grace period ran out.
    pub abandon: CancellationToken,
    /// Where outcome writes are spawned, so shutdown joins them.
    pub shutdown: Shutdown,
}

/// Batched progress reports → recorded.
pub(crate) type Reports = Coalescer<ProgressReport, bool>;
/// Batched attempt ends → recorded.
pub(crate) type Ends = Coalescer<AttemptEnd, bool>;

impl Runner {
    /// The batching progress and finish paths.
    pub(crate) fn coalescers(store: &TaskStore, shutdown: &Shutdown) -> (Reports, Ends) {
        let s = store.clone();
        let reports = Coalescer::start(shutdown, move |reports: Vec<ProgressReport>| {
            let s = s.clone();
            async move { redis_call("progress", s.progress_many(&reports, Utc::now())).await }
                .boxed()
        });
        let s = store.clone();
        let ends = Coalescer::start(shutdown, move |ends: Vec<AttemptEnd>| {
            let s = s.clone();
            async move { redis_call("finish", s.finish_many(&ends, Utc::now())).await }.boxed()
        });
        (reports, ends)
    }

    /// Runs one claimed attempt: the claim was made by the fetch that delivered it.
    pub(crate) async fn run(self: Arc<Self>, claimed: Claimed) {
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
                let ended = Ended::Corrupt(reason.clone());
                if let Some(o) = outcome(ended, &claimed, self.policy(), Utc::now(), jitter()) {
                    self.end(&claimed, o, None).await;
                }
                return;
            }
            self.run_attempt(claimed).await;
        }
        .instrument(span)
        .await;
    }

    fn policy(&self) -> Policy {
        Policy {
            max_result_bytes: self.settings.tasks.max_result_bytes,
        }
    }

    /// Runs one attempt, then decides ([`outcome`]). Returns once the task's own work has
    /// ended, and records the outcome in the background: the apalis slot is free for the
    /// next job while the finish write is on its way (it goes out in the next group commit).
    /// The running guard, and with it the lease renewal and shutdown's wait, lasts until the
    /// outcome is recorded, so a crash before then still re-runs the task when its lease
    /// lapses.
    async fn run_attempt(self: &Arc<Self>, mut record: Claimed) {
        let id = record.id.clone();
        let cancel = self.abandon.child_token();
        let guard = self.running.enter(&record, cancel.clone());
        tracing::info!(kind = %record.kind, attempt = record.attempt, "attempt started");
        let metrics = crate::metrics::task(&record.queue, &record.kind);
        metrics.started(record.queued_at);
        let began = std::time::Instant::now();

        let (ended, progress) = self.attempt(&mut record, &cancel, &guard).await;
        let lost = ended == Ended::Lost;
        let Some(outcome) = outcome(ended, &record, self.policy(), Utc::now(), jitter()) else {
            if lost {
                // Another worker holds the task now: nothing this attempt says is recorded.
                tracing::warn!("claim lost; attempt stopped");
            } else {
                // Shutdown ran out of grace: leave the task running; its lease lapses and
                // another worker takes it over as a new attempt.
                tracing::warn!("attempt abandoned at shutdown");
            }
            return;
        };
        metrics.ran(&outcome, began.elapsed());
        match &outcome {
            Outcome::Succeeded(_) => tracing::info!("attempt succeeded"),
            Outcome::Retry { error, at, .. } => {
                tracing::warn!(kind = %error.kind, error = %error.message, next = %at, "attempt failed; will retry");
            }
            Outcome::Failed(error) | Outcome::Cancelled(error) => {
                tracing::warn!(kind = %error.kind, error = %error.message, "attempt failed; no retry");
            }
        }
        let this = self.clone();
        // JSON logs show the current span's fields only: the finish's lines keep the ids.
        let finish = tracing::info_span!("finish", outcome = outcome_name(&outcome), task_id = %id,
            trace_id = telemetry::current_trace_id().map(tracing::field::display));
        self.shutdown.spawn_work(
            async move {
                this.end(&record, outcome, progress).await;
                drop(guard);
            }
            .instrument(finish),
        );
    }

    /// Runs the task's code on its own tokio task, under its timeout and `cancel`, writing
    /// its progress meanwhile; stops it at once when `held` says the claim is no longer the
    /// task's (its cancel token fires then too). Returns how it ended and its last progress
    /// (JSON) when newer than what is on the record.
    async fn attempt(
        &self,
        record: &mut Claimed,
        cancel: &CancellationToken,
        held: &RunningGuard,
    ) -> (Ended, Option<String>) {
        let (id, attempt) = (record.id.clone(), record.attempt);
        let (tx, mut rx) = watch::channel::<Option<Progress>>(None);
        let ctx = TaskContext::new(id.clone(), attempt, tx, cancel.clone())
            .with_inputs(record.inputs.take());
        let payload = std::mem::replace(&mut record.payload, Ok(serde_json::Value::Null));
        let fut = self
            .catalog
            .run(&record.kind, ctx, payload.unwrap_or_default());
        let mut handle = tokio::spawn(fut.in_current_span());

        let limit = record.timeout_secs;
        let deadline = async {
            match limit {
                Some(l) => tokio::time::sleep(Duration::from_secs(l)).await,
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
        let race = loop {
            tokio::select! {
                j = &mut handle => break Race::Joined(j),
                _ = &mut deadline => break Race::TimedOut,
                _ = cancel.cancelled() => break Race::Cancelled,
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
                        token: record.token.clone(),
                        json: json.clone(),
                    });
                    report = Some((pending, json));
                }
            }
        };
        if held.is_lost() {
            // Stop at once: another worker may be running it now.
            handle.abort();
            return (Ended::Lost, None);
        }
        let ended = match race {
            Race::Joined(Ok(Ok(result))) => Ended::Returned(result),
            // The task noticed the cancel it was asked for.
            Race::Joined(Ok(Err(f))) if f.is(FailureKind::Cancelled) && cancel.is_cancelled() => {
                Ended::Cancelled(f.message)
            }
            Race::Joined(Ok(Err(f))) => Ended::Failed(f),
            Race::Joined(Err(e)) if e.is_panic() => Ended::Panicked(panic_message(e.into_panic())),
            Race::Joined(Err(_)) => Ended::Aborted,
            Race::TimedOut => {
                cancel.cancel();
                stop(&mut handle).await;
                Ended::TimedOut(limit.unwrap_or_default())
            }
            Race::Cancelled => {
                stop(&mut handle).await;
                Ended::Cancelled("cancelled by request".into())
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
            return (Ended::Abandoned, progress);
        }
        (ended, progress)
    }

    async fn end(&self, record: &Claimed, outcome: Outcome, progress: Option<String>) {
        let id = record.id.as_str();
        match self
            .retrying("finish", || {
                self.ends.call(AttemptEnd {
                    id: id.to_owned(),
                    queue: record.queue.clone(),
                    token: record.token.clone(),
                    attempt: record.attempt,
                    outcome: outcome.clone(),
                    progress: progress.clone(),
                })
            })
            .await
        {
            Some(false) => {
                tracing::info!("attempt no longer owned the task; its outcome was not recorded");
            }
            Some(true) => {
                crate::metrics::task(&record.queue, &record.kind).recorded(&outcome);
                if record.workflow.is_some() {
                    self.advancer.step_ended(&record.queue);
                }
            }
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

/// What the attempt's select saw first.
enum Race {
    Joined(Result<Result<serde_json::Value, Failure>, tokio::task::JoinError>),
    TimedOut,
    Cancelled,
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

fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        format!("task panicked: {s}")
    } else if let Some(s) = p.downcast_ref::<String>() {
        format!("task panicked: {s}")
    } else {
        "task panicked".into()
    }
}
