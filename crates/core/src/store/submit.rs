//! Submit: a record created and its task enqueued (or scheduled) in one script call, for
//! one task or a whole batch. Idempotent per id, and unique per key for a while.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{StoreError, TaskStore, script::script};
use crate::task::{Callback, TaskId, TaskRecord, TaskState, rfc3339};

static SUBMIT: std::sync::LazyLock<redis::Script> = script!("submit.lua");
static CLAIM: std::sync::LazyLock<redis::Script> = script!("claim.lua");
static CONFIRM: std::sync::LazyLock<redis::Script> = script!("confirm.lua");

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
    /// At most one task of this key in its queue for a while; `None`: no such limit.
    pub unique: Option<Unique>,
    /// Its priority and concurrency key.
    pub flow: Flow,
    /// The workflow step it runs; `None`: a task of its own.
    pub step: Option<StepOf>,
}

/// The workflow step a task runs (docs/workflows.md): its end is applied to the workflow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepOf {
    /// The workflow's id.
    pub workflow: String,
    /// The step's name in it.
    pub step: String,
    /// Its dependencies' ends by step name (a json object), what the task reads as inputs.
    pub inputs: String,
}

/// Where a task stands in its queue's flow control (docs/flow-control.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flow {
    /// 1 to 9, higher first ([`crate::task::bounds::PRIORITY`]).
    pub priority: u8,
    /// Capped by the queue's `per_key` running tasks; `[A-Za-z0-9._:-]`, 1 to 128.
    pub concurrency_key: Option<String>,
}

impl Default for Flow {
    fn default() -> Self {
        Self {
            priority: crate::task::DEFAULT_PRIORITY,
            concurrency_key: None,
        }
    }
}

/// A unique key and its window (`unique_key`, `unique_for_secs` at submit): while the task
/// that took the key lives and the window lasts, a submit with the same key in the same
/// queue answers that task and creates nothing (docs/flow-control.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unique {
    /// `[A-Za-z0-9._:-]`, 1 to 128 (what the caller names: a customer's refresh, a report).
    pub key: String,
    /// How long the key is held from the submit that took it.
    pub for_secs: u64,
}

/// What a submit did.
#[derive(Debug)]
pub enum Submitted {
    /// A new task, queued or delayed.
    Created(TaskRecord),
    /// A task with this id already exists; nothing was enqueued.
    Existing(TaskRecord),
    /// Another task holds the submit's unique key for its window: that task; nothing was
    /// enqueued.
    Duplicate(TaskRecord),
}

/// A record to create: what `create_task` in `lua/prelude.lua` takes.
pub(super) struct Creation {
    pub id: String,
    pub queue: String,
    /// Due ms; 0 = now.
    pub due_ms: i64,
    /// A unique key and its window in ms.
    pub unique: Option<(String, u64)>,
    pub fields: Vec<(&'static str, String)>,
}

/// How long a cluster submit waits for the record of an id another submit claimed for
/// another queue before it takes the id over (that submit died between its two steps).
const CLAIM_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// How long a cluster claim holds an id for its create before it lapses: far longer than a
/// create and its confirm take, short enough that a submit that died between its steps
/// leaves no pointer for good (docs/scaling.md).
const CLAIM_TTL: std::time::Duration = std::time::Duration::from_secs(3600);

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
            let unique = task
                .unique
                .as_ref()
                .map(|u| (u.key.clone(), u.for_secs.saturating_mul(1000)));
            let inputs = task.step.as_ref().map(|s| s.inputs.clone());
            let record = new_record(task, now);
            let mut fields = record_fields(&record);
            if let Some(inputs) = inputs {
                fields.push(("inputs", inputs));
            }
            items.push(Creation {
                id: record.id.to_string(),
                queue: record.queue.clone(),
                due_ms: record.scheduled_for.map_or(0, |t| t.timestamp_millis()),
                unique,
                fields,
            });
            records.push(record);
        }
        let made = self.create(items).await?;
        records
            .into_iter()
            .zip(made)
            .map(|(record, existing)| match existing {
                Answer::Created => Ok(Submitted::Created(record)),
                Answer::Existing(h) => Ok(Submitted::Existing(TaskRecord::from_hash(h)?)),
                Answer::Duplicate(h) => Ok(Submitted::Duplicate(TaskRecord::from_hash(h)?)),
            })
            .collect()
    }

    /// Creates records, answering per item: created, the record already stored under its
    /// id, or the record of the task holding its unique key. One script call on a single Redis; on a cluster each id is first
    /// claimed in its pointer's slot (`claim.lua`), then the records are created with one
    /// call per queue, then each new task's pointer is confirmed (`confirm.lua`).
    pub(super) async fn create(&self, items: Vec<Creation>) -> Result<Vec<Answer>, StoreError> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        if self.is_cluster() {
            return self.create_on_cluster(&items).await;
        }
        let all: Vec<(usize, String)> = (0..items.len()).map(|n| (n, String::new())).collect();
        self.create_in_slot(&items, &all)
            .await?
            .into_iter()
            .map(|m| match m {
                Made::Created(_) => Ok(Answer::Created),
                Made::Existing(_, h) => Ok(Answer::Existing(h)),
                Made::Duplicate(h) => Ok(Answer::Duplicate(h)),
                Made::Stale => Err(StoreError::Protocol(
                    "submit: a stale claim on one Redis".into(),
                )),
            })
            .collect()
    }

    /// The cluster's create (docs/scaling.md): register the queues and claim the ids, create
    /// per queue, then confirm the new pointers and register the queues again (a prune may
    /// have taken one out meanwhile). An id given twice in one batch is claimed and created
    /// once; its later items are answered with that task's record.
    async fn create_on_cluster(&self, items: &[Creation]) -> Result<Vec<Answer>, StoreError> {
        let mut firsts: HashMap<&str, usize> = HashMap::new();
        let mut repeats: Vec<(usize, usize)> = Vec::new();
        let mut lead: Vec<usize> = Vec::new();
        for (n, item) in items.iter().enumerate() {
            match firsts.entry(item.id.as_str()) {
                std::collections::hash_map::Entry::Occupied(e) => repeats.push((n, *e.get())),
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert(n);
                    lead.push(n);
                }
            }
        }
        let mut answers: Vec<Option<Answer>> = vec![None; items.len()];
        // A unique key already held is answered before any id is claimed, so a stream of
        // duplicates leaves no claims behind (one racing a create still may: its claim
        // lapses with its TTL). The create checks again in the queue's slot, atomically.
        let held =
            futures::future::try_join_all(lead.iter().map(|&n| self.unique_holder(&items[n])))
                .await?;
        lead = lead
            .into_iter()
            .zip(held)
            .filter_map(|(n, h)| match h {
                Some(h) => {
                    answers[n] = Some(Answer::Duplicate(h));
                    None
                }
                None => Some(n),
            })
            .collect();
        let mut queues: Vec<&str> = lead.iter().map(|&n| items[n].queue.as_str()).collect();
        queues.sort_unstable();
        queues.dedup();
        let (_, owners) = futures::future::try_join(
            self.register(&queues),
            futures::future::try_join_all(
                lead.iter()
                    .map(|&n| self.claim(&items[n].id, &items[n].queue, "")),
            ),
        )
        .await?;
        let mut pending: Vec<(usize, String)> = Vec::new();
        for (&n, (owner, seen)) in lead.iter().zip(owners) {
            match self.settle_claim(&items[n], owner, seen).await? {
                Claimed::Ours(expect) => pending.push((n, expect)),
                Claimed::Taken(h) => answers[n] = Some(Answer::Existing(h)),
            }
        }
        let mut confirms: Vec<(usize, i64)> = Vec::new();
        // A create whose claim found the pointer of a task upkeep is expiring frees that
        // pointer itself and claims again; twice is already a race lost twice in a row.
        for _ in 0..3 {
            if pending.is_empty() {
                break;
            }
            let mut by_queue: HashMap<&str, Vec<(usize, String)>> = HashMap::new();
            for (n, expect) in pending.drain(..) {
                by_queue
                    .entry(items[n].queue.as_str())
                    .or_default()
                    .push((n, expect));
            }
            let groups: Vec<Vec<(usize, String)>> = by_queue.into_values().collect();
            let made =
                futures::future::try_join_all(groups.iter().map(|g| self.create_in_slot(items, g)))
                    .await?;
            for (g, made_g) in groups.into_iter().zip(made) {
                for ((n, expect), m) in g.into_iter().zip(made_g) {
                    match m {
                        Made::Created(created) => {
                            answers[n] = Some(Answer::Created);
                            confirms.push((n, created));
                        }
                        Made::Duplicate(h) => answers[n] = Some(Answer::Duplicate(h)),
                        Made::Existing(created, h) => {
                            answers[n] = Some(Answer::Existing(h));
                            // A pointer already confirmed for this task needs nothing more.
                            if let Some(c) = created.filter(|c| expect != c.to_string()) {
                                confirms.push((n, c));
                            }
                        }
                        Made::Stale => {
                            let item = &items[n];
                            let fence = expect.parse::<i64>().unwrap_or(0) + 1;
                            self.free_pointer(&item.id, &item.queue, fence).await?;
                            let (owner, seen) = self.claim(&item.id, &item.queue, "").await?;
                            match self.settle_claim(item, owner, seen).await? {
                                Claimed::Ours(expect) => pending.push((n, expect)),
                                Claimed::Taken(h) => answers[n] = Some(Answer::Existing(h)),
                            }
                        }
                    }
                }
            }
        }
        if !pending.is_empty() {
            return Err(StoreError::Protocol(
                "create: the id's expiry kept racing its create".into(),
            ));
        }
        futures::future::try_join(
            self.register(&queues),
            futures::future::try_join_all(
                confirms
                    .iter()
                    .map(|&(n, c)| self.confirm(&items[n].id, &items[n].queue, c)),
            ),
        )
        .await?;
        for (n, first) in repeats {
            answers[n] = Some(match &answers[first] {
                Some(Answer::Existing(h)) => Answer::Existing(h.clone()),
                Some(Answer::Duplicate(h)) => Answer::Duplicate(h.clone()),
                _ => Answer::Existing(
                    self.record_hash(&items[first].queue, &items[first].id)
                        .await?,
                ),
            });
        }
        answers
            .into_iter()
            .map(|a| {
                a.ok_or_else(|| StoreError::Protocol("create: an item went unanswered".into()))
            })
            .collect()
    }

    /// What a claim that named `owner` means for `item`: the id is ours to create (with the
    /// created ms of this queue's task the pointer names, '' for none), or another queue's
    /// task holds it.
    async fn settle_claim(
        &self,
        item: &Creation,
        owner: String,
        seen: String,
    ) -> Result<Claimed, StoreError> {
        if owner == item.queue {
            return Ok(Claimed::Ours(created_of(&seen).unwrap_or_default()));
        }
        self.taken_by(item, &owner, &seen).await
    }

    /// The record of an id whose pointer (`seen`) names another queue (`owner`). A confirmed
    /// pointer's task was created, so a missing record expired and the id is taken over at
    /// once; a bare one may be a claim whose create is still coming, so that record is waited
    /// for (`CLAIM_GRACE`) before the id is taken over (its claimer died between its steps).
    async fn taken_by(
        &self,
        item: &Creation,
        owner: &str,
        seen: &str,
    ) -> Result<Claimed, StoreError> {
        let confirmed = created_of(seen).is_some();
        let deadline = tokio::time::Instant::now() + CLAIM_GRACE;
        loop {
            let h = self.record_hash(owner, &item.id).await?;
            if !h.is_empty() {
                return Ok(Claimed::Taken(h));
            }
            if confirmed || tokio::time::Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let (now_owner, now_seen) = self.claim(&item.id, &item.queue, seen).await?;
        // Taken over, or someone else's meanwhile.
        Box::pin(self.settle_claim(item, now_owner, now_seen)).await
    }

    /// The record of the live task holding `item`'s unique key, if another one does.
    async fn unique_holder(
        &self,
        item: &Creation,
    ) -> Result<Option<HashMap<String, String>>, StoreError> {
        let Some((key, _)) = &item.unique else {
            return Ok(None);
        };
        let mut c = self.conn.clone();
        // Both keys are in the queue's slot: one round trip. An id already created in the
        // queue is the create's to answer (ids come first).
        let (own, holder): (i64, Option<String>) = redis::pipe()
            .cmd("EXISTS")
            .arg(self.layout.record(&item.queue, &item.id))
            .cmd("GET")
            .arg(self.layout.unique(&item.queue, key))
            .query_async(&mut c)
            .await?;
        if own == 1 {
            return Ok(None);
        }
        match holder {
            Some(h) => {
                let rec = self.record_hash(&item.queue, &h).await?;
                Ok((!rec.is_empty()).then_some(rec))
            }
            None => Ok(None),
        }
    }

    async fn record_hash(
        &self,
        queue: &str,
        id: &str,
    ) -> Result<HashMap<String, String>, StoreError> {
        let mut c = self.conn.clone();
        Ok(redis::cmd("HGETALL")
            .arg(self.layout.record(queue, id))
            .query_async(&mut c)
            .await?)
    }

    /// Adds `queues` to the queue set (a cluster's: the set lives in its own slot).
    pub(super) async fn register(&self, queues: &[&str]) -> Result<(), StoreError> {
        if queues.is_empty() {
            return Ok(()); // every item was answered before its create (a duplicate)
        }
        let mut c = self.conn.clone();
        redis::cmd("SADD")
            .arg(self.layout.queues())
            .arg(queues)
            .query_async::<()>(&mut c)
            .await?;
        Ok(())
    }

    /// `claim.lua` for one id: the queue that holds it afterwards, and its pointer as the
    /// claim found it ('' for none).
    pub(super) async fn claim(
        &self,
        id: &str,
        queue: &str,
        expected: &str,
    ) -> Result<(String, String), StoreError> {
        let mut inv = self.invoke(&CLAIM, &self.layout.pointer(id));
        inv.arg(CLAIM_TTL.as_millis() as u64)
            .arg(id)
            .arg(queue)
            .arg(expected);
        let mut owners: Vec<(String, String)> = self.run(&inv).await?;
        owners
            .pop()
            .ok_or_else(|| StoreError::Protocol("claim: empty reply".into()))
    }

    /// `confirm.lua`: the pointer of the task `queue` created at `created` ms, for good.
    async fn confirm(&self, id: &str, queue: &str, created: i64) -> Result<(), StoreError> {
        let mut inv = self.invoke(&CONFIRM, &self.layout.pointer(id));
        inv.arg(id).arg(queue).arg(created);
        let named: i64 = self.run(&inv).await?;
        if named == 0 {
            tracing::warn!(
                task_id = id,
                queue,
                "another queue took the id over during its create"
            );
        }
        Ok(())
    }

    /// `submit.lua` for `items[which]` (all of one queue on a cluster), each with what its
    /// claim found (`create_task`'s `expect`).
    async fn create_in_slot(
        &self,
        items: &[Creation],
        which: &[(usize, String)],
    ) -> Result<Vec<Made>, StoreError> {
        let mut inv = self.invoke_in(&SUBMIT, &items[which[0].0].queue);
        inv.arg(which.len());
        for (n, expect) in which {
            let item = &items[*n];
            let (ukey, window) = item
                .unique
                .as_ref()
                .map_or(("", 0), |(k, ms)| (k.as_str(), *ms));
            inv.arg(&item.id)
                .arg(&item.queue)
                .arg(item.due_ms)
                .arg(expect)
                .arg(ukey)
                .arg(window.max(1))
                .arg(item.fields.len() * 2);
            for (k, v) in &item.fields {
                inv.arg(*k).arg(v);
            }
        }
        let reply: Vec<Vec<redis::Value>> = self.run(&inv).await?;
        if reply.len() != which.len() {
            return Err(StoreError::Protocol(format!(
                "submit answered {} items for {} tasks",
                reply.len(),
                which.len()
            )));
        }
        reply.into_iter().map(Made::decode).collect()
    }
}

/// What `submit.lua` did with one task.
enum Made {
    /// Created, at this ms (its queue's slot's clock: the pointer's confirm names it).
    Created(i64),
    /// The id's task exists (created at this ms, when its index says), with this record.
    Existing(Option<i64>, HashMap<String, String>),
    /// The pointer the claim found names a task upkeep is expiring (`create_task`).
    Stale,
    /// Another live task holds the unique key: its record.
    Duplicate(HashMap<String, String>),
}

/// What a create answers per item.
#[derive(Clone)]
pub(super) enum Answer {
    Created,
    /// The id's task already exists: its record.
    Existing(HashMap<String, String>),
    /// Another task holds the unique key: its record.
    Duplicate(HashMap<String, String>),
}

impl Made {
    fn decode(item: Vec<redis::Value>) -> Result<Self, StoreError> {
        let mut it = item.into_iter();
        let bad = || StoreError::Protocol("submit: malformed reply".into());
        let tag: i64 = redis::from_redis_value(it.next().ok_or_else(bad)?)?;
        Ok(match tag {
            1 => Made::Created(redis::from_redis_value(it.next().ok_or_else(bad)?)?),
            0 => {
                let score: String = redis::from_redis_value(it.next().ok_or_else(bad)?)?;
                let h = redis::from_redis_value(it.next().ok_or_else(bad)?)?;
                Made::Existing(score.parse::<f64>().ok().map(|s| s as i64), h)
            }
            2 => Made::Stale,
            3 => {
                let _score: redis::Value = it.next().ok_or_else(bad)?;
                Made::Duplicate(redis::from_redis_value(it.next().ok_or_else(bad)?)?)
            }
            _ => return Err(bad()),
        })
    }
}

/// What a claim left the create to do.
enum Claimed {
    /// The id is this queue's to create; the created ms of this queue's task its pointer
    /// named ('' = none).
    Ours(String),
    /// Another queue's task holds it: its record.
    Taken(HashMap<String, String>),
}

/// The created ms a confirmed pointer (`<queue>@<ms>`) carries.
fn created_of(pointer: &str) -> Option<String> {
    let (_, c) = pointer.rsplit_once('@')?;
    c.parse::<u64>().is_ok().then(|| c.to_owned())
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
        priority: task.flow.priority,
        concurrency_key: task.flow.concurrency_key,
        workflow: task.step.as_ref().map(|s| s.workflow.clone()),
        step: task.step.map(|s| s.step),
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
    // Only when set: a task of the default priority and no key costs no extra field.
    if r.priority != crate::task::DEFAULT_PRIORITY {
        fields.push(("priority", r.priority.to_string()));
    }
    if let Some(k) = &r.concurrency_key {
        fields.push(("concurrency_key", k.clone()));
    }
    if let (Some(w), Some(st)) = (&r.workflow, &r.step) {
        fields.push(("workflow", w.clone()));
        fields.push(("step", st.clone()));
    }
    // Only when traces are on: a task without one costs no extra field.
    if let Some(tp) = &r.traceparent {
        fields.push(("traceparent", tp.clone()));
    }
    fields
}
