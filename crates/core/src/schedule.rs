//! Periodic schedules (errand's Celery Beat): a cron expression read in an IANA time zone,
//! and the task it submits at every tick. Schedules live in Redis (`store::schedules`);
//! worker processes fire them (`errand-worker`'s `schedules` module).
//!
//! This module holds what both binaries must agree on: the id rules, how an expression is
//! parsed, when it next fires, and what a worker does with a tick it finds late.

use std::{collections::HashMap, fmt, str::FromStr, time::Duration};

use chrono::{DateTime, Utc};
use croner::{
    Cron,
    parser::{CronParser, Seconds, Year},
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::task::{TaskId, rfc3339};

/// A schedule's id: client-chosen or server-made (UUIDv7). Shorter than a task id, and
/// without `:`, so the id of every task it fires, `sched:<id>:<tick ms>`, is a valid task id
/// that reads back unambiguously.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ScheduleId(String);

/// An id that is empty, too long, or has characters outside `[A-Za-z0-9._-]`.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("a schedule id is 1 to 100 characters from A-Z a-z 0-9 . _ -")]
pub struct InvalidScheduleId;

impl ScheduleId {
    /// Longest id, so `sched:<id>:<tick ms>` stays within a task id's bound.
    pub const MAX_LEN: usize = 100;

    /// A fresh server-made id (UUIDv7: sorts by creation time).
    pub fn generate() -> Self {
        Self(uuid::Uuid::now_v7().to_string())
    }

    /// Validates a client-chosen id.
    pub fn parse(s: &str) -> Result<Self, InvalidScheduleId> {
        let ok = !s.is_empty()
            && s.len() <= Self::MAX_LEN
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(InvalidScheduleId)
        }
    }

    /// The id as stored and served.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id of the task this schedule fires for the tick due at `tick`. Deterministic, so
    /// firing one tick twice could only ever find the first task (an idempotent submit).
    pub fn task_id(&self, tick: DateTime<Utc>) -> TaskId {
        TaskId::parse(&format!("sched:{}:{}", self.0, tick.timestamp_millis()))
            .expect("schedule ids and millisecond ticks make valid task ids")
    }
}

impl TryFrom<String> for ScheduleId {
    type Error = InvalidScheduleId;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<ScheduleId> for String {
    fn from(id: ScheduleId) -> Self {
        id.0
    }
}

impl fmt::Display for ScheduleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A cron expression that failed to parse or never matches, or an unknown time zone; `field`
/// names the request field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct InvalidSchedule {
    /// The request field at fault (`cron`, `timezone`).
    pub field: &'static str,
    /// What is wrong with it, for the 422's detail.
    pub message: String,
}

/// A parsed cron expression bound to its time zone.
#[derive(Debug, Clone)]
pub struct CronSpec {
    cron: Cron,
    tz: chrono_tz::Tz,
}

impl CronSpec {
    /// Parses `expr` (5 fields, or 6 with seconds first; `@daily`-style nicknames) for time
    /// zone `tz` (an IANA name such as `Europe/Paris`, or `UTC`). An expression that never
    /// matches (`0 0 30 2 *`) is refused here rather than parked forever.
    pub fn parse(expr: &str, tz: &str) -> Result<Self, InvalidSchedule> {
        let tz = chrono_tz::Tz::from_str(tz).map_err(|_| InvalidSchedule {
            field: "timezone",
            message: format!(
                "unknown time zone `{tz}`; use an IANA name such as Europe/Paris or UTC"
            ),
        })?;
        // Years are refused so the documented syntax stays cron's 5 or 6 fields.
        let cron = CronParser::builder()
            .seconds(Seconds::Optional)
            .year(Year::Disallowed)
            .build()
            .parse(expr)
            .map_err(|e| InvalidSchedule {
                field: "cron",
                message: e.to_string(),
            })?;
        let spec = Self { cron, tz };
        if spec.next_after(Utc::now()).is_none() {
            return Err(InvalidSchedule {
                field: "cron",
                message: format!("`{expr}` never matches a date"),
            });
        }
        Ok(spec)
    }

    /// The first tick strictly after `t`, read on the wall clock of the schedule's zone (so
    /// `0 9 * * *` in Europe/Paris is 09:00 Paris time in summer and in winter). Ticks are
    /// whole seconds; `None` when the expression never matches again.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron
            .find_next_occurrence(&t.with_timezone(&self.tz), false)
            .ok()
            .map(|n| n.with_timezone(&Utc))
    }
}

/// What a worker does with a tick it finds late (no worker ran while it was due).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Misfire {
    /// Run once for all the ticks missed, then continue from now (Celery Beat's behaviour).
    #[default]
    RunOnce,
    /// Drop a tick more than `schedules.misfire_grace_ms` late; continue from now.
    Skip,
}

impl Misfire {
    /// The name used in the API and in Redis.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RunOnce => "run_once",
            Self::Skip => "skip",
        }
    }
}

impl FromStr for Misfire {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "run_once" => Ok(Self::RunOnce),
            "skip" => Ok(Self::Skip),
            other => Err(format!("`{other}` is not run_once or skip")),
        }
    }
}

/// What a worker does with a schedule whose tick `due` it found at `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// Submit the task for tick `due`.
    pub fire: bool,
    /// The tick the schedule waits for next; `None` when it never matches again. Always
    /// after `now`, so however many ticks were missed, at most one run stands for them.
    pub next: Option<DateTime<Utc>>,
}

/// Decides what becomes of the tick due at `due`, found at `now`.
pub fn plan(
    spec: &CronSpec,
    misfire: Misfire,
    due: DateTime<Utc>,
    now: DateTime<Utc>,
    grace: Duration,
) -> Plan {
    let late = (now - due).to_std().unwrap_or_default();
    Plan {
        fire: misfire == Misfire::RunOnce || late <= grace,
        next: spec.next_after(now.max(due)),
    }
}

/// The task a schedule submits at every tick: everything a submit takes but the id and the
/// time, validated when the schedule was created.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScheduleTemplate {
    /// The kind's canonical name.
    pub kind: String,
    /// The kind's input, as validated when the schema was created (any JSON for `noop`).
    pub payload: Value,
    /// The queue each run waits in.
    pub queue: String,
    /// Attempts each run may have.
    pub max_attempts: u32,
    /// Per-attempt time limit of each run; `None`: none.
    pub timeout_secs: Option<u64>,
    /// How long each run's record stays readable once terminal.
    pub result_ttl_secs: u64,
}

/// A schedule as created: the definition, before any tick fired.
#[derive(Debug, Clone, PartialEq)]
pub struct NewSchedule {
    /// Client-chosen (creation is idempotent by id) or generated.
    pub id: ScheduleId,
    /// The cron expression, as validated (`CronSpec::parse`).
    pub cron: String,
    /// The IANA zone the expression is read in.
    pub timezone: String,
    /// What to do with ticks found late.
    pub misfire: Misfire,
    /// Created disabled: stored, but fires nothing until enabled.
    pub enabled: bool,
    /// What every tick submits.
    pub task: ScheduleTemplate,
}

/// A schedule as errand keeps it in Redis and serves it over the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    /// Its id; also the prefix of every task id it fires.
    pub id: ScheduleId,
    /// Cron expression: 5 fields (minute first) or 6 (second first).
    pub cron: String,
    /// IANA time zone the expression is read in.
    pub timezone: String,
    /// What to do with ticks found late.
    pub misfire: Misfire,
    /// A disabled schedule keeps its definition and fires nothing.
    pub enabled: bool,
    /// The kind each run has.
    pub kind: String,
    /// The kind's input, as validated when the schema was created (any JSON for `noop`).
    pub payload: Value,
    /// The queue each run waits in.
    pub queue: String,
    /// Attempts each run may have.
    pub max_attempts: u32,
    /// Per-attempt time limit of each run; null for none.
    pub timeout_secs: Option<u64>,
    /// How long each run's record stays readable once terminal.
    pub result_ttl_secs: u64,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When its definition or enabled flag last changed.
    pub updated_at: DateTime<Utc>,
    /// The tick it waits for; null while disabled.
    pub next_run_at: Option<DateTime<Utc>>,
    /// When it last fired a task; null before the first tick.
    pub last_run_at: Option<DateTime<Utc>>,
    /// The task it fired last: `sched:<schedule id>:<tick ms>`; null before the first tick.
    pub last_task_id: Option<TaskId>,
    /// Ticks fired since it was created.
    pub run_count: u64,
}

impl Schedule {
    /// The part a client defines, to tell a repeated create from a conflicting one.
    pub fn definition(&self) -> NewSchedule {
        NewSchedule {
            id: self.id.clone(),
            cron: self.cron.clone(),
            timezone: self.timezone.clone(),
            misfire: self.misfire,
            enabled: self.enabled,
            task: self.template(),
        }
    }

    /// What the next tick submits.
    pub fn template(&self) -> ScheduleTemplate {
        ScheduleTemplate {
            kind: self.kind.clone(),
            payload: self.payload.clone(),
            queue: self.queue.clone(),
            max_attempts: self.max_attempts,
            timeout_secs: self.timeout_secs,
            result_ttl_secs: self.result_ttl_secs,
        }
    }

    /// Builds a schedule from its Redis hash and its score in the firing zset.
    pub fn from_hash(
        mut h: HashMap<String, String>,
        next_ms: Option<f64>,
    ) -> Result<Self, CorruptSchedule> {
        fn req(
            h: &mut HashMap<String, String>,
            f: &'static str,
        ) -> Result<String, CorruptSchedule> {
            h.remove(f).ok_or(CorruptSchedule {
                field: f,
                reason: "missing".into(),
            })
        }
        fn opt(h: &mut HashMap<String, String>, f: &str) -> Option<String> {
            h.remove(f).filter(|v| !v.is_empty())
        }
        fn bad(field: &'static str, e: impl fmt::Display) -> CorruptSchedule {
            CorruptSchedule {
                field,
                reason: e.to_string(),
            }
        }
        fn time(v: String, f: &'static str) -> Result<DateTime<Utc>, CorruptSchedule> {
            DateTime::parse_from_rfc3339(&v)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|e| bad(f, e))
        }
        fn num<T: FromStr>(v: String, f: &'static str) -> Result<T, CorruptSchedule>
        where
            T::Err: fmt::Display,
        {
            v.parse().map_err(|e| bad(f, e))
        }
        Ok(Self {
            id: ScheduleId::parse(&req(&mut h, "id")?).map_err(|e| bad("id", e))?,
            cron: req(&mut h, "cron")?,
            timezone: req(&mut h, "timezone")?,
            misfire: req(&mut h, "misfire")?
                .parse()
                .map_err(|e| bad("misfire", e))?,
            enabled: req(&mut h, "enabled")? == "1",
            kind: req(&mut h, "kind")?,
            payload: serde_json::from_str(&req(&mut h, "payload")?)
                .map_err(|e| bad("payload", e))?,
            queue: req(&mut h, "queue")?,
            max_attempts: num(req(&mut h, "max_attempts")?, "max_attempts")?,
            timeout_secs: opt(&mut h, "timeout_secs")
                .map(|v| num(v, "timeout_secs"))
                .transpose()?,
            result_ttl_secs: num(req(&mut h, "result_ttl_secs")?, "result_ttl_secs")?,
            created_at: time(req(&mut h, "created_at")?, "created_at")?,
            updated_at: time(req(&mut h, "updated_at")?, "updated_at")?,
            next_run_at: next_ms
                .filter(|ms| ms.is_finite())
                .and_then(|ms| DateTime::from_timestamp_millis(ms as i64)),
            last_run_at: opt(&mut h, "last_run_at")
                .map(|v| time(v, "last_run_at"))
                .transpose()?,
            last_task_id: opt(&mut h, "last_task_id")
                .map(|v| TaskId::parse(&v).map_err(|e| bad("last_task_id", e)))
                .transpose()?,
            run_count: opt(&mut h, "run_count")
                .map(|v| num(v, "run_count"))
                .transpose()?
                .unwrap_or(0),
        })
    }
}

impl NewSchedule {
    /// The hash fields a new schedule is stored as (`Schedule::from_hash` reads them back).
    pub fn fields(&self, now: DateTime<Utc>) -> Vec<(&'static str, String)> {
        vec![
            ("id", self.id.to_string()),
            ("cron", self.cron.clone()),
            ("timezone", self.timezone.clone()),
            ("misfire", self.misfire.as_str().to_owned()),
            ("enabled", if self.enabled { "1" } else { "0" }.to_owned()),
            ("kind", self.task.kind.clone()),
            ("payload", self.task.payload.to_string()),
            ("queue", self.task.queue.clone()),
            ("max_attempts", self.task.max_attempts.to_string()),
            (
                "timeout_secs",
                self.task
                    .timeout_secs
                    .map(|t| t.to_string())
                    .unwrap_or_default(),
            ),
            ("result_ttl_secs", self.task.result_ttl_secs.to_string()),
            ("created_at", rfc3339(now)),
            ("updated_at", rfc3339(now)),
        ]
    }
}

/// A schedule hash without the shape errand writes: a bug or a hand-edited key.
#[derive(Debug, thiserror::Error)]
#[error("corrupt schedule field `{field}`: {reason}")]
pub struct CorruptSchedule {
    /// The hash field that does not decode.
    pub field: &'static str,
    /// Why.
    pub reason: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn five_and_six_field_expressions_parse_and_others_do_not() {
        let five = CronSpec::parse("*/15 * * * *", "UTC").unwrap();
        assert_eq!(
            five.next_after(at("2026-03-01T10:07:30.250Z")),
            Some(at("2026-03-01T10:15:00Z"))
        );
        let six = CronSpec::parse("*/1 * * * * *", "UTC").unwrap();
        assert_eq!(
            six.next_after(at("2026-03-01T10:07:30.250Z")),
            Some(at("2026-03-01T10:07:31Z")),
            "a sub-second instant rounds up to the next whole second"
        );
        assert_eq!(
            six.next_after(at("2026-03-01T10:07:31Z")),
            Some(at("2026-03-01T10:07:32Z")),
            "strictly after"
        );
        for bad in ["", "* * * *", "0 0 0 1 1 * 2030", "61 * * * *", "nonsense"] {
            assert_eq!(
                CronSpec::parse(bad, "UTC").unwrap_err().field,
                "cron",
                "{bad:?}"
            );
        }
        assert!(CronSpec::parse("@daily", "UTC").is_ok());
    }

    #[test]
    fn an_expression_that_never_matches_is_refused() {
        let e = CronSpec::parse("0 0 30 2 *", "UTC").unwrap_err();
        assert_eq!(e.field, "cron");
        assert!(e.message.contains("never matches"), "{e}");
    }

    #[test]
    fn the_expression_is_read_on_the_zones_wall_clock_across_dst() {
        let paris = CronSpec::parse("0 9 * * *", "Europe/Paris").unwrap();
        // CET (UTC+1) in winter, CEST (UTC+2) in summer.
        assert_eq!(
            paris.next_after(at("2026-01-10T00:00:00Z")),
            Some(at("2026-01-10T08:00:00Z"))
        );
        assert_eq!(
            paris.next_after(at("2026-07-10T00:00:00Z")),
            Some(at("2026-07-10T07:00:00Z"))
        );
        assert_eq!(
            CronSpec::parse("0 9 * * *", "Mars/Olympus")
                .unwrap_err()
                .field,
            "timezone"
        );
    }

    fn ticks(spec: &CronSpec, from: &str, n: usize) -> Vec<DateTime<Utc>> {
        std::iter::successors(spec.next_after(at(from)), |t| spec.next_after(*t))
            .take(n)
            .collect()
    }

    #[test]
    fn a_wall_clock_time_dst_skips_fires_when_the_gap_ends_and_a_repeated_one_fires_once() {
        let s = CronSpec::parse("30 2 * * *", "Europe/Paris").unwrap();
        // 2026-03-29 02:00 CET jumps to 03:00 CEST: 02:30 does not exist; 03:00 CEST = 01:00Z.
        assert_eq!(
            ticks(&s, "2026-03-28T00:00:00Z", 3),
            [
                at("2026-03-28T01:30:00Z"),
                at("2026-03-29T01:00:00Z"),
                at("2026-03-30T00:30:00Z")
            ]
        );
        // 2026-10-25 03:00 CEST falls back to 02:00 CET: 02:30 happens twice, fires once.
        assert_eq!(
            ticks(&s, "2026-10-24T00:00:00Z", 3),
            [
                at("2026-10-24T00:30:00Z"),
                at("2026-10-25T00:30:00Z"),
                at("2026-10-26T01:30:00Z")
            ]
        );
    }

    #[test]
    fn day_of_month_and_day_of_week_together_match_either() {
        let s = CronSpec::parse("0 0 13 * FRI", "UTC").unwrap();
        // April 2026: Fridays 3, 10, 17 and Monday the 13th.
        assert_eq!(
            ticks(&s, "2026-04-01T00:00:00Z", 4),
            [
                at("2026-04-03T00:00:00Z"),
                at("2026-04-10T00:00:00Z"),
                at("2026-04-13T00:00:00Z"),
                at("2026-04-17T00:00:00Z")
            ]
        );
    }

    #[test]
    fn a_late_tick_runs_once_and_the_schedule_continues_from_now() {
        let spec = CronSpec::parse("*/1 * * * * *", "UTC").unwrap();
        let due = at("2026-03-01T10:00:00Z");
        let now = at("2026-03-01T10:00:03.400Z");
        let grace = Duration::from_secs(1);
        assert_eq!(
            plan(&spec, Misfire::RunOnce, due, now, grace),
            Plan {
                fire: true,
                next: Some(at("2026-03-01T10:00:04Z"))
            },
            "one run stands for the 4 ticks missed"
        );
        assert_eq!(
            plan(&spec, Misfire::Skip, due, now, grace),
            Plan {
                fire: false,
                next: Some(at("2026-03-01T10:00:04Z"))
            }
        );
        let on_time = at("2026-03-01T10:00:00.180Z");
        for m in [Misfire::RunOnce, Misfire::Skip] {
            assert_eq!(
                plan(&spec, m, due, on_time, grace),
                Plan {
                    fire: true,
                    next: Some(at("2026-03-01T10:00:01Z"))
                }
            );
        }
    }

    #[test]
    fn a_tick_seen_before_it_is_due_moves_past_the_tick_itself() {
        // A worker whose clock runs behind Redis's: `now` can precede `due`.
        let spec = CronSpec::parse("*/1 * * * * *", "UTC").unwrap();
        let due = at("2026-03-01T10:00:05Z");
        let p = plan(
            &spec,
            Misfire::RunOnce,
            due,
            at("2026-03-01T10:00:04.990Z"),
            Duration::from_secs(1),
        );
        assert_eq!(p.next, Some(at("2026-03-01T10:00:06Z")));
    }

    #[test]
    fn schedule_ids_make_task_ids_and_refuse_colons() {
        let id = ScheduleId::parse("nightly-report.v2").unwrap();
        assert_eq!(
            id.task_id(at("2026-01-01T00:00:00Z")).as_str(),
            "sched:nightly-report.v2:1767225600000"
        );
        let longest = ScheduleId::parse(&"x".repeat(100)).unwrap();
        assert!(longest.task_id(at("2286-01-01T00:00:00Z")).as_str().len() <= TaskId::MAX_LEN);
        for bad in ["", "a:b", "a b", "é", &"x".repeat(101)] {
            assert_eq!(ScheduleId::parse(bad), Err(InvalidScheduleId), "{bad:?}");
        }
    }

    #[test]
    fn a_stored_schedule_reads_back() {
        let def = NewSchedule {
            id: ScheduleId::parse("s1").unwrap(),
            cron: "*/5 * * * *".into(),
            timezone: "UTC".into(),
            misfire: Misfire::Skip,
            enabled: true,
            task: ScheduleTemplate {
                kind: "noop".into(),
                payload: serde_json::json!({"a": 1}),
                queue: "default".into(),
                max_attempts: 3,
                timeout_secs: None,
                result_ttl_secs: 60,
            },
        };
        let h = def
            .fields(at("2026-03-01T10:00:00Z"))
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        let s = Schedule::from_hash(h, Some(1_772_359_500_000.0)).unwrap();
        assert_eq!(s.definition(), def);
        assert_eq!(s.next_run_at, Some(at("2026-03-01T10:05:00Z")));
        assert_eq!(s.run_count, 0);
        assert_eq!(s.last_task_id, None);
    }
}
