//! Expiry (`expire.lua`): Redis deletes a terminal record when its TTL runs out; this takes
//! its id out of its queue's indexes, frees the id's pointer and leaves it a tombstone
//! (`tombstones`, kept `tasks.tombstone_secs`), so a read can tell "expired" from "never
//! existed". The same call drops undeliverable webhook outbox entries and, once the queue
//! holds nothing, takes it out of the queue set, so upkeep stops visiting it.
//!
//! On a cluster the pointers, tombstones and the queue set live in other slots: the queue's
//! call is followed by `tombstone.lua` per id (fenced by that call's ms, so a task submitted
//! again meanwhile keeps its pointer), `bury.lua` per tombstone shard, and for an empty queue
//! an SREM then `occupied.lua` (docs/scaling.md).

use super::{StoreError, TaskStore, script::script};

static EXPIRE: std::sync::LazyLock<redis::Script> = script!("expire.lua");
static FREE: std::sync::LazyLock<redis::Script> = script!("tombstone.lua");
static OCCUPIED: std::sync::LazyLock<redis::Script> = script!("occupied.lua");

/// What one `expire.lua` call did in a queue's slot.
#[derive(Debug)]
pub(super) struct Expired {
    /// Index entries looked at.
    pub handled: usize,
    /// The queue holds nothing (on a single Redis it already left the queue set).
    pub empty: bool,
    /// When the call ran (the queue's slot's clock): the fence of the pointer step.
    pub at_ms: i64,
    /// Ids whose records expired (a cluster's: their pointers are still to free).
    pub gone: Vec<String>,
}

impl TaskStore {
    /// Takes up to `slice` expired entries out of `queue`'s indexes and leaves each id a
    /// tombstone; prunes the queue from the queue set once it holds nothing. Returns how many
    /// index entries it looked at.
    pub async fn expire_indexes(&self, queue: &str, slice: usize) -> Result<usize, StoreError> {
        let e = self.expire_slot(queue, slice).await?;
        if self.is_cluster() {
            self.tombstone_gone(queue, &e).await?;
            if e.empty {
                self.prune(queue).await?;
            }
        }
        Ok(e.handled)
    }

    /// The first step, in the queue's slot (all of it on a single Redis).
    pub(super) async fn expire_slot(
        &self,
        queue: &str,
        slice: usize,
    ) -> Result<Expired, StoreError> {
        let mut inv = self.invoke_in(&EXPIRE, queue);
        inv.arg(queue).arg(slice).arg(self.retention.tombstone_ms());
        let reply: Vec<redis::Value> = self.run(&inv).await?;
        let mut it = reply.into_iter();
        let mut next = || {
            it.next()
                .ok_or_else(|| StoreError::Protocol("expire: short reply".into()))
        };
        let handled: usize = redis::from_redis_value(next()?)?;
        let empty: i64 = redis::from_redis_value(next()?)?;
        let at_ms: i64 = redis::from_redis_value(next()?)?;
        let gone: Vec<String> = it.map(redis::from_redis_value).collect::<Result<_, _>>()?;
        Ok(Expired {
            handled,
            empty: empty == 1,
            at_ms,
            gone,
        })
    }

    /// A cluster's second and third steps: frees each expired id's pointer in its own slot
    /// (unless the id's task was submitted again since), then writes the tombstones of the
    /// freed ones.
    pub(super) async fn tombstone_gone(&self, queue: &str, e: &Expired) -> Result<(), StoreError> {
        let freed = futures::future::try_join_all(
            e.gone
                .iter()
                .map(|id| self.free_pointer(id, queue, e.at_ms)),
        )
        .await?;
        let buried: Vec<&str> = e
            .gone
            .iter()
            .zip(freed)
            .filter(|(_, f)| *f)
            .map(|(id, _)| id.as_str())
            .collect();
        self.bury(&buried, e.at_ms).await
    }

    /// `tombstone.lua`: frees `id`'s pointer if it names `queue`'s task created before
    /// `fence` ms; true when the id is free.
    pub(super) async fn free_pointer(
        &self,
        id: &str,
        queue: &str,
        fence: i64,
    ) -> Result<bool, StoreError> {
        let mut inv = self.invoke(&FREE, &self.layout.pointer(id));
        inv.arg(id).arg(queue).arg(fence);
        Ok(self.run::<i64>(&inv).await? == 1)
    }

    /// A cluster's prune of a queue `expire.lua` found empty: out of the queue set (its own
    /// slot), then back in if the queue's slot says a submit landed meanwhile. A submit
    /// registers its queue before and after its create, so whichever order the steps
    /// interleave in, a queue holding a task ends in the set.
    pub(super) async fn prune(&self, queue: &str) -> Result<(), StoreError> {
        let mut c = self.conn.clone();
        redis::cmd("SREM")
            .arg(self.layout.queues())
            .arg(queue)
            .query_async::<()>(&mut c)
            .await?;
        let mut inv = self.invoke_in(&OCCUPIED, queue);
        inv.arg(queue);
        if self.run::<i64>(&inv).await? == 1 {
            self.register(&[queue]).await?;
        }
        Ok(())
    }
}
