//! Submit: a record created and its task enqueued (or scheduled) in one script call, for
//! one task or a whole batch. Idempotent per id.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{StoreError, TaskStore, script::script};
use crate::task::{Callback, TaskId, TaskRecord, TaskState, rfc3339};

static SUBMIT: std::sync::LazyLock<redis::Script> = script!("submit.lua");
static CLAIM: std::sync::LazyLock<redis::Script> = script!("claim.lua");

/// A task as submitted, validated and with defaults applied.
#[derive(Debug, Clone)]
pub struct NewTask {
    /// Client-chosen (idempotency key) or generated.
    pub id: TaskId,
    /// The canonical kind name (aliases resolved).
    pub kind: String,
    /// The queue it waits in (its hash slot).
    pub queue: String,
    /// The kind's input, validated against its schema.
    pub payload: Value,
    /// Attempts before it is `failed`.
    pub max_attempts: u32,
    /// Per-attempt time limit; `None`: none.
    pub timeout_secs: Option<u64>,
    /// How long the record stays readable once terminal.
    pub result_ttl_secs: u64,
    /// Run no earlier than this; `None` means now.
    pub run_at: Option<DateTime<Utc>>,
    /// Validated at submit (`WebhookSettings::check_callback`).
    pub callback: Option<Callback>,
    /// The submit's W3C trace context, continued by the worker (`telemetry`).
    pub traceparent: Option<String>,
}

/// What a submit did.
#[derive(Debug)]
pub enum Submitted {
    /// A new task, queued or delayed.
    Created(TaskRecord),
    /// A task with this id already exists; nothing was enqueued.
    Existing(TaskRecord),
}

/// A record to create: what `create_task` in `lua/prelude.lua` takes.
pub(super) struct Creation {
    pub id: String,
    pub queue: String,
    /// Due ms; 0 = now.
    pub due_ms: i64,
    pub fields: Vec<(&'static str, String)>,
}

/// How long a cluster submit waits for the record of an id another submit claimed for
/// another queue before it takes the id over (that submit died between its two steps).
const CLAIM_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

impl TaskStore {
    /// Creates the record and enqueues it in one round trip, or returns the record already
    /// stored under that id (idempotent submit).
    pub async fn submit(&self, task: NewTask, now: DateTime<Utc>) -> Result<Submitted, StoreError> {
        self.submit_many(vec![task], now)
            .await?
            .pop()
            .ok_or_else(|| StoreError::Protocol("submit returned no record".into()))
    }

    /// Submits a batch (on a single Redis in one round trip, one script call); answers in
    /// the same order. An id given twice in one batch is created once; the second answer is
    /// `Existing`.
    pub async fn submit_many(
        &self,
        tasks: Vec<NewTask>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Submitted>, StoreError> {
        // Records keep millisecond timestamps; answer with exactly what is stored.
        let now = chrono::SubsecRound::trunc_subsecs(now, 3);
        let mut records = Vec::with_capacity(tasks.len());
        let mut items = Vec::with_capacity(tasks.len());
        for task in tasks {
            let record = new_record(task, now);
            items.push(Creation {
                id: record.id.to_string(),
                queue: record.queue.clone(),
                due_ms: record.scheduled_for.map_or(0, |t| t.timestamp_millis()),
                fields: record_fields(&record),
            });
            records.push(record);
        }
        let made = self.create(items).await?;
        records
            .into_iter()
            .zip(made)
            .map(|(record, existing)| match existing {
                None => Ok(Submitted::Created(record)),
                Some(h) => Ok(Submitted::Existing(TaskRecord::from_hash(h)?)),
            })
            .collect()
    }

    /// Creates records, answering per item `None` (created) or the record already stored
    /// under its id. One script call on a single Redis; on a cluster each id is first
    /// claimed in its pointer's slot (`claim.lua`), then the records are created with one
    /// call per queue.
    pub(super) async fn create(
        &self,
        items: Vec<Creation>,
    ) -> Result<Vec<Option<HashMap<String, String>>>, StoreError> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        if !self.is_cluster() {
            let all: Vec<usize> = (0..items.len()).collect();
            return self.create_in_slot(&items, &all).await;
        }
        let mut answers: Vec<Option<Option<HashMap<String, String>>>> = vec![None; items.len()];
        let mut queues: Vec<&str> = items.iter().map(|i| i.queue.as_str()).collect();
        queues.sort_unstable();
        queues.dedup();
        let mut c = self.conn.clone();
        redis::cmd("SADD")
            .arg(self.layout.queues())
            .arg(&queues)
            .query_async::<()>(&mut c)
            .await?;
        let owners =
            futures::future::try_join_all(items.iter().map(|i| self.claim(&i.id, &i.queue, "")))
                .await?;
        let mut mine: Vec<usize> = Vec::new();
        for (n, owner) in owners.into_iter().enumerate() {
            if owner == items[n].queue {
                mine.push(n);
                continue;
            }
            match self.taken_by(&items[n], &owner).await? {
                Some(h) => answers[n] = Some(Some(h)),
                None => mine.push(n),
            }
        }
        let mut by_queue: HashMap<&str, Vec<usize>> = HashMap::new();
        for n in mine {
            by_queue.entry(items[n].queue.as_str()).or_default().push(n);
        }
        let groups: Vec<Vec<usize>> = by_queue.into_values().collect();
        let made =
            futures::future::try_join_all(groups.iter().map(|g| self.create_in_slot(&items, g)))
                .await?;
        for (g, answers_g) in groups.iter().zip(made) {
            for (&n, a) in g.iter().zip(answers_g) {
                answers[n] = Some(a);
            }
        }
        answers
            .into_iter()
            .map(|a| {
                a.ok_or_else(|| StoreError::Protocol("create: an item went unanswered".into()))
            })
            .collect()
    }

    /// The record of an id a submit for another queue (`owner`) claimed first; `None` when
    /// that record never appears (the claimer died between its two steps) and the id was
    /// taken over for `item`'s queue.
    async fn taken_by(
        &self,
        item: &Creation,
        owner: &str,
    ) -> Result<Option<HashMap<String, String>>, StoreError> {
        let deadline = tokio::time::Instant::now() + CLAIM_GRACE;
        loop {
            let mut c = self.conn.clone();
            let h: HashMap<String, String> = redis::cmd("HGETALL")
                .arg(self.layout.record(owner, &item.id))
                .query_async(&mut c)
                .await?;
            if !h.is_empty() {
                return Ok(Some(h));
            }
            if tokio::time::Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let now_owner = self.claim(&item.id, &item.queue, owner).await?;
        if now_owner == item.queue {
            return Ok(None);
        }
        // Someone else took it over meanwhile: theirs is the record.
        Box::pin(self.taken_by(item, &now_owner)).await
    }

    /// `claim.lua` for one id: the queue that holds it afterwards.
    pub(super) async fn claim(&self, id: &str, queue: &str, expected: &str) -> Result<String, StoreError> {
        let mut inv = self.invoke(&CLAIM, &self.layout.pointer(id));
        inv.arg(id).arg(queue).arg(expected);
        let mut owners: Vec<String> = self.run(&inv).await?;
        owners
            .pop()
            .ok_or_else(|| StoreError::Protocol("claim: empty reply".into()))
    }

    /// `submit.lua` for `items[which]` (all of one queue on a cluster).
    async fn create_in_slot(
        &self,
        items: &[Creation],
        which: &[usize],
    ) -> Result<Vec<Option<HashMap<String, String>>>, StoreError> {
        let mut inv = self.invoke_in(&SUBMIT, &items[which[0]].queue);
        inv.arg(which.len());
        for &n in which {
            let item = &items[n];
            inv.arg(&item.id)
                .arg(&item.queue)
                .arg(item.due_ms)
                .arg(item.fields.len() * 2);
            for (k, v) in &item.fields {
                inv.arg(*k).arg(v);
            }
        }
        let reply: Vec<redis::Value> = self.run(&inv).await?;
        if reply.len() != which.len() {
            return Err(StoreError::Protocol(format!(
                "submit answered {} items for {} tasks",
                reply.len(),
                which.len()
            )));
        }
        reply
            .into_iter()
            .map(|item| match item {
                redis::Value::Int(1) => Ok(None),
                other => Ok(Some(redis::from_redis_value(other)?)),
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
        traceparent: task.traceparent,
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
    // Only when traces are on: a task without one costs no extra field.
    if let Some(tp) = &r.traceparent {
        fields.push(("traceparent", tp.clone()));
    }
    fields
}
