//! Expiry (`expire.lua`): Redis deletes a terminal record when its TTL runs out; this takes
//! its id out of its queue's indexes and turns the id's pointer into a tombstone (kept a
//! day), so a read can tell "expired" from "never existed".

use super::{StoreError, TaskStore, script::script};

static EXPIRE: std::sync::LazyLock<redis::Script> = script!("expire.lua");
static TOMBSTONE: std::sync::LazyLock<redis::Script> = script!("tombstone.lua");

/// How long a read of an expired id still says "expired" (410) rather than "unknown" (404).
const TOMBSTONE_TTL: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// What one `expire.lua` call did in a queue's slot.
#[derive(Debug)]
pub(super) struct Expired {
    /// Index entries looked at.
    pub handled: usize,
    /// Ids whose records expired (a cluster's second step still has to free their pointers).
    pub gone: Vec<String>,
}

impl TaskStore {
    /// Takes up to `slice` expired entries out of `queue`'s indexes and leaves each id a
    /// tombstone; returns how many index entries it looked at.
    pub async fn expire_indexes(&self, queue: &str, slice: usize) -> Result<usize, StoreError> {
        let e = self.expire_slot(queue, slice).await?;
        if self.is_cluster() {
            self.tombstone_gone(queue, &e).await?;
        }
        Ok(e.handled)
    }

    /// The first step, in the queue's slot.
    pub(super) async fn expire_slot(
        &self,
        queue: &str,
        slice: usize,
    ) -> Result<Expired, StoreError> {
        let keep = TOMBSTONE_TTL.as_millis() as u64;
        let mut inv = self.invoke_in(&EXPIRE, queue);
        inv.arg(queue).arg(slice).arg(keep);
        let reply: Vec<redis::Value> = self.run(&inv).await?;
        let mut it = reply.into_iter();
        let handled: usize = match it.next() {
            Some(v) => redis::from_redis_value(v)?,
            None => return Err(StoreError::Protocol("expire: empty reply".into())),
        };
        let gone: Vec<String> = it.map(redis::from_redis_value).collect::<Result<_, _>>()?;
        Ok(Expired { handled, gone })
    }

    /// A cluster's second step: the pointers live in their ids' own slots, one call each.
    pub(super) async fn tombstone_gone(&self, queue: &str, e: &Expired) -> Result<(), StoreError> {
        let keep = TOMBSTONE_TTL.as_millis() as u64;
        futures::future::try_join_all(e.gone.iter().map(|id| async move {
            let mut inv = self.invoke(&TOMBSTONE, &self.layout.pointer(id));
            inv.arg(id).arg(queue).arg(keep);
            self.run::<i64>(&inv).await
        }))
        .await?;
        Ok(())
    }
}
