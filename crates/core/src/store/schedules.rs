//! Schedules in Redis: a hash per schedule (`prefix:{~schedules}:s:<id>`), the firing zset
//! (`prefix:{~schedules}:due`: enabled id → the tick it waits for, ms) and an id index for listing
//! (`prefix:{~schedules}:ids`). Workers fire due ticks with a read (`schedule_due.lua`), a plan
//! made in Rust (cron arithmetic has no place in Lua), the tick's task created under an id
//! made of the schedule's and the tick's (so firing a tick twice creates one task), then a
//! compare-and-set that moves the schedule on (`schedule_fire.lua`). Every schedule key
//! shares one hash tag; the tasks live in their queues' slots.

use std::{collections::HashMap, sync::LazyLock, time::Duration};

use chrono::{DateTime, Utc};
use redis::Script;

use super::{
    StoreError, TaskStore,
    submit::{Creation, NewTask, new_record, record_fields},
};
use crate::{
    schedule::{self, CronSpec, NewSchedule, Schedule, ScheduleId},
    task::{TaskId, rfc3339},
};

macro_rules! schedule_script {
    ($file:literal) => {
        LazyLock::new(|| {
            Script::new(concat!(
                include_str!("lua/prelude.lua"),
                "\n",
                include_str!("lua/schedule_keys.lua"),
                "\n",
                include_str!(concat!("lua/", $file))
            ))
        })
    };
}

static CREATE: LazyLock<Script> = schedule_script!("schedule_create.lua");
static TOGGLE: LazyLock<Script> = schedule_script!("schedule_toggle.lua");
static LIST: LazyLock<Script> = schedule_script!("schedule_list.lua");
static DUE: LazyLock<Script> = schedule_script!("schedule_due.lua");
static FIRE: LazyLock<Script> = schedule_script!("schedule_fire.lua");

/// What creating a schedule did (creation is idempotent by id).
#[derive(Debug)]
pub enum ScheduleCreated {
    /// Stored as given.
    Created(Schedule),
    /// A schedule with this id already exists; it was left as it is.
    Existing(Schedule),
}

/// One page of `GET /v1/schedules`.
#[derive(Debug)]
pub struct SchedulePage {
    /// The page, by id.
    pub schedules: Vec<Schedule>,
    /// Pass back to get the next page; `None` on the last one.
    pub next: Option<ScheduleId>,
}

/// What one look at the due schedules did.
#[derive(Debug, Default)]
pub struct FireReport {
    /// Tasks submitted, one per tick fired.
    pub fired: Vec<TaskId>,
    /// Late ticks dropped under `misfire: skip`.
    pub skipped: Vec<ScheduleId>,
    /// Due ticks another worker fired first.
    pub lost: usize,
    /// Schedules whose stored definition could not be read: taken out of the firing zset
    /// (they stay listed) so they cannot fail every tick; with the reason.
    pub parked: Vec<(String, String)>,
    /// Some schedules were due: look again at once, the zset may hold more.
    pub found_due: bool,
    /// How long until the earliest tick still waiting, by Redis's clock.
    pub next_due_in: Option<Duration>,
}

impl TaskStore {
    /// Creates a schedule, first firing at `first` (`None`: disabled), or returns the one
    /// already stored under its id.
    pub async fn create_schedule(
        &self,
        s: &NewSchedule,
        first: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<ScheduleCreated, StoreError> {
        let now = chrono::SubsecRound::trunc_subsecs(now, 3);
        let mut inv = self.invoke(&CREATE, &self.layout.schedules());
        inv.arg(s.id.as_str())
            .arg(first.map_or(0, |t| t.timestamp_millis()));
        for (k, v) in s.fields(now) {
            inv.arg(k).arg(v);
        }
        let mut c = self.conn.clone();
        let reply: redis::Value = inv.invoke_async(&mut c).await?;
        Ok(match reply {
            redis::Value::Int(1) => ScheduleCreated::Created(corrupt(Schedule::from_hash(
                s.fields(now)
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v))
                    .collect(),
                first.map(|t| t.timestamp_millis() as f64),
            ))?),
            other => ScheduleCreated::Existing(schedule_of(other)?),
        })
    }

    /// The schedule `id`, if it exists.
    pub async fn schedule(&self, id: &ScheduleId) -> Result<Option<Schedule>, StoreError> {
        let mut c = self.conn.clone();
        let (h, score): (HashMap<String, String>, Option<f64>) = redis::pipe()
            .cmd("HGETALL")
            .arg(self.layout.schedule(id.as_str()))
            .cmd("ZSCORE")
            .arg(self.layout.schedules())
            .arg(id.as_str())
            .query_async(&mut c)
            .await?;
        if h.is_empty() {
            return Ok(None);
        }
        Ok(Some(corrupt(Schedule::from_hash(h, score))?))
    }

    /// Up to `limit` schedules in id order, starting after `after`.
    pub async fn list_schedules(
        &self,
        after: Option<&ScheduleId>,
        limit: usize,
    ) -> Result<SchedulePage, StoreError> {
        let limit = limit.max(1);
        let mut inv = self.invoke(&LIST, &self.layout.schedules());
        inv.arg(after.map(ScheduleId::as_str).unwrap_or_default())
            .arg(limit);
        let mut c = self.conn.clone();
        let reply: Vec<redis::Value> = inv.invoke_async(&mut c).await?;
        let mut it = reply.into_iter();
        let mut head = || {
            it.next()
                .ok_or_else(|| StoreError::Protocol("schedule_list: short reply".into()))
        };
        let examined: usize = redis::from_redis_value(head()?)?;
        let last: String = redis::from_redis_value(head()?)?;
        let schedules = it.map(schedule_of).collect::<Result<Vec<_>, _>>()?;
        // A full page may be followed by more, even if ids on it were deleted meanwhile.
        let next = if examined < limit {
            None
        } else {
            ScheduleId::parse(&last).ok()
        };
        Ok(SchedulePage { schedules, next })
    }

    /// Deletes a schedule; tasks it already fired are untouched. False when there was none.
    pub async fn delete_schedule(&self, id: &ScheduleId) -> Result<bool, StoreError> {
        let mut c = self.conn.clone();
        let (deleted, _, _): (u32, u32, u32) = redis::pipe()
            .atomic()
            .cmd("DEL")
            .arg(self.layout.schedule(id.as_str()))
            .cmd("ZREM")
            .arg(self.layout.schedules())
            .arg(id.as_str())
            .cmd("ZREM")
            .arg(self.layout.schedule_ids())
            .arg(id.as_str())
            .query_async(&mut c)
            .await?;
        Ok(deleted == 1)
    }

    /// Enables (from the next tick after `now`) or disables a schedule; `None` when there is
    /// no such schedule.
    pub async fn set_schedule_enabled(
        &self,
        id: &ScheduleId,
        enabled: bool,
        now: DateTime<Utc>,
    ) -> Result<Option<Schedule>, StoreError> {
        let now = chrono::SubsecRound::trunc_subsecs(now, 3);
        let next = if enabled {
            let Some(s) = self.schedule(id).await? else {
                return Ok(None);
            };
            CronSpec::parse(&s.cron, &s.timezone)
                .map_err(|e| StoreError::Protocol(format!("schedule `{id}`: {e}")))?
                .next_after(now)
        } else {
            None
        };
        let mut inv = self.invoke(&TOGGLE, &self.layout.schedules());
        inv.arg(id.as_str())
            .arg(if enabled { "1" } else { "0" })
            .arg(next.map_or(0, |t| t.timestamp_millis()))
            .arg(rfc3339(now));
        let mut c = self.conn.clone();
        let reply: redis::Value = inv.invoke_async(&mut c).await?;
        match reply {
            redis::Value::Int(0) => Ok(None),
            other => Ok(Some(schedule_of(other)?)),
        }
    }

    /// Fires up to `limit` due schedules (see the module doc). Safe to run from any number
    /// of processes at once: each tick is applied by exactly one of them.
    pub async fn fire_due_schedules(
        &self,
        limit: usize,
        grace: Duration,
    ) -> Result<FireReport, StoreError> {
        let mut inv = self.invoke(&DUE, &self.layout.schedules());
        inv.arg(limit.max(1));
        let mut c = self.conn.clone();
        let reply: Vec<redis::Value> = inv.invoke_async(&mut c).await?;
        let mut it = reply.into_iter();
        let mut next = || {
            it.next()
                .ok_or_else(|| StoreError::Protocol("schedule_due: short reply".into()))
        };
        let now_ms: i64 = redis::from_redis_value(next()?)?;
        let earliest: String = redis::from_redis_value(next()?)?;
        let now = DateTime::from_timestamp_millis(now_ms)
            .ok_or_else(|| StoreError::Protocol(format!("redis time {now_ms}")))?;
        let mut due = Vec::new();
        while let Ok(id) = next() {
            let id: String = redis::from_redis_value(id)?;
            let tick: String = redis::from_redis_value(next()?)?;
            let h: HashMap<String, String> = redis::from_redis_value(next()?)?;
            due.push((id, tick, h));
        }
        let mut report = FireReport {
            found_due: !due.is_empty(),
            next_due_in: earliest
                .parse::<f64>()
                .ok()
                .map(|ms| Duration::from_millis((ms as i64 - now_ms).max(0) as u64)),
            ..Default::default()
        };
        if due.is_empty() {
            return Ok(report);
        }

        let mut inv = self.invoke(&FIRE, &self.layout.schedules());
        inv.arg(rfc3339(now)).arg(due.len());
        let mut planned = Vec::with_capacity(due.len());
        let mut tasks = Vec::new();
        for (id, tick, h) in due {
            let created = h.get("created_at").cloned().unwrap_or_default();
            let (next, task) = match plan_tick(h, &tick, now, grace) {
                Ok(p) => (p.next, p.task),
                Err(reason) => {
                    report.parked.push((id.clone(), reason));
                    (None, None)
                }
            };
            inv.arg(&id)
                .arg(&tick)
                .arg(created)
                .arg(next.map_or(0, |t| t.timestamp_millis()));
            inv.arg(task.as_ref().map(|t| t.id.as_str()).unwrap_or_default());
            planned.push((id, task.as_ref().map(|t| t.id.clone())));
            if let Some(t) = task {
                tasks.push(Creation {
                    id: t.id.to_string(),
                    queue: t.queue,
                    due_ms: 0,
                    unique: None,
                    fields: t.fields,
                });
            }
        }
        // The ticks' tasks first (in their queues' slots), then the compare-and-set that
        // moves the schedules on: a crash between the two fires a tick again, into the same
        // task id, so its task is created once and never lost.
        self.create(tasks).await?;
        let outcomes: Vec<i64> = inv.invoke_async(&mut c).await?;
        for ((id, task), outcome) in planned.into_iter().zip(outcomes) {
            match (outcome, task) {
                (1, Some(task)) => report.fired.push(task),
                (2, None) => {
                    if let Ok(id) = ScheduleId::parse(&id)
                        && !report.parked.iter().any(|(p, _)| *p == id.as_str())
                    {
                        report.skipped.push(id);
                    }
                }
                (0, _) => report.lost += 1,
                (o, _) => {
                    return Err(StoreError::Protocol(format!(
                        "schedule_fire: outcome {o} for `{id}`"
                    )));
                }
            }
        }
        Ok(report)
    }
}

/// A due tick's fate: the schedule's next tick, and the task to submit unless the tick is
/// dropped.
struct PlannedTick {
    next: Option<DateTime<Utc>>,
    task: Option<TickTask>,
}

/// The task a tick submits, ready for `schedule_fire.lua`.
struct TickTask {
    id: TaskId,
    queue: String,
    fields: Vec<(&'static str, String)>,
}

/// Plans the due tick `tick` of the schedule stored as `h`. An `Err` is a stored definition
/// that cannot be read.
fn plan_tick(
    h: HashMap<String, String>,
    tick: &str,
    now: DateTime<Utc>,
    grace: Duration,
) -> Result<PlannedTick, String> {
    let tick_ms: f64 = tick.parse().map_err(|_| format!("tick `{tick}`"))?;
    let tick =
        DateTime::from_timestamp_millis(tick_ms as i64).ok_or_else(|| format!("tick `{tick}`"))?;
    let s = Schedule::from_hash(h, Some(tick_ms)).map_err(|e| e.to_string())?;
    let spec = CronSpec::parse(&s.cron, &s.timezone).map_err(|e| e.to_string())?;
    let plan = schedule::plan(&spec, s.misfire, tick, now, grace);
    if !plan.fire {
        return Ok(PlannedTick {
            next: plan.next,
            task: None,
        });
    }
    let t = s.template();
    let task = NewTask {
        id: s.id.task_id(tick),
        kind: t.kind,
        queue: t.queue,
        payload: t.payload,
        max_attempts: t.max_attempts,
        timeout_secs: t.timeout_secs,
        result_ttl_secs: t.result_ttl_secs,
        run_at: None,
        callback: None,
        // A fired task's attempts start traces of their own (docs/observability.md).
        traceparent: None,
        unique: None,
        flow: Default::default(),
        step: None,
    };
    let (id, queue) = (task.id.clone(), task.queue.clone());
    let mut fields = record_fields(&new_record(task, now));
    fields.push(("schedule_id", s.id.to_string()));
    Ok(PlannedTick {
        next: plan.next,
        task: Some(TickTask { id, queue, fields }),
    })
}

fn corrupt<T>(r: Result<T, schedule::CorruptSchedule>) -> Result<T, StoreError> {
    r.map_err(|e| StoreError::Protocol(e.to_string()))
}

/// A `schedule_reply` ({HGETALL, score or ''}) as a schedule.
fn schedule_of(v: redis::Value) -> Result<Schedule, StoreError> {
    let (h, score): (HashMap<String, String>, String) = redis::from_redis_value(v)?;
    if h.is_empty() {
        return Err(StoreError::Protocol("schedule reply without a hash".into()));
    }
    corrupt(Schedule::from_hash(h, score.parse().ok()))
}
