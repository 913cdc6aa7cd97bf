use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Callback, TaskId, TaskState, WebhookStatus};

/// How far a running task has got, as reported by the task itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// 0 to 100.
    pub percent: u8,
    /// What the task says it is doing, if it says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Why the last attempt failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskError {
    /// A stable, machine-readable category: `timeout`, `panic`, `worker_lost`,
    /// `invalid_payload`, or one a task kind defines.
    pub kind: String,
    /// For people: what went wrong.
    pub message: String,
}

/// A task as errand keeps it in Redis and serves it over the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskRecord {
    /// Client-chosen or generated; unique across queues.
    pub id: TaskId,
    /// The task kind's canonical name (see `GET /v1/kinds`).
    pub kind: String,
    /// The queue it waits in.
    pub queue: String,
    /// Where it is in its lifecycle (docs/task-lifecycle.md).
    pub state: TaskState,
    /// The validated input, as submitted.
    pub payload: Value,
    /// The latest progress report of the current (or last) attempt; null before the first.
    pub progress: Option<Progress>,
    /// The task's output once `succeeded` (its shape is the kind's result schema), else null.
    pub result: Option<Value>,
    /// The last failed attempt's error; null until an attempt fails.
    pub error: Option<TaskError>,
    /// 1-based number of the current (or last) attempt; 0 before the first starts.
    pub attempt: u32,
    /// Attempts it may have before it is `failed`.
    pub max_attempts: u32,
    /// Per-attempt time limit; null for none.
    pub timeout_secs: Option<u64>,
    /// How long the record stays readable once terminal.
    pub result_ttl_secs: u64,
    /// When it was accepted.
    pub created_at: DateTime<Utc>,
    /// When a delayed task is due; null when it was queued at once.
    pub scheduled_for: Option<DateTime<Utc>>,
    /// When the current (or last) attempt started; null before the first.
    pub started_at: Option<DateTime<Utc>>,
    /// When it became terminal; null until then.
    pub finished_at: Option<DateTime<Utc>>,
    /// When anything on the record last changed.
    pub updated_at: DateTime<Utc>,
    /// When a `retrying` task will be queued again; null in other states.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// The worker running, or last to run, this task; null before the first attempt.
    pub worker: Option<String>,
    /// True once a cancel was requested for a running task.
    #[serde(default)]
    pub cancel_requested: bool,
    /// The schedule that fired this task; null when a client submitted it (see `/v1/schedules`).
    #[serde(default)]
    pub schedule_id: Option<String>,
    /// Where errand POSTs a signed webhook when the task ends (docs/webhooks.md); null for none.
    #[serde(default)]
    pub callback: Option<Callback>,
    /// The latest webhook delivery; null until the task ends with an event its callback asked for.
    #[serde(default)]
    pub webhook: Option<WebhookStatus>,
    /// 1 to 9, higher first (docs/flow-control.md); 5 unless the submit gave one.
    #[serde(default = "default_priority")]
    pub priority: u8,
    /// The concurrency key: the queue's `per_key` limit caps its running tasks; null for none.
    #[serde(default)]
    pub concurrency_key: Option<String>,
    /// The workflow this task is a step of (docs/workflows.md); null for a task of its own.
    #[serde(default)]
    pub workflow: Option<String>,
    /// Its step's name in that workflow.
    #[serde(default)]
    pub step: Option<String>,
    /// The W3C `traceparent` of the submit's span when traces are on: the worker's attempt
    /// spans continue that trace. Internal (not served): a trace id is found in the logs.
    #[serde(skip)]
    pub traceparent: Option<String>,
}

/// A record read back from Redis did not have the shape errand writes. Only a bug or a
/// hand-edited key can cause it, so it is reported, never papered over.
#[derive(Debug, thiserror::Error)]
#[error("corrupt task record field `{field}`: {reason}")]
pub struct CorruptRecord {
    /// The field at fault.
    pub field: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

impl TaskRecord {
    /// Builds a record from the flat Redis hash the store scripts write.
    pub fn from_hash(mut h: HashMap<String, String>) -> Result<Self, CorruptRecord> {
        fn req(h: &mut HashMap<String, String>, f: &'static str) -> Result<String, CorruptRecord> {
            h.remove(f).ok_or(CorruptRecord {
                field: f,
                reason: "missing".into(),
            })
        }
        fn opt(h: &mut HashMap<String, String>, f: &str) -> Option<String> {
            h.remove(f).filter(|v| !v.is_empty())
        }
        fn bad(field: &'static str, e: impl std::fmt::Display) -> CorruptRecord {
            CorruptRecord {
                field,
                reason: e.to_string(),
            }
        }
        fn time(v: String, f: &'static str) -> Result<DateTime<Utc>, CorruptRecord> {
            DateTime::parse_from_rfc3339(&v)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|e| bad(f, e))
        }
        fn opt_time(
            h: &mut HashMap<String, String>,
            f: &'static str,
        ) -> Result<Option<DateTime<Utc>>, CorruptRecord> {
            opt(h, f).map(|v| time(v, f)).transpose()
        }
        fn opt_json<T: serde::de::DeserializeOwned>(
            h: &mut HashMap<String, String>,
            f: &'static str,
        ) -> Result<Option<T>, CorruptRecord> {
            opt(h, f)
                .map(|v| serde_json::from_str(&v).map_err(|e| bad(f, e)))
                .transpose()
        }
        fn num<T: std::str::FromStr>(v: String, f: &'static str) -> Result<T, CorruptRecord>
        where
            T::Err: std::fmt::Display,
        {
            v.parse().map_err(|e| bad(f, e))
        }

        Ok(TaskRecord {
            id: TaskId::parse(&req(&mut h, "id")?).map_err(|e| bad("id", e))?,
            kind: req(&mut h, "kind")?,
            queue: req(&mut h, "queue")?,
            state: req(&mut h, "state")?.parse().map_err(|e| bad("state", e))?,
            payload: serde_json::from_str(&req(&mut h, "payload")?)
                .map_err(|e| bad("payload", e))?,
            progress: opt_json(&mut h, "progress")?,
            result: opt_json(&mut h, "result")?,
            error: opt_json(&mut h, "error")?,
            attempt: num(req(&mut h, "attempt")?, "attempt")?,
            max_attempts: num(req(&mut h, "max_attempts")?, "max_attempts")?,
            timeout_secs: opt(&mut h, "timeout_secs")
                .map(|v| num(v, "timeout_secs"))
                .transpose()?,
            result_ttl_secs: num(req(&mut h, "result_ttl_secs")?, "result_ttl_secs")?,
            created_at: time(req(&mut h, "created_at")?, "created_at")?,
            scheduled_for: opt_time(&mut h, "scheduled_for")?,
            started_at: opt_time(&mut h, "started_at")?,
            finished_at: opt_time(&mut h, "finished_at")?,
            updated_at: time(req(&mut h, "updated_at")?, "updated_at")?,
            next_attempt_at: opt_time(&mut h, "next_attempt_at")?,
            worker: opt(&mut h, "worker"),
            cancel_requested: opt(&mut h, "cancel_requested").is_some_and(|v| v == "1"),
            schedule_id: opt(&mut h, "schedule_id"),
            callback: opt_json(&mut h, "callback")?,
            webhook: opt_json(&mut h, "webhook")?,
            priority: opt(&mut h, "priority")
                .map(|v| num(v, "priority"))
                .transpose()?
                .unwrap_or(super::DEFAULT_PRIORITY),
            concurrency_key: opt(&mut h, "concurrency_key"),
            workflow: opt(&mut h, "workflow"),
            step: opt(&mut h, "step"),
            traceparent: opt(&mut h, "traceparent"),
        })
    }
}

fn default_priority() -> u8 {
    super::DEFAULT_PRIORITY
}

/// RFC 3339 with millisecond precision, the one timestamp format in every record.
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minimal() -> HashMap<String, String> {
        [
            ("id", "t1"),
            ("kind", "sleep"),
            ("queue", "default"),
            ("state", "queued"),
            ("payload", r#"{"duration_secs":1}"#),
            ("attempt", "0"),
            ("max_attempts", "3"),
            ("result_ttl_secs", "60"),
            ("created_at", "2026-01-02T03:04:05.678Z"),
            ("updated_at", "2026-01-02T03:04:05.678Z"),
            ("progress", ""),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    #[test]
    fn parses_a_minimal_record_with_empty_optionals() {
        let r = TaskRecord::from_hash(minimal()).unwrap();
        assert_eq!(r.state, TaskState::Queued);
        assert_eq!(r.progress, None);
        assert_eq!(r.payload["duration_secs"], 1);
        assert!(!r.cancel_requested);
    }

    #[test]
    fn names_the_corrupt_field() {
        let mut h = minimal();
        h.insert("attempt".into(), "many".into());
        assert_eq!(TaskRecord::from_hash(h).unwrap_err().field, "attempt");
        let mut h = minimal();
        h.remove("kind");
        assert_eq!(TaskRecord::from_hash(h).unwrap_err().field, "kind");
    }
}
