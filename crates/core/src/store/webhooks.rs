//! The webhook outbox. A delivery is written by the task's terminal transition itself
//! (`queue_webhook` in `lua/prelude.lua`, called from `transition`), so no crash can end a
//! task without its delivery, or queue one for a task that did not end. Workers claim due
//! deliveries with a lease (`webhook_claim.lua`) and settle each attempt
//! (`webhook_settle.lua`); the outcome is summarised on the task record.

use std::{collections::HashMap, time::Duration};

use serde_json::{Map, Value};

use super::{StoreError, TaskStore, script::script};
use crate::task::{WebhookEvent, WebhookStatus};

static CLAIM: std::sync::LazyLock<redis::Script> = script!("webhook_claim.lua");
static SETTLE: std::sync::LazyLock<redis::Script> = script!("webhook_settle.lua");

/// id, task, event, url, snapshot json, ended ms, attempt (`webhook_claim.lua`).
type ClaimRow = (String, String, String, String, String, i64, u32);

/// One delivery attempt a worker now holds.
#[derive(Debug, Clone)]
pub struct ClaimedWebhook {
    /// The `webhook-id`: the same on every attempt of this delivery.
    pub id: String,
    /// The task's queue (the outbox is per queue, in its slot).
    pub queue: String,
    /// The task the delivery reports on.
    pub task_id: String,
    /// The end that triggered it.
    pub event: WebhookEvent,
    /// The callback URL, re-checked against `webhooks.destinations` before sending.
    pub url: String,
    /// The task's public view as it ended (the payload's `data`).
    pub data: Value,
    /// 1-based; fences the settle.
    pub attempt: u32,
    /// How long ago the task ended, by Redis's clock.
    pub since_end: Duration,
}

/// What became of a claimed attempt.
#[derive(Debug, Clone)]
pub enum Settle {
    /// Try again after this long.
    Retry(Duration),
    /// Delivered, or given up: the delivery leaves the outbox.
    Done,
}

impl TaskStore {
    /// Claims up to `limit` due deliveries of `queue` for `lease`.
    pub async fn claim_webhooks(
        &self,
        queue: &str,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<ClaimedWebhook>, StoreError> {
        let mut inv = self.invoke_in(&CLAIM, queue);
        inv.arg(queue).arg(lease.as_millis() as u64).arg(limit);
        let (now_ms, rows): (i64, Vec<ClaimRow>) = self.run(&inv).await?;
        rows.into_iter()
            .map(|(id, task_id, event, url, snapshot, ended_ms, attempt)| {
                let event = event.parse().map_err(StoreError::Protocol)?;
                let flat: Vec<String> = serde_json::from_str(&snapshot)?;
                Ok(ClaimedWebhook {
                    id,
                    queue: queue.to_owned(),
                    task_id,
                    event,
                    url,
                    data: public_view(flat),
                    attempt,
                    since_end: Duration::from_millis((now_ms - ended_ms).max(0) as u64),
                })
            })
            .collect()
    }

    /// Records an attempt's outcome and `status` on the task; false when a later claim
    /// owns the delivery (this one's lease lapsed), which then records its own.
    pub async fn settle_webhook(
        &self,
        claim: &ClaimedWebhook,
        settle: Settle,
        status: &WebhookStatus,
    ) -> Result<bool, StoreError> {
        let mut inv = self.invoke_in(&SETTLE, &claim.queue);
        let (verdict, delay) = match settle {
            Settle::Retry(d) => ("retry", d.as_millis() as u64),
            Settle::Done => ("done", 0),
        };
        inv.arg(&claim.queue)
            .arg(&claim.id)
            .arg(claim.attempt)
            .arg(verdict)
            .arg(delay)
            .arg(serde_json::to_string(status)?);
        let n: i64 = self.run(&inv).await?;
        Ok(n == 1)
    }
}

/// The snapshot (the record's hash fields as they were when the task ended, less the
/// payload and bookkeeping) as the JSON the API shows for a record: JSON fields parsed,
/// numbers as numbers, empty fields null.
fn public_view(flat: Vec<String>) -> Value {
    let h: HashMap<String, String> = flat
        .chunks_exact(2)
        .map(|kv| (kv[0].clone(), kv[1].clone()))
        .collect();
    let mut m = Map::new();
    for f in [
        "id",
        "kind",
        "queue",
        "state",
        "progress",
        "result",
        "error",
        "attempt",
        "max_attempts",
        "created_at",
        "scheduled_for",
        "started_at",
        "finished_at",
        "worker",
        "schedule_id",
    ] {
        let v = match h.get(f).filter(|v| !v.is_empty()) {
            None => Value::Null,
            Some(v) => match f {
                "progress" | "result" | "error" | "attempt" | "max_attempts" => {
                    serde_json::from_str(v).unwrap_or_else(|_| Value::String(v.clone()))
                }
                _ => Value::String(v.clone()),
            },
        };
        m.insert(f.to_owned(), v);
    }
    Value::Object(m)
}
