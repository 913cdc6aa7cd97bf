//! The only code of the checker that knows how an attempt's writes are fenced: the calls
//! of the store that take or carry a claim (fetch, finish, progress, renew, release) and
//! the fence itself, read off a record. Everything else handles a [`Claim`] as an opaque
//! thing a fetch gave a worker, so moving the store to another fence changes this file.
//!
//! The fence: a claim is the task id with the token of the fetch that made it
//! (`Claimed::token`, kept as the record's `claim`), honoured while the task is `running`
//! under it.

use std::{collections::HashMap, time::Duration};

use chrono::Utc;
use errand_core::{
    StoreError, TaskStore,
    store::{AttemptEnd, Claimed, Held, Outcome, ProgressReport},
};

/// One claim as the worker holding it knows it: what its fetch returned.
#[derive(Debug, Clone)]
pub(crate) struct Claim {
    claimed: Claimed,
}

impl Claim {
    pub(crate) fn id(&self) -> &str {
        &self.claimed.id
    }

    pub(crate) fn queue(&self) -> &str {
        &self.claimed.queue
    }

    pub(crate) fn attempt(&self) -> u32 {
        self.claimed.attempt
    }

    pub(crate) fn max_attempts(&self) -> u32 {
        self.claimed.max_attempts
    }

    /// What names this claim in the checker's model: the task id and its token (a fetch
    /// sent again with its fetch token is answered with the same claims, the same tokens).
    pub(crate) fn key(&self) -> String {
        key(&self.claimed.id, &self.claimed.token)
    }

    /// For traces: `t3@2[f17.1]` (task, attempt, claim token).
    pub(crate) fn label(&self) -> String {
        format!(
            "{}@{}[{}]",
            self.claimed.id, self.claimed.attempt, self.claimed.token
        )
    }

    /// Whether the store's fence lets this claim write to the task whose record is `rec`.
    pub(crate) fn fence_accepts(&self, rec: &HashMap<String, String>) -> bool {
        rec.get("state").map(String::as_str) == Some("running")
            && rec.get("claim") == Some(&self.claimed.token)
    }

    fn held(&self) -> Held {
        Held {
            queue: self.claimed.queue.clone(),
            id: self.claimed.id.clone(),
            token: self.claimed.token.clone(),
        }
    }
}

/// A claim's name: task id and token.
fn key(id: &str, token: &str) -> String {
    format!("{id}|{token}")
}

/// What a renewal told its worker.
#[derive(Debug, Default)]
pub(crate) struct Renewed {
    /// Ids with a cancel requested.
    pub(crate) cancel: Vec<String>,
    /// Keys ([`Claim::key`]) of the claims the store says are no longer this worker's to
    /// run; `None`: the store does not say.
    pub(crate) lost: Option<Vec<String>>,
}

/// A fetch of up to `n` tasks of `queue` by `worker` under fetch token `token`: the claims
/// and how many entries were dropped.
pub(crate) async fn fetch(
    store: &TaskStore,
    queue: &str,
    n: usize,
    worker: &str,
    lease: Duration,
    token: &str,
) -> Result<(Vec<Claim>, usize), StoreError> {
    let f = store
        .fetch(queue, n, worker, lease, token, Utc::now())
        .await?;
    let claims = f
        .claimed
        .into_iter()
        .map(|claimed| Claim { claimed })
        .collect();
    Ok((claims, f.dropped))
}

/// Ends attempts in one group commit; per end, whether it was recorded.
pub(crate) async fn finish(
    store: &TaskStore,
    ends: &[(Claim, Outcome)],
) -> Result<Vec<bool>, StoreError> {
    let ends: Vec<AttemptEnd> = ends
        .iter()
        .map(|(c, outcome)| AttemptEnd {
            id: c.claimed.id.clone(),
            queue: c.claimed.queue.clone(),
            token: c.claimed.token.clone(),
            attempt: c.claimed.attempt,
            outcome: outcome.clone(),
            progress: None,
        })
        .collect();
    store.finish_many(&ends, Utc::now()).await
}

/// Progress reports in one group commit; per report, whether it was recorded.
pub(crate) async fn progress(
    store: &TaskStore,
    reports: &[(Claim, String)],
) -> Result<Vec<bool>, StoreError> {
    let reports: Vec<ProgressReport> = reports
        .iter()
        .map(|(c, json)| ProgressReport {
            id: c.claimed.id.clone(),
            queue: c.claimed.queue.clone(),
            token: c.claimed.token.clone(),
            json: json.clone(),
        })
        .collect();
    store.progress_many(&reports, Utc::now()).await
}

/// Renews the leases of every claim a worker holds.
pub(crate) async fn renew(
    store: &TaskStore,
    claims: &[Claim],
    lease: Duration,
) -> Result<Renewed, StoreError> {
    let held: Vec<Held> = claims.iter().map(Claim::held).collect();
    let r = store.renew_leases(&held, lease).await?;
    Ok(Renewed {
        cancel: r.cancel,
        lost: Some(r.lost.into_iter().map(|h| key(&h.id, &h.token)).collect()),
    })
}

/// Gives claims of `queue` back unrun; how many were still theirs to give.
pub(crate) async fn release(
    store: &TaskStore,
    queue: &str,
    claims: &[Claim],
) -> Result<usize, StoreError> {
    let claimed: Vec<Claimed> = claims.iter().map(|c| c.claimed.clone()).collect();
    store.release(queue, &claimed, Utc::now()).await
}
