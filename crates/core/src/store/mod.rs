//! The Redis task store: errand's records, their guarded transitions, and the hand-off of
//! jobs to apalis-redis. Every transition is one Lua script (one round trip, atomic) that
//! checks the state it leaves.

mod error;
mod layout;

use std::{collections::HashMap, sync::LazyLock, time::Duration};

use chrono::{DateTime, Utc};
use redis::{Script, aio::ConnectionManager};
use serde_json::Value;

pub use error::StoreError;
pub use layout::Layout;

use crate::{
    settings::RedisSettings,
    task::{Progress, TaskError, TaskId, TaskRecord, TaskState, record::rfc3339},
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

/// Opens the shared, multiplexed, self-reconnecting connection. Lazy: a process starts even
/// while Redis is down and serves 503s until it is back.
pub fn connect(settings: &RedisSettings) -> Result<ConnectionManager, StoreError> {
    let client = redis::Client::open(settings.url.as_str())?;
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_response_timeout(Some(settings.response_timeout()))
        .set_connection_timeout(Some(settings.connect_timeout()))
        .set_number_of_retries(2)
        .set_max_delay(Duration::from_millis(500));
    Ok(ConnectionManager::new_lazy_with_config(client, config)?)
}

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

/// What a worker may do with a job it received.
#[derive(Debug)]
pub enum Claim {
    /// Run it: the record is now `running` under this worker for the returned attempt.
    Run(Box<TaskRecord>),
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
        // Records keep millisecond timestamps; answer with exactly what is stored.
        let now = chrono::SubsecRound::trunc_subsecs(now, 3);
        let task = NewTask {
            run_at: task
                .run_at
                .map(|t| chrono::SubsecRound::trunc_subsecs(t, 3)),
            ..task
        };
        let due = task.run_at.filter(|t| *t > now);
        let record = TaskRecord {
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
        };
        let job = new_job_id();
        let mut inv = self.invoke(&SUBMIT);
        inv.arg(record.id.as_str())
            .arg(&job)
            .arg(now.timestamp_millis())
            .arg(due.map_or(0, |t| t.timestamp_millis()));
        for (k, v) in record_fields(&record, &job) {
            inv.arg(k).arg(v);
        }
        let mut c = self.conn.clone();
        let reply: Vec<redis::Value> = inv.invoke_async(&mut c).await?;
        match reply.as_slice() {
            [created] if redis::from_redis_value_ref::<i64>(created)? == 1 => {
                Ok(Submitted::Created(record))
            }
            [_, existing] => Ok(Submitted::Existing(TaskRecord::from_hash(
                redis::from_redis_value_ref(existing)?,
            )?)),
            _ => Err(StoreError::Protocol("submit returned no record".into())),
        }
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
        let mut inv = self.invoke(&START);
        inv.arg(id)
            .arg(job)
            .arg(worker)
            .arg(now.timestamp_millis())
            .arg(rfc3339(now))
            .arg(now.timestamp_millis() + lease.as_millis() as i64);
        let mut c = self.conn.clone();
        let reply: Vec<redis::Value> = inv.invoke_async(&mut c).await?;
        let verdict: String = reply
            .first()
            .map(redis::from_redis_value_ref)
            .transpose()?
            .ok_or_else(|| StoreError::Protocol("empty claim reply".into()))?;
        Ok(match verdict.as_str() {
            "run" => {
                let h: HashMap<String, String> = redis::from_redis_value_ref(
                    reply
                        .get(1)
                        .ok_or_else(|| StoreError::Protocol("claim: no record".into()))?,
                )?;
                Claim::Run(Box::new(TaskRecord::from_hash(h)?))
            }
            "stale" => Claim::Stale,
            "busy" => Claim::Busy,
            "gone" => Claim::Gone,
            "exhausted" => Claim::Exhausted,
            "skip" => {
                let st: String = reply
                    .get(1)
                    .map(redis::from_redis_value_ref)
                    .transpose()?
                    .unwrap_or_default();
                Claim::Skip(
                    st.parse().map_err(|e: crate::task::UnknownState| {
                        StoreError::Protocol(e.to_string())
                    })?,
                )
            }
            other => {
                return Err(StoreError::Protocol(format!(
                    "unknown claim verdict {other}"
                )));
            }
        })
    }

    /// Records progress; returns false when the attempt no longer owns the task.
    pub async fn progress(
        &self,
        id: &str,
        attempt: u32,
        progress: &Progress,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut inv = self.invoke(&PROGRESS);
        inv.arg(id)
            .arg(attempt)
            .arg(serde_json::to_string(progress)?)
            .arg(rfc3339(now));
        let mut c = self.conn.clone();
        let n: i64 = inv.invoke_async(&mut c).await?;
        Ok(n == 1)
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
        let (name, body, next) = match outcome {
            Outcome::Succeeded(v) => ("succeeded", serde_json::to_string(v)?, None),
            Outcome::Failed(e) => ("failed", serde_json::to_string(e)?, None),
            Outcome::Retry { error, at } => ("retry", serde_json::to_string(error)?, Some(*at)),
            Outcome::Cancelled(e) => ("cancelled", serde_json::to_string(e)?, None),
        };
        let mut inv = self.invoke(&FINISH);
        inv.arg(id)
            .arg(attempt)
            .arg(name)
            .arg(rfc3339(now))
            .arg(body)
            .arg(next.map_or(0, |t| t.timestamp_millis()))
            .arg(next.map(rfc3339).unwrap_or_default());
        let mut c = self.conn.clone();
        let n: i64 = inv.invoke_async(&mut c).await?;
        Ok(n == 1)
    }

    /// Extends the leases of tasks this process is running. `XX`: a lease that was already
    /// given up (task finished, or taken over) is never resurrected.
    pub async fn renew_leases(
        &self,
        ids: &[String],
        until: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut cmd = redis::cmd("ZADD");
        cmd.arg(self.layout.running()).arg("XX");
        let score = until.timestamp_millis();
        for id in ids {
            cmd.arg(score).arg(id);
        }
        let mut c = self.conn.clone();
        let _: i64 = cmd.query_async(&mut c).await?;
        Ok(())
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
