//! Tombstones: for `tasks.tombstone_secs` after its record expired, an id reads as expired
//! (404 `task-expired`) rather than unknown. Each is a field (id -> expiry ms) of a hash per
//! shard of ids and time bucket, the bucket with its own expiry (`bury` in
//! `lua/prelude.lua`, which holds the same arithmetic as here): about 60 bytes an id where a
//! key of its own cost 260. A single Redis writes them inside `expire.lua`; a cluster's
//! upkeep with `bury.lua` in the shard's slot, after `tombstone.lua` freed the pointer.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::{StoreError, TaskStore, script::script};

static BURY: std::sync::LazyLock<redis::Script> = script!("bury.lua");
static PROBE: std::sync::LazyLock<redis::Script> = script!("tomb_get.lua");

/// Shards of ids (`TOMB_SHARDS`): spread over a cluster's slots, and few enough ids per hash
/// and bucket (up to ~1M expiries an hour at one-hour buckets) that Redis keeps each a
/// compact listpack (`hash-max-listpack-entries`, 512 by default).
const SHARDS: u64 = 2048;

/// The shard of `id` (`tomb_shard`).
pub(super) fn shard(id: &str) -> u64 {
    id.bytes()
        .fold(0u64, |h, b| (h * 31 + u64::from(b)) % 2_147_483_647)
        % SHARDS
}

/// Bucket width in ms for tombstones kept `keep_ms` (`tomb_width`): a 24th of it, at least a
/// minute, at most an hour. A read probes at most 25 buckets; a bucket outlives its last
/// tombstone by at most its width.
pub(super) fn width_ms(keep_ms: u64) -> u64 {
    (keep_ms / 24_000).clamp(60, 3600) * 1000
}

impl TaskStore {
    /// When `id`'s record expired, while its tombstone lasts.
    pub(super) async fn tombstone(&self, id: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        let keep = self.retention.tombstone_ms();
        if keep == 0 {
            return Ok(None);
        }
        let w = width_ms(keep);
        let mut inv = self.invoke(&PROBE, &self.layout.tombstones(shard(id), w / 1000, 0));
        inv.arg(id).arg(keep);
        let at: Option<i64> = self.run(&inv).await?;
        Ok(at.and_then(DateTime::<Utc>::from_timestamp_millis))
    }

    /// A cluster's tombstones for `ids`, expired at `at_ms`: one call per shard.
    pub(super) async fn bury(&self, ids: &[&str], at_ms: i64) -> Result<(), StoreError> {
        let keep = self.retention.tombstone_ms();
        if keep == 0 || ids.is_empty() {
            return Ok(());
        }
        let w = width_ms(keep);
        let mut by_shard: HashMap<u64, Vec<&str>> = HashMap::new();
        for id in ids {
            by_shard.entry(shard(id)).or_default().push(id);
        }
        futures::future::try_join_all(by_shard.into_iter().map(|(s, ids)| async move {
            let bucket = at_ms.max(0) as u64 / w;
            let mut inv = self.invoke(&BURY, &self.layout.tombstones(s, w / 1000, bucket));
            inv.arg(keep).arg(at_ms);
            for id in ids {
                inv.arg(id);
            }
            self.run::<i64>(&inv).await
        }))
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Layout;

    /// The prelude's shard, width and key for a tombstone are this file's and the layout's.
    #[tokio::test]
    async fn the_scripts_tombstone_keys_are_the_layouts() {
        let redis = errand_testkit::RedisServer::start().await;
        let l = Layout::new("drift");
        let probe = redis::Script::new(concat!(
            include_str!("lua/prelude.lua"),
            "\nlocal out = {}\
             \nfor _, id in ipairs({'T1', '01a2385b-3b44-75a5-bc40-4b3d6b90ff1a', 'order:42'}) do\
             \n  for _, keep in ipairs({60000, 3600000, 86400000, 604800000}) do\
             \n    local w = tomb_width(keep)\
             \n    out[#out + 1] = tomb_key(tomb_shard(id), w, math.floor(1760000000000 / w))\
             \n  end\
             \nend\
             \nreturn out"
        ));
        let mut inv = probe.prepare_invoke();
        for a in l.script_head(true) {
            inv.arg(a);
        }
        let mut c = redis.conn().await;
        let derived: Vec<String> = inv.invoke_async(&mut c).await.unwrap();
        let mut named = Vec::new();
        for id in ["T1", "01a2385b-3b44-75a5-bc40-4b3d6b90ff1a", "order:42"] {
            for keep in [60_000u64, 3_600_000, 86_400_000, 604_800_000] {
                let w = width_ms(keep);
                named.push(l.tombstones(shard(id), w / 1000, 1_760_000_000_000 / w));
            }
        }
        assert_eq!(derived, named);
    }
}
