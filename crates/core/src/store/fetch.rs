//! Fetch and claim in one step (`fetch.lua`): what errand's apalis backend asks for when a
//! worker has free slots. [`TaskStore::release`] is its inverse, for claims a stopping
//! worker will not run.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{StoreError, TaskStore, script::script};
use crate::task::rfc3339;

static FETCH: std::sync::LazyLock<redis::Script> = script!("fetch.lua");
static RELEASE: std::sync::LazyLock<redis::Script> = script!("release.lua");
/// Items per claimed task in a fetch's reply.
const FIELDS: usize = 10;
/// Most tasks one fetch may claim (`fetch.lua` caps it too; `worker.batch_size` is checked
/// against it at start).
pub const MAX_FETCH: usize = 1000;

/// What a worker needs of a task it claimed: the fetch returns this much and no more (the
/// rest of the record stays in Redis).
#[derive(Debug, Clone)]
pub struct Claimed {
    /// The task id.
    pub id: String,
    /// The queue it was fetched from: every later write goes to this queue's slot.
    pub queue: String,
    /// The claim token of this attempt (the token of the fetch that claimed it: with the
    /// id it names the attempt): every write the attempt makes (finish, progress, renew,
    /// release) is fenced by it, and refused once the task no longer holds it
    /// (docs/task-lifecycle.md, "Claims").
    pub token: String,
    /// The kind to run.
    pub kind: String,
    /// The stored input; `Err` when the stored text is not JSON (a hand-edited or corrupt
    /// record), so the runner fails that task alone.
    pub payload: Result<Value, String>,
    /// The attempt this claim started (1 for the first).
    pub attempt: u32,
    /// Attempts the task may have in all; this is the last when equal to `attempt`.
    pub max_attempts: u32,
    /// Per-attempt time limit; `None`: no limit.
    pub timeout_secs: Option<u64>,
    /// The submit's W3C trace context, when it was traced.
    pub traceparent: Option<String>,
    /// When the task last entered `queued` (its wait before this attempt).
    pub queued_at: Option<DateTime<Utc>>,
    /// The workflow it is a step of (its end is applied to it: docs/workflows.md).
    pub workflow: Option<String>,
    /// A workflow step's inputs: its dependencies' ends by step name (`None`: not a step,
    /// or not json).
    pub inputs: Option<Value>,
}

/// One fetch's answer.
#[derive(Debug, Default)]
pub struct Fetched {
    /// Now `running` under the fetching worker, leases taken.
    pub claimed: Vec<Claimed>,
    /// Entries taken off the list whose task was not waiting (cancelled, already claimed
    /// through another entry, expired): dropped.
    pub dropped: usize,
    /// Tasks moved aside to wait for a limit (their kind's rate, their concurrency key):
    /// still `queued`, no attempt used.
    pub held: usize,
    /// A rate limit holds tasks back: the earliest of them may go after this long (fetch
    /// again then; nothing wakes the worker for it).
    pub retry_in: Option<Duration>,
}

impl TaskStore {
    /// Takes up to `max` ready tasks of `queue` and claims each for one attempt by
    /// `worker`, with a lease of `lease` from now (Redis's clock). `token` names this fetch
    /// (a fresh ULID per call) and is the claim token of every claim it makes: sent again after an
    /// error (the reply may have been lost with the claims made), the same token is answered
    /// with the same claims, for a lease's time. At most [`MAX_FETCH`] are taken.
    pub async fn fetch(
        &self,
        queue: &str,
        max: usize,
        worker: &str,
        lease: Duration,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<Fetched, StoreError> {
        let mut inv = self.invoke_in(&FETCH, queue);
        inv.arg(queue)
            .arg(max.clamp(1, MAX_FETCH))
            .arg(worker)
            .arg(rfc3339(now))
            .arg(lease.as_millis() as u64)
            .arg(token);
        let reply: Vec<redis::Value> = self.run(&inv).await?;
        decode(queue, token, reply)
    }

    /// Gives claims that will not be run back to their queue (at its head, attempt undone;
    /// a task whose cancel was requested meanwhile ends `cancelled` instead); returns how
    /// many still held their claims.
    pub async fn release(
        &self,
        queue: &str,
        claims: &[Claimed],
        now: DateTime<Utc>,
    ) -> Result<usize, StoreError> {
        if claims.is_empty() {
            return Ok(0);
        }
        let mut inv = self.invoke_in(&RELEASE, queue);
        inv.arg(queue).arg(rfc3339(now));
        for c in claims {
            inv.arg(&c.id).arg(&c.token);
        }
        self.run(&inv).await
    }
}

/// Decodes `{dropped, held, retry ms, (id, kind, payload, attempt, max_attempts, timeout_secs, traceparent,
/// updated_at, workflow, inputs)...}`; every claim's token is the fetch's.
fn decode(queue: &str, token: &str, reply: Vec<redis::Value>) -> Result<Fetched, StoreError> {
    let mut it = reply.into_iter();
    let mut head = [0u64; 3];
    for h in &mut head {
        *h = match it.next() {
            Some(v) => redis::from_redis_value(v)?,
            None => return Err(StoreError::Protocol("fetch: short reply".into())),
        };
    }
    let [dropped, held, retry_ms] = head;
    let rest: Vec<redis::Value> = it.collect();
    if !rest.len().is_multiple_of(FIELDS) {
        return Err(StoreError::Protocol(format!(
            "fetch: {} items do not make whole tasks",
            rest.len()
        )));
    }
    let mut claimed = Vec::with_capacity(rest.len() / FIELDS);
    let mut it = rest.into_iter();
    while let Some(id) = it.next() {
        let mut next = || it.next().unwrap_or(redis::Value::Nil);
        // Bytes, not strings: one task's undecodable field must fail that task, not the
        // whole fetch (which would leave its batch claimed and unrun).
        let id: String = redis::from_redis_value(id)?;
        let kind: Vec<u8> = redis::from_redis_value(next())?;
        let payload: Vec<u8> = redis::from_redis_value(next())?;
        let attempt: u32 = redis::from_redis_value(next())?;
        let max_attempts: u32 = redis::from_redis_value(next())?;
        let timeout: Vec<u8> = redis::from_redis_value(next())?;
        let timeout = std::str::from_utf8(&timeout).unwrap_or_default();
        let traceparent: Vec<u8> = redis::from_redis_value(next())?;
        let queued_at: Vec<u8> = redis::from_redis_value(next())?;
        let workflow: Vec<u8> = redis::from_redis_value(next())?;
        let inputs: Vec<u8> = redis::from_redis_value(next())?;
        claimed.push(Claimed {
            id,
            queue: queue.to_owned(),
            token: token.to_owned(),
            kind: String::from_utf8_lossy(&kind).into_owned(),
            payload: serde_json::from_slice(&payload).map_err(|e| format!("payload: {e}")),
            attempt,
            max_attempts,
            // A timeout that does not parse is no limit rather than a task that never runs.
            timeout_secs: timeout.parse().ok(),
            traceparent: String::from_utf8(traceparent)
                .ok()
                .filter(|t| !t.is_empty()),
            queued_at: std::str::from_utf8(&queued_at)
                .ok()
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&Utc)),
            workflow: String::from_utf8(workflow).ok().filter(|w| !w.is_empty()),
            inputs: (!inputs.is_empty())
                .then(|| serde_json::from_slice(&inputs).ok())
                .flatten(),
        });
    }
    Ok(Fetched {
        claimed,
        dropped: dropped as usize,
        held: held as usize,
        retry_in: (retry_ms > 0).then(|| Duration::from_millis(retry_ms)),
    })
}
