//! The scheduler: the loop that fires due periodic schedules. errand's Celery Beat, run by
//! every worker process rather than by one beat process that would have to be kept single
//! and alive. (Schedules themselves: `errand_core::schedule`; their store operations:
//! `errand_core::store::schedules`.)
//!
//! Each process looks for due ticks at the earliest tick it knows of, and at least every
//! `schedules.poll_ms` (a schedule created meanwhile may be due sooner). Any number of
//! processes may find the same tick due: the store applies it with a compare-and-set on
//! the schedule's score, in the same atomic step that creates the task, so exactly one of
//! them fires it (see `errand_core::store::schedules`).

use std::time::Duration;

use errand_core::{TaskStore, settings::ScheduleSettings, telemetry::redis_call};
use tokio_util::sync::CancellationToken;

/// Schedules read per look; more due at once are fired on the next look, straight away.
const BATCH: usize = 100;

pub(crate) async fn run(store: TaskStore, settings: ScheduleSettings, stop: CancellationToken) {
    if !settings.fire {
        tracing::info!("schedules.fire is off: this worker fires no schedules");
        return;
    }
    let poll = settings.poll();
    loop {
        // A look cut short by the stop is one atomic script per schedule: a tick it fired is
        // recorded with its task, one it did not is fired by the next process to look.
        let looked = tokio::select! {
            r = redis_call(
                "fire_schedules",
                store.fire_due_schedules(BATCH, settings.misfire_grace()),
            ) => r,
            () = stop.cancelled() => return,
        };
        let pause = match looked {
            Ok(report) => {
                if !report.fired.is_empty() {
                    crate::metrics::schedules_fired(report.fired.len());
                }
                for task in &report.fired {
                    tracing::info!(task_id = %task, "schedule fired");
                }
                for id in &report.skipped {
                    tracing::info!(schedule_id = %id, "late tick dropped (misfire: skip)");
                }
                for (id, reason) in &report.parked {
                    tracing::error!(schedule_id = %id, %reason, "schedule unreadable; it will not fire until recreated");
                }
                if report.found_due {
                    Duration::ZERO
                } else {
                    report.next_due_in.map_or(poll, |d| d.min(poll))
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "looking for due schedules failed");
                poll
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = stop.cancelled() => return,
        }
    }
}
