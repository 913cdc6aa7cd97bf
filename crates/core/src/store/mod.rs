//! The Redis task store: errand's records, their guarded transitions, and the hand-off of
//! jobs to apalis-redis. Every transition is one Lua script (one round trip, atomic) that
//! checks the state it leaves.

mod connect;
mod error;
mod layout;
mod pubsub;
mod schedules;

use std::{collections::HashMap, sync::LazyLock, time::Duration};

use chrono::{DateTime, Utc};
use redis::{Script, aio::ConnectionManager};
use serde_json::Value;

pub use connect::connect;
pub use error::StoreError;
pub use layout::Layout;
pub use pubsub::listen;
pub use schedules::{FireReport, ScheduleCreated, SchedulePage};

use crate::task::{
    Progress, TaskError, TaskId, TaskRecord, TaskState,
    record::{CorruptRecord, rfc3339},
};

macro_rules! script {
    ($file:literal) => {
        LazyLock::new(|| {
            Script::new(concat!(
                include_str!("lua/prelude.lua"),
                "\n",
                include_str!(concat!("lua/", $file))
            ))
        })
    };
}

static SUBMIT: LazyLock<Script> = script!("submit.lua");
static START: LazyLock<Script> = script!("start.lua");
static PROGRESS: LazyLock<Script> = script!("progress.lua");
static FINISH: LazyLock<Script> = script!("finish.lua");
static RECOVER: LazyLock<Script> = script!("recover.lua");
static JANITOR: LazyLock<Script> = script!("janitor.lua");
static CANCEL: LazyLock<Script> = script!("cancel.lua");
static RETRY: LazyLock<Script> = script!("retry.lua");
static RENEW: LazyLock<Script> = script!("renew.lua");
static EXPIRE: LazyLock<Script> = script!("expire.lua");
static LIST: LazyLock<Script> = script!("list.lua");
static QUEUES: LazyLock<Script> = script!("queues.lua");

/// How many expired ids are remembered, so reading one says "expired" rather than "unknown".
const TOMBSTONES: usize = 10_000;

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
}

#[derive(Debug)]
pub enum Submitted {
    Created(TaskRecord),
    /// A task with this id already exists; nothing was enqueued.
    Existing(TaskRecord),
}

/// What a worker needs of a task it claimed: the claim returns this much and no more (a
/// whole record per task made the claim reply, and its parsing, the largest part of it).
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: String,
    pub kind: String,
    pub payload: Value,
    /// The attempt this claim started (1 for the first).
    pub attempt: u32,
    pub max_attempts: u32,
    pub timeout_secs: Option<u64>,
}

/// What a worker may do with a job it received.
#[derive(Debug)]
pub enum Claim {
    /// Run it: the record is now `running` under this worker for the returned attempt.
    Run(Box<Claimed>),
    /// The job was superseded (the task was re-queued as another job): drop it.
    Stale,
    /// Another worker's lease on this task is alive: drop it; that worker will finish it.
    Busy,
    /// No such record (expired or never existed).
    Gone,
    /// The task is in a state that does not run (terminal, scheduled, cancelled…).
    Skip(TaskState),
    /// The previous runner died and no attempts are left: the task was failed.
    Exhausted,
}

/// How an attempt ended.
#[derive(Debug, Clone)]
pub enum Outcome {
    Succeeded(Value),
    Failed(TaskError),
    Retry { error: TaskError, at: DateTime<Utc> },
    Cancelled(TaskError),
}

/// Which zset `recover` drains.
#[derive(Debug, Clone, Copy)]
pub enum Recover {
    /// Scheduled and retrying tasks that are due.
    Due,
    /// Running tasks whose lease lapsed.
    LapsedLeases,
}

#[derive(Clone)]
pub struct TaskStore {
    conn: ConnectionManager,
    layout: Layout,
}

impl TaskStore {
    pub fn new(conn: ConnectionManager, layout: Layout) -> Self {
        Self { conn, layout }
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// A clone of the shared multiplexed connection.
    pub fn connection(&self) -> ConnectionManager {
        self.conn.clone()
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        let mut c = self.conn.clone();
        let _: String = redis::cmd("PING").query_async(&mut c).await?;
        Ok(())
    }

    fn invoke<'a>(&self, script: &'a Script) -> redis::ScriptInvocation<'a> {
        let mut inv = script.prepare_invoke();
        for a in self.layout.script_head() {
            inv.arg(a);
        }
        inv
    }

    /// Creates the record and enqueues its job in one round trip, or returns the record
    /// already stored under that id (idempotent submit).
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
        inv.arg(now.timestamp_millis()).arg(tasks.len());
        let mut records = Vec::with_capacity(tasks.len());
        for task in tasks {
            let record = new_record(task, now);
            let job = new_job_id();
            let fields = record_fields(&record, &job);
            inv.arg(record.id.as_str())
                .arg(&job)
                .arg(&record.queue)
                .arg(record.scheduled_for.map_or(0, |t| t.timestamp_millis()))
                .arg(fields.len() * 2);
            for (k, v) in fields {
                inv.arg(k).arg(v);
            }
            records.push(record);
        }
        let mut c = self.conn.clone();
        let reply: Vec<redis::Value> = inv.invoke_async(&mut c).await?;
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

    pub async fn get(&self, id: &TaskId) -> Result<Option<TaskRecord>, StoreError> {
        let mut c = self.conn.clone();
        let h: HashMap<String, String> = redis::cmd("HGETALL")
            .arg(self.layout.record(id.as_str()))
            .query_async(&mut c)
            .await?;
        if h.is_empty() {
            return Ok(None);
        }
        Ok(Some(TaskRecord::from_hash(h)?))
    }

    /// Claims task `id` for one attempt on behalf of apalis job `job`.
    pub async fn claim(
        &self,
        id: &str,
        job: &str,
        worker: &str,
        lease: Duration,
        now: DateTime<Utc>,
    ) -> Result<Claim, StoreError> {
        self.claim_many(&[(id.to_owned(), job.to_owned())], worker, lease, now)
            .await?
            .pop()
            .ok_or_else(|| StoreError::Protocol("empty claim reply".into()))
    }

    /// Claims several `(task id, job id)` deliveries in one script call, answering in order.
    pub async fn claim_many(
        &self,
        jobs: &[(String, String)],
        worker: &str,
        lease: Duration,
        now: DateTime<Utc>,
    ) -> Result<Vec<Claim>, StoreError> {
        let mut inv = self.invoke(&START);
        inv.arg(worker)
            .arg(now.timestamp_millis())
            .arg(rfc3339(now))
            .arg(now.timestamp_millis() + lease.as_millis() as i64);
        for (id, job) in jobs {
            inv.arg(id).arg(job);
        }
        let mut c = self.conn.clone();
        let replies: Vec<Vec<redis::Value>> = inv.invoke_async(&mut c).await?;
        if replies.len() != jobs.len() {
            return Err(StoreError::Protocol(format!(
                "claim answered {} of {}",
                replies.len(),
                jobs.len()
            )));
        }
        replies
            .into_iter()
            .zip(jobs)
            .map(|(r, (id, _))| parse_claim(id, r))
            .collect()
    }

    /// Records progress; returns false when the attempt no longer owns the task.
    pub async fn progress(
        &self,
        id: &str,
        attempt: u32,
        progress: &Progress,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let one = [(id.to_owned(), attempt, serde_json::to_string(progress)?)];
        self.progress_many(&one, now)
            .await?
            .pop()
            .ok_or_else(|| StoreError::Protocol("empty progress reply".into()))
    }

    /// Records several progress reports (id, attempt, progress json) in one script call,
    /// answering in order.
    pub async fn progress_many(
        &self,
        reports: &[(String, u32, String)],
        now: DateTime<Utc>,
    ) -> Result<Vec<bool>, StoreError> {
        let mut inv = self.invoke(&PROGRESS);
        inv.arg(rfc3339(now));
        for (id, attempt, json) in reports {
            inv.arg(id).arg(attempt).arg(json);
        }
        let mut c = self.conn.clone();
        let done: Vec<i64> = inv.invoke_async(&mut c).await?;
        Ok(done.into_iter().map(|n| n == 1).collect())
    }

    /// Ends an attempt; returns false when the attempt no longer owned the task (it was
    /// cancelled, taken over after a lapsed lease, or already ended).
    pub async fn finish(
        &self,
        id: &str,
        attempt: u32,
        outcome: &Outcome,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.finish_many(&[(id.to_owned(), attempt, outcome.clone(), None)], now)
            .await?
            .pop()
            .ok_or_else(|| StoreError::Protocol("empty finish reply".into()))
    }

    /// Ends several attempts in one script call, answering in order. Each may carry the
    /// attempt's last progress (as JSON), recorded with the outcome.
    pub async fn finish_many(
        &self,
        ends: &[(String, u32, Outcome, Option<String>)],
        now: DateTime<Utc>,
    ) -> Result<Vec<bool>, StoreError> {
        let mut inv = self.invoke(&FINISH);
        inv.arg(rfc3339(now));
        for (id, attempt, outcome, progress) in ends {
            let (name, body, next) = match outcome {
                Outcome::Succeeded(v) => ("succeeded", serde_json::to_string(v)?, None),
                Outcome::Failed(e) => ("failed", serde_json::to_string(e)?, None),
                Outcome::Retry { error, at } => ("retry", serde_json::to_string(error)?, Some(*at)),
                Outcome::Cancelled(e) => ("cancelled", serde_json::to_string(e)?, None),
            };
            inv.arg(id)
                .arg(attempt)
                .arg(name)
                .arg(body)
                .arg(next.map_or(0, |t| t.timestamp_millis()))
                .arg(next.map(rfc3339).unwrap_or_default())
                .arg(progress.as_deref().unwrap_or_default());
        }
        let mut c = self.conn.clone();
        let done: Vec<i64> = inv.invoke_async(&mut c).await?;
        Ok(done.into_iter().map(|n| n == 1).collect())
    }

    /// Extends the leases of tasks this process is running (a lease already given up is
    /// never resurrected) and returns those among them with a cancel requested.
    pub async fn renew_leases(
        &self,
        ids: &[String],
        until: DateTime<Utc>,
    ) -> Result<Vec<String>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut inv = self.invoke(&RENEW);
        inv.arg(until.timestamp_millis());
        for id in ids {
            inv.arg(id);
        }
        let mut c = self.conn.clone();
        Ok(inv.invoke_async(&mut c).await?)
    }

    /// Cancels a task (see `lua/cancel.lua`).
    pub async fn cancel(&self, id: &TaskId, now: DateTime<Utc>) -> Result<Cancel, StoreError> {
        let mut inv = self.invoke(&CANCEL);
        inv.arg(id.as_str()).arg(rfc3339(now));
        let mut c = self.conn.clone();
        let reply: Vec<redis::Value> = inv.invoke_async(&mut c).await?;
        let (verdict, rest) = verdict(reply)?;
        Ok(match verdict.as_str() {
            "gone" => Cancel::Gone,
            "terminal" => Cancel::Terminal(state_of(rest)?),
            "requested" => Cancel::Requested(Box::new(record_of(rest)?)),
            "cancelled" => Cancel::Cancelled(Box::new(record_of(rest)?)),
            other => return Err(StoreError::Protocol(format!("cancel: verdict {other}"))),
        })
    }

    /// Queues a failed or cancelled task again with a fresh budget of attempts.
    pub async fn retry(&self, id: &TaskId, now: DateTime<Utc>) -> Result<Retry, StoreError> {
        let mut inv = self.invoke(&RETRY);
        inv.arg(id.as_str()).arg(new_job_id()).arg(rfc3339(now));
        let mut c = self.conn.clone();
        let reply: Vec<redis::Value> = inv.invoke_async(&mut c).await?;
        let (verdict, rest) = verdict(reply)?;
        Ok(match verdict.as_str() {
            "gone" => Retry::Gone,
            "conflict" => Retry::Conflict(state_of(rest)?),
            "queued" => Retry::Queued(Box::new(record_of(rest)?)),
            other => return Err(StoreError::Protocol(format!("retry: verdict {other}"))),
        })
    }

    /// When the record of `id` expired, if that is still remembered.
    pub async fn expired_at(&self, id: &TaskId) -> Result<Option<DateTime<Utc>>, StoreError> {
        let mut c = self.conn.clone();
        let ms: Option<f64> = redis::cmd("ZSCORE")
            .arg(self.layout.expired())
            .arg(id.as_str())
            .query_async(&mut c)
            .await?;
        Ok(ms.and_then(|ms| DateTime::from_timestamp_millis(ms as i64)))
    }

    /// One page of the task list; see `lua/list.lua` for the ordering and cost bound.
    pub async fn list(&self, q: &ListQuery) -> Result<ListPage, StoreError> {
        let mut inv = self.invoke(&LIST);
        inv.arg(q.state.map(|s| s.as_str()).unwrap_or_default())
            .arg(q.queue.as_deref().unwrap_or_default())
            .arg(q.kind.as_deref().unwrap_or_default())
            .arg(
                q.after
                    .as_ref()
                    .map(|c| c.score.to_string())
                    .unwrap_or_default(),
            )
            .arg(q.after.as_ref().map(|c| c.id.as_str()).unwrap_or_default())
            .arg(q.limit.max(1))
            .arg(q.budget.max(q.limit).max(1));
        let mut c = self.conn.clone();
        let reply: Vec<redis::Value> = inv.invoke_async(&mut c).await?;
        let mut it = reply.into_iter();
        let score: String = it
            .next()
            .map(redis::from_redis_value)
            .transpose()?
            .unwrap_or_default();
        let id: String = it
            .next()
            .map(redis::from_redis_value)
            .transpose()?
            .unwrap_or_default();
        let tasks = it
            .map(|v| Ok(TaskRecord::from_hash(redis::from_redis_value(v)?)?))
            .collect::<Result<Vec<_>, StoreError>>()?;
        let next = match score.parse::<i64>() {
            Ok(score) if !id.is_empty() => Some(Cursor { score, id }),
            _ => None,
        };
        Ok(ListPage { tasks, next })
    }

    /// Per-queue counts by state, oldest waiting task and active job count.
    pub async fn queues(&self, now: DateTime<Utc>) -> Result<Vec<QueueStats>, StoreError> {
        let mut inv = self.invoke(&QUEUES);
        for s in TaskState::ALL {
            inv.arg(s.as_str());
        }
        let mut c = self.conn.clone();
        let rows: Vec<Vec<redis::Value>> = inv.invoke_async(&mut c).await?;
        rows.into_iter()
            .map(|row| {
                let mut it = row.into_iter();
                let mut next = || {
                    it.next()
                        .ok_or_else(|| StoreError::Protocol("queues: short row".into()))
                };
                let name: String = redis::from_redis_value(next()?)?;
                let oldest: String = redis::from_redis_value(next()?)?;
                let active: u64 = redis::from_redis_value(next()?)?;
                let mut counts = Vec::with_capacity(TaskState::ALL.len());
                for s in TaskState::ALL {
                    counts.push((s, redis::from_redis_value::<u64>(next()?)?));
                }
                let oldest_queued_ms = oldest
                    .parse::<f64>()
                    .ok()
                    .map(|ms| (now.timestamp_millis() - ms as i64).max(0) as u64);
                Ok(QueueStats {
                    name,
                    counts,
                    oldest_queued_ms,
                    active_jobs: active,
                })
            })
            .collect()
    }

    /// Removes expired records from the indexes; returns how many were handled.
    pub async fn expire_indexes(&self, slice: usize) -> Result<usize, StoreError> {
        let mut inv = self.invoke(&EXPIRE);
        inv.arg(slice).arg(TOMBSTONES);
        let mut c = self.conn.clone();
        Ok(inv.invoke_async(&mut c).await?)
    }

    /// Records that worker process `w` is alive; the entry lapses unless renewed within `ttl`.
    pub async fn heartbeat(&self, w: &WorkerInfo, ttl: Duration) -> Result<(), StoreError> {
        let key = self.layout.worker(&w.name);
        let mut c = self.conn.clone();
        redis::pipe()
            .cmd("HSET")
            .arg(&key)
            .arg("info")
            .arg(serde_json::to_string(w)?)
            .ignore()
            .cmd("PEXPIRE")
            .arg(&key)
            .arg(ttl.as_millis() as u64)
            .ignore()
            .cmd("ZADD")
            .arg(self.layout.workers())
            .arg(w.last_seen.timestamp_millis())
            .arg(&w.name)
            .ignore()
            .cmd("ZREMRANGEBYSCORE")
            .arg(self.layout.workers())
            .arg("-inf")
            .arg((w.last_seen - ttl * 10).timestamp_millis())
            .ignore()
            .query_async::<()>(&mut c)
            .await?;
        Ok(())
    }

    /// Removes worker `name` at once (a clean shutdown).
    pub async fn worker_gone(&self, name: &str) -> Result<(), StoreError> {
        let mut c = self.conn.clone();
        redis::pipe()
            .cmd("DEL")
            .arg(self.layout.worker(name))
            .ignore()
            .cmd("ZREM")
            .arg(self.layout.workers())
            .arg(name)
            .ignore()
            .query_async::<()>(&mut c)
            .await?;
        Ok(())
    }

    /// Worker processes whose heartbeat is still alive.
    pub async fn workers(&self) -> Result<Vec<WorkerInfo>, StoreError> {
        let mut c = self.conn.clone();
        let names: Vec<String> = redis::cmd("ZREVRANGE")
            .arg(self.layout.workers())
            .arg(0)
            .arg(999)
            .query_async(&mut c)
            .await?;
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for n in &names {
            pipe.cmd("HGET").arg(self.layout.worker(n)).arg("info");
        }
        let infos: Vec<Option<String>> = pipe.query_async(&mut c).await?;
        Ok(infos
            .into_iter()
            .flatten()
            .filter_map(|s| serde_json::from_str(&s).ok())
            .collect())
    }

    /// Re-queues up to `limit` tasks from the given zset; returns (examined, queued).
    pub async fn recover(
        &self,
        which: Recover,
        limit: usize,
        now: DateTime<Utc>,
    ) -> Result<(usize, usize), StoreError> {
        let mut inv = self.invoke(&RECOVER);
        inv.arg(match which {
            Recover::Due => "delayed",
            Recover::LapsedLeases => "running",
        })
        .arg(now.timestamp_millis())
        .arg(rfc3339(now));
        for _ in 0..limit.max(1) {
            inv.arg(new_job_id());
        }
        let mut c = self.conn.clone();
        let (examined, moved): (usize, usize) = inv.invoke_async(&mut c).await?;
        Ok((examined, moved))
    }

    /// Deletes up to `slice` finished apalis jobs per bookkeeping set of `queue`.
    pub async fn clean_finished_jobs(
        &self,
        queue: &str,
        slice: usize,
    ) -> Result<usize, StoreError> {
        let cfg = self.layout.apalis_config(queue);
        let mut inv = self.invoke(&JANITOR);
        inv.arg(self.layout.apalis_queue(queue))
            .arg(slice)
            .arg(cfg.done_jobs_set())
            .arg(cfg.dead_jobs_set())
            .arg(cfg.failed_jobs_set());
        let mut c = self.conn.clone();
        Ok(inv.invoke_async(&mut c).await?)
    }
}

/// What a cancel did.
#[derive(Debug)]
pub enum Cancel {
    Gone,
    /// Already terminal: nothing to cancel.
    Terminal(TaskState),
    /// Running: its worker was told to stop it; it ends `cancelled` shortly.
    Requested(Box<TaskRecord>),
    /// It had not started and now never will.
    Cancelled(Box<TaskRecord>),
}

/// What a manual retry did.
#[derive(Debug)]
pub enum Retry {
    Gone,
    /// Only failed or cancelled tasks can be retried.
    Conflict(TaskState),
    Queued(Box<TaskRecord>),
}

/// Where a listing page ends: the index score and id of the last entry examined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub score: i64,
    pub id: String,
}

impl Cursor {
    /// Opaque text form for clients: `<score>:<id>` (scores never contain `:`).
    pub fn encode(&self) -> String {
        format!("{}:{}", self.score, self.id)
    }

    pub fn decode(s: &str) -> Option<Self> {
        let (score, id) = s.split_once(':')?;
        let score = score.parse().ok()?;
        TaskId::parse(id).ok()?;
        Some(Self {
            score,
            id: id.to_owned(),
        })
    }
}

#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    pub state: Option<TaskState>,
    pub queue: Option<String>,
    pub kind: Option<String>,
    pub after: Option<Cursor>,
    pub limit: usize,
    /// Most index entries one call may examine.
    pub budget: usize,
}

#[derive(Debug)]
pub struct ListPage {
    pub tasks: Vec<TaskRecord>,
    pub next: Option<Cursor>,
}

#[derive(Debug)]
pub struct QueueStats {
    pub name: String,
    pub counts: Vec<(TaskState, u64)>,
    /// Age of the task that has waited longest in `queued`.
    pub oldest_queued_ms: Option<u64>,
    /// Jobs waiting in apalis-redis's active list (includes jobs of cancelled tasks not yet
    /// skipped by a worker).
    pub active_jobs: u64,
}

/// A worker process as its heartbeat describes it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct WorkerInfo {
    /// Unique per process start: host, pid, ULID.
    pub name: String,
    pub host: String,
    pub pid: u32,
    /// Served queues with their concurrency.
    pub queues: Vec<WorkerQueue>,
    /// Tasks running now.
    pub running: usize,
    /// Up to 100 of the running task ids.
    pub running_ids: Vec<String>,
    /// True once the process is shutting down: it takes no new tasks and finishes its own.
    #[serde(default)]
    pub stopping: bool,
    pub started_at: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct WorkerQueue {
    pub name: String,
    pub concurrency: usize,
}

fn parse_claim(id: &str, reply: Vec<redis::Value>) -> Result<Claim, StoreError> {
    let mut it = reply.into_iter();
    let verdict: String = it
        .next()
        .map(redis::from_redis_value)
        .transpose()?
        .ok_or_else(|| StoreError::Protocol("empty reply".into()))?;
    if verdict == "run" {
        let mut next = |what: &str| {
            it.next()
                .ok_or_else(|| StoreError::Protocol(format!("claim reply has no {what}")))
        };
        let kind: String = redis::from_redis_value(next("kind")?)?;
        let payload: String = redis::from_redis_value(next("payload")?)?;
        let attempt: u32 = redis::from_redis_value(next("attempt")?)?;
        let max_attempts: u32 = redis::from_redis_value(next("max_attempts")?)?;
        let timeout: String = redis::from_redis_value(next("timeout_secs")?)?;
        let corrupt = |field: &'static str, reason: String| {
            StoreError::Corrupt(CorruptRecord { field, reason })
        };
        return Ok(Claim::Run(Box::new(Claimed {
            id: id.to_owned(),
            kind,
            payload: serde_json::from_str(&payload)
                .map_err(|e| corrupt("payload", e.to_string()))?,
            attempt,
            max_attempts,
            timeout_secs: match timeout.as_str() {
                "" => None,
                t => Some(
                    t.parse()
                        .map_err(|e| corrupt("timeout_secs", format!("{e}")))?,
                ),
            },
        })));
    }
    let rest = it.next();
    Ok(match verdict.as_str() {
        "stale" => Claim::Stale,
        "busy" => Claim::Busy,
        "gone" => Claim::Gone,
        "exhausted" => Claim::Exhausted,
        "skip" => Claim::Skip(state_of(rest)?),
        other => {
            return Err(StoreError::Protocol(format!(
                "unknown claim verdict {other}"
            )));
        }
    })
}

fn verdict(reply: Vec<redis::Value>) -> Result<(String, Option<redis::Value>), StoreError> {
    let mut it = reply.into_iter();
    let v: String = it
        .next()
        .map(redis::from_redis_value)
        .transpose()?
        .ok_or_else(|| StoreError::Protocol("empty reply".into()))?;
    Ok((v, it.next()))
}

fn record_of(v: Option<redis::Value>) -> Result<TaskRecord, StoreError> {
    let v = v.ok_or_else(|| StoreError::Protocol("reply has no record".into()))?;
    Ok(TaskRecord::from_hash(redis::from_redis_value(v)?)?)
}

fn state_of(v: Option<redis::Value>) -> Result<TaskState, StoreError> {
    let v = v.ok_or_else(|| StoreError::Protocol("reply has no state".into()))?;
    let s: String = redis::from_redis_value(v)?;
    s.parse()
        .map_err(|e: crate::task::UnknownState| StoreError::Protocol(e.to_string()))
}

fn new_record(task: NewTask, now: DateTime<Utc>) -> TaskRecord {
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
    }
}

/// apalis-redis parses job ids as ULIDs; a non-ULID id would break its whole fetch batch.
fn new_job_id() -> String {
    ulid::Ulid::generate().to_string()
}

fn record_fields(r: &TaskRecord, job: &str) -> Vec<(&'static str, String)> {
    let opt_time = |t: Option<DateTime<Utc>>| t.map(rfc3339).unwrap_or_default();
    vec![
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
        ("job", job.to_owned()),
    ]
}
