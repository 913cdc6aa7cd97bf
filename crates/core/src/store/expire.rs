//! Expiry (`expire.lua`): Redis deletes a terminal record when its TTL runs out; this takes
//! its id out of the indexes and remembers it as expired (a bounded tombstone set).

use super::{StoreError, TaskStore, script::script};

static EXPIRE: std::sync::LazyLock<redis::Script> = script!("expire.lua");

/// How many expired ids are remembered, so reading one says "expired" rather than "unknown".
const TOMBSTONES: usize = 10_000;

impl TaskStore {
    /// Removes expired records from the indexes; returns how many entries were handled.
    pub async fn expire_indexes(&self, slice: usize) -> Result<usize, StoreError> {
        let mut inv = self.invoke(&EXPIRE);
        inv.arg(slice).arg(TOMBSTONES);
        self.run(&inv).await
    }
}
