//! Leases of running tasks (`renew.lua`): a lease is the task's score in its queue's
//! `running` index, so renewing one is one ZADD and a lapsed one is found by score. Renewal
//! is fenced by the claim token, and its answer tells the worker which claims it lost.

use std::time::Duration;

use super::{
    StoreError, TaskStore,
    script::{by_queue, script},
};

static RENEW: std::sync::LazyLock<redis::Script> = script!("renew.lua");
/// Most claims renewed in one script call: a process running thousands of tasks of a queue
/// renews them in several short calls rather than one long one.
const RENEW_SLICE: usize = 500;

/// A claim a worker holds: the task and the token of its attempt.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Held {
    /// The task's queue (its hash slot).
    pub queue: String,
    /// The task id.
    pub id: String,
    /// The attempt's claim token.
    pub token: String,
}

/// What a renewal found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Renewed {
    /// Held tasks (ids) whose cancel was requested: stop them, they end `cancelled`.
    pub cancel: Vec<String>,
    /// Claims the tasks no longer hold (their lease lapsed and they were recovered, given
    /// back, or retried): stop those attempts at once, nothing they report is recorded.
    pub lost: Vec<Held>,
}

impl TaskStore {
    /// Extends the leases of the claims this process holds to `lease` from now, by Redis's
    /// clock (a claim the task no longer holds is never extended), and says which have a
    /// cancel requested and which are lost.
    pub async fn renew_leases(
        &self,
        held: &[Held],
        lease: Duration,
    ) -> Result<Renewed, StoreError> {
        let groups = by_queue(held, |h| h.queue.as_str());
        let calls = groups.iter().flat_map(|(q, idx)| {
            idx.chunks(RENEW_SLICE).map(move |chunk| async move {
                let mut inv = self.invoke_in(&RENEW, q);
                inv.arg(*q).arg(lease.as_millis() as u64);
                for &n in chunk {
                    inv.arg(&held[n].id).arg(&held[n].token);
                }
                let (cancel, lost): (Vec<String>, Vec<usize>) = self.run(&inv).await?;
                let lost = lost
                    .into_iter()
                    .filter_map(|at| chunk.get(at.checked_sub(1)?).map(|&n| held[n].clone()))
                    .collect::<Vec<_>>();
                Ok::<_, StoreError>(Renewed { cancel, lost })
            })
        });
        let answers = futures::future::try_join_all(calls).await?;
        Ok(answers.into_iter().fold(Renewed::default(), |mut all, r| {
            all.cancel.extend(r.cancel);
            all.lost.extend(r.lost);
            all
        }))
    }
}
