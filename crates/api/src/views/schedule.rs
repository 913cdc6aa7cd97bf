//! Schedules to the wire.

use errand_core::schedule::{Misfire, Schedule, ScheduleId};
use errand_wire as wire;

use super::IntoWire;

impl IntoWire for &ScheduleId {
    type Wire = wire::ScheduleId;
    fn into_wire(self) -> wire::ScheduleId {
        wire::ScheduleId::new(self.as_str())
    }
}

impl IntoWire for Misfire {
    type Wire = wire::Misfire;
    fn into_wire(self) -> wire::Misfire {
        match self {
            Misfire::RunOnce => wire::Misfire::RunOnce,
            Misfire::Skip => wire::Misfire::Skip,
        }
    }
}

impl IntoWire for &Schedule {
    type Wire = wire::Schedule;
    fn into_wire(self) -> wire::Schedule {
        let s = self;
        wire::Schedule {
            id: s.id.into_wire(),
            cron: s.cron.clone(),
            timezone: s.timezone.clone(),
            misfire: s.misfire.into_wire(),
            enabled: s.enabled,
            kind: s.kind.clone(),
            payload: s.payload.clone(),
            queue: s.queue.clone(),
            max_attempts: s.max_attempts,
            timeout_secs: s.timeout_secs,
            result_ttl_secs: s.result_ttl_secs,
            created_at: s.created_at,
            updated_at: s.updated_at,
            next_run_at: s.next_run_at,
            last_run_at: s.last_run_at,
            last_task_id: s.last_task_id.as_ref().map(|t| t.as_str().to_owned()),
            run_count: s.run_count,
        }
    }
}
