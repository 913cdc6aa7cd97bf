//! Submit: a record created and its task enqueued (or scheduled) in one script call, for
//! one task or a whole batch. Idempotent per id.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{StoreError, TaskStore, script::script};
use crate::task::{Callback, TaskId, TaskRecord, TaskState, rfc3339};

static SUBMIT: std::sync::LazyLock<redis::Script> = script!("submit.lua");

/// A task as submitted, validated and with defaults applied.
#[derive(Debug, Clone)]
pub struct NewTask {
    pub id: TaskId,
    pub kind: String,
    pub queue: String,
    pub payload: Value,
    pub max_attempts: u32,
    pub timeout_secs: Option<u64>,
    pub result_ttl_secs: u64,
    /// Run no earlier than this; `None` means now.
    pub run_at: Option<DateTime<Utc>>,
    /// Validated at submit (`WebhookSettings::check_callback`).
    pub callback: Option<Callback>,
}

#[derive(Debug)]
pub enum Submitted {
    Created(TaskRecord),
    /// A task with this id already exists; nothing was enqueued.
    Existing(TaskRecord),
}

impl TaskStore {
    /// Creates the record and enqueues it in one round trip, or returns the record already
    /// stored under that id (idempotent submit).
    pub async fn submit(&self, task: NewTask, now: DateTime<Utc>) -> Result<Submitted, StoreError> {
        self.submit_many(vec![task], now)
            .await?
            .pop()
            .ok_or_else(|| StoreError::Protocol("submit returned no record".into()))
    }

    /// Submits a batch in one round trip (one script call); answers in the same order.
    /// An id given twice in one batch is created once; the second answer is `Existing`.
    pub async fn submit_many(
        &self,
        tasks: Vec<NewTask>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Submitted>, StoreError> {
        // Records keep millisecond timestamps; answer with exactly what is stored.
        let now = chrono::SubsecRound::trunc_subsecs(now, 3);
        let mut inv = self.invoke(&SUBMIT);
        inv.arg(tasks.len());
        let mut records = Vec::with_capacity(tasks.len());
        for task in tasks {
            let record = new_record(task, now);
            let fields = record_fields(&record);
            inv.arg(record.id.as_str())
                .arg(&record.queue)
                .arg(record.scheduled_for.map_or(0, |t| t.timestamp_millis()))
                .arg(fields.len() * 2);
            for (k, v) in fields {
                inv.arg(k).arg(v);
            }
            records.push(record);
        }
        let reply: Vec<redis::Value> = self.run(&inv).await?;
        if reply.len() != records.len() {
            return Err(StoreError::Protocol(format!(
                "submit answered {} items for {} tasks",
                reply.len(),
                records.len()
            )));
        }
        records
            .into_iter()
            .zip(reply)
            .map(|(record, item)| match item {
                redis::Value::Int(1) => Ok(Submitted::Created(record)),
                other => Ok(Submitted::Existing(TaskRecord::from_hash(
                    redis::from_redis_value(other)?,
                )?)),
            })
            .collect()
    }
}

pub(super) fn new_record(task: NewTask, now: DateTime<Utc>) -> TaskRecord {
    let due = task
        .run_at
        .map(|t| chrono::SubsecRound::trunc_subsecs(t, 3))
        .filter(|t| *t > now);
    TaskRecord {
        id: task.id,
        kind: task.kind,
        queue: task.queue,
        state: if due.is_some() {
            TaskState::Scheduled
        } else {
            TaskState::Queued
        },
        payload: task.payload,
        progress: None,
        result: None,
        error: None,
        attempt: 0,
        max_attempts: task.max_attempts,
        timeout_secs: task.timeout_secs,
        result_ttl_secs: task.result_ttl_secs,
        created_at: now,
        scheduled_for: due,
        started_at: None,
        finished_at: None,
        updated_at: now,
        next_attempt_at: None,
        worker: None,
        cancel_requested: false,
        schedule_id: None,
        callback: task.callback,
        webhook: None,
    }
}

/// The hash fields a new record is written with (empty ones are left out of the read).
pub(super) fn record_fields(r: &TaskRecord) -> Vec<(&'static str, String)> {
    let opt_time = |t: Option<DateTime<Utc>>| t.map(rfc3339).unwrap_or_default();
    let mut fields = vec![
        ("id", r.id.to_string()),
        ("kind", r.kind.clone()),
        ("queue", r.queue.clone()),
        ("state", r.state.as_str().to_owned()),
        ("payload", r.payload.to_string()),
        ("attempt", r.attempt.to_string()),
        ("max_attempts", r.max_attempts.to_string()),
        (
            "timeout_secs",
            r.timeout_secs.map(|t| t.to_string()).unwrap_or_default(),
        ),
        ("result_ttl_secs", r.result_ttl_secs.to_string()),
        ("created_at", rfc3339(r.created_at)),
        ("scheduled_for", opt_time(r.scheduled_for)),
        ("updated_at", rfc3339(r.updated_at)),
    ];
    if let Some(cb) = &r.callback {
        fields.push((
            "callback",
            serde_json::to_string(cb).expect("a callback serializes"),
        ));
    }
    fields
}
