//! How a step's end reaches its workflow, through any crash: the terminal transition writes
//! the step's id into its queue's outbox in the same script call (`workflow_end` in the
//! prelude); an applier takes entries under a lease (`wf_outbox.lua`), applies each
//! workflow's in one call (`workflow.lua` `apply`, idempotent and fenced by the record's
//! `wf_seq`), creates the steps that became ready and cancels what the workflow's cancel
//! asks, and only then drops the entries. A crash anywhere leaves the entry, taken again
//! once its lease lapses. The finishing worker applies at once; upkeep applies what is due
//! and looks at every workflow nothing touched for [`WORKFLOW_STALL`].
//!
//! [`WORKFLOW_STALL`]: super::workflows::WORKFLOW_STALL

use std::{collections::HashMap, time::Duration};

use futures::StreamExt;

use super::{StoreError, TaskStore, layout::WORKFLOW_SHARDS, script::script};

static OUTBOX: std::sync::LazyLock<redis::Script> = script!("wf_outbox.lua");

/// How long a taken outbox entry is its applier's before another may take it.
const LEASE: Duration = Duration::from_secs(10);

/// The `wf_seq` a step's end is applied with when its task's record is gone: newer than any
/// the task could have had, so it is the step's last word.
pub(super) const GONE_SEQ: u64 = 1_000_000_000_000;

/// The error a step ends with when its task's record is gone before its end was applied.
fn gone_error() -> String {
    serde_json::json!({"kind": "expired", "message": "the step's task record is gone (expired or deleted) before its end reached the workflow"}).to_string()
}

/// One taken outbox entry.
struct Taken {
    id: String,
    lease: String,
    workflow: String,
    step: String,
    state: String,
    body: String,
    seq: String,
}

impl TaskStore {
    /// Applies up to `max` due entries of `queue`'s workflow outbox; returns how many it
    /// took (fewer than `max`: the outbox had no more due).
    pub async fn apply_workflow_ends(&self, queue: &str, max: usize) -> Result<usize, StoreError> {
        let mut inv = self.invoke_in(&OUTBOX, queue);
        inv.arg("take")
            .arg(queue)
            .arg(max.max(1))
            .arg(LEASE.as_millis() as u64);
        let flat: Vec<String> = self.run(&inv).await?;
        if flat.is_empty() {
            return Ok(0);
        }
        if !flat.len().is_multiple_of(7) {
            return Err(StoreError::Protocol("wf_outbox: malformed take".into()));
        }
        let mut by_wf: HashMap<String, Vec<Taken>> = HashMap::new();
        let mut leases = Vec::with_capacity(flat.len() / 7);
        let mut orphans: Vec<Taken> = Vec::new();
        for c in flat.chunks(7) {
            let mut t = Taken {
                id: c[0].clone(),
                lease: c[1].clone(),
                workflow: c[2].clone(),
                step: c[3].clone(),
                state: c[4].clone(),
                body: c[5].clone(),
                seq: c[6].clone(),
            };
            leases.push((t.id.clone(), t.lease.clone()));
            if t.state.is_empty() {
                // The record is gone: its id names its workflow and step.
                let Some((w, s)) = t.id.split_once('.') else {
                    orphans.push(t); // names no workflow: nothing waits for it
                    continue;
                };
                t.workflow = w.to_owned();
                t.step = s.to_owned();
                t.state = "failed".into();
                t.body = gone_error();
                t.seq = GONE_SEQ.to_string();
            }
            by_wf.entry(t.workflow.clone()).or_default().push(t);
        }
        let n = leases.len();
        let applied = futures::stream::iter(by_wf)
            .map(|(wid, ends)| {
                let s = self.clone();
                async move {
                    let r = s.apply_ends(&wid, &ends).await;
                    (ends, r)
                }
            })
            .buffer_unordered(16)
            .collect::<Vec<_>>()
            .await;
        // One workflow's failure keeps only its own entries (taken again after the lease).
        let mut first_err = None;
        let mut inv = self.invoke_in(&OUTBOX, queue);
        inv.arg("done").arg(queue);
        let mut any = false;
        for e in &orphans {
            inv.arg(&e.id).arg(&e.lease);
            any = true;
        }
        for (ends, r) in applied {
            match r {
                Ok(()) => {
                    for e in &ends {
                        inv.arg(&e.id).arg(&e.lease);
                        any = true;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "workflow ends not applied; retried after their lease");
                    first_err.get_or_insert(e);
                }
            }
        }
        if any {
            let _: u64 = self.run(&inv).await?;
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(n),
        }
    }

    /// Applies `ends` to workflow `wid`, then creates and cancels what that asks.
    async fn apply_ends(&self, wid: &str, ends: &[Taken]) -> Result<(), StoreError> {
        let mut inv = self.workflow_op("apply", wid);
        for e in ends {
            inv.arg(&e.step).arg(&e.state).arg(&e.body).arg(&e.seq);
        }
        let applied = self.run_workflow_op(&inv).await?;
        if applied.state == "gone" {
            return Ok(()); // ended and expired: nothing is waiting for these
        }
        self.create_steps(
            wid,
            applied.traceparent.as_deref(),
            &applied.creates,
            &applied.sources,
        )
        .await?;
        self.cancel_tasks(&applied.cancels).await
    }

    /// Upkeep's look at up to `max` workflows per shard that nothing touched for
    /// [`WORKFLOW_STALL`](super::workflows::WORKFLOW_STALL): creates the steps that should
    /// exist, cancels what a cancel left, applies the state of every started step's task
    /// again (a task gone ends its step `failed`, so no workflow waits for one), and drops
    /// ended workflows whose hash expired from the listing. Returns how many it looked at.
    pub async fn sweep_workflows(&self, max: usize) -> Result<usize, StoreError> {
        let now = chrono::Utc::now().timestamp_millis();
        let mut looked = 0;
        for shard in 0..WORKFLOW_SHARDS {
            let mut c = self.conn.clone();
            // Both keys share the shard's tag: one slot, one round trip.
            let (stalled, expired): (Vec<String>, Vec<String>) = redis::pipe()
                .cmd("ZRANGE")
                .arg(self.layout.workflows_live(shard))
                .arg("-inf")
                .arg(now)
                .arg("BYSCORE")
                .arg("LIMIT")
                .arg(0)
                .arg(max)
                .cmd("ZRANGE")
                .arg(self.layout.workflows_ended(shard))
                .arg("-inf")
                .arg(now)
                .arg("BYSCORE")
                .arg("LIMIT")
                .arg(0)
                .arg(max)
                .query_async(&mut c)
                .await?;
            if !expired.is_empty() {
                let _: () = redis::pipe()
                    .cmd("ZREM")
                    .arg(self.layout.workflows_index(shard))
                    .arg(&expired)
                    .ignore()
                    .cmd("ZREM")
                    .arg(self.layout.workflows_ended(shard))
                    .arg(&expired)
                    .ignore()
                    .query_async(&mut c)
                    .await?;
            }
            for wid in stalled {
                self.advance_workflow(&wid).await?;
                looked += 1;
            }
        }
        Ok(looked)
    }

    /// `advance` for one workflow, and what it asks (see [`TaskStore::sweep_workflows`]).
    pub async fn advance_workflow(&self, wid: &str) -> Result<(), StoreError> {
        let a = self
            .run_workflow_op(&self.workflow_op("advance", wid))
            .await?;
        if a.state == "gone" {
            return Ok(());
        }
        let made = self
            .create_steps(wid, a.traceparent.as_deref(), &a.creates, &a.sources)
            .await?;
        self.mark_created(wid, &made).await?;
        self.cancel_tasks(&a.cancels).await?;
        if a.started.is_empty() {
            return Ok(());
        }
        // The started steps' tasks as they are now, applied again: the seq fence makes a
        // known end a no-op, and a missing record is the step's end.
        let now: Vec<Result<Taken, StoreError>> =
            futures::stream::iter(a.started.into_iter().map(|(step, queue)| {
                let id = crate::workflow::step_task_id(wid, &step);
                let key = self.layout.record(&queue, &id);
                let mut c = self.conn.clone();
                let wid = wid.to_owned();
                async move {
                    let f: [Option<String>; 4] = redis::cmd("HMGET")
                        .arg(key)
                        .arg(&["state", "result", "error", "wf_seq"])
                        .query_async(&mut c)
                        .await?;
                    let [state, result, error, seq] = f;
                    Ok(match state {
                        None => Taken {
                            id,
                            lease: String::new(),
                            workflow: wid.clone(),
                            step: step.clone(),
                            state: "failed".into(),
                            body: gone_error(),
                            seq: GONE_SEQ.to_string(),
                        },
                        Some(state) => Taken {
                            id,
                            lease: String::new(),
                            workflow: wid.clone(),
                            step: step.clone(),
                            body: if state == "succeeded" {
                                result.unwrap_or_default()
                            } else {
                                error.unwrap_or_default()
                            },
                            state,
                            seq: seq.unwrap_or_else(|| "0".into()),
                        },
                    })
                }
            }))
            .buffered(32)
            .collect()
            .await;
        let ends = now.into_iter().collect::<Result<Vec<_>, _>>()?;
        self.apply_ends(wid, &ends).await
    }
}
