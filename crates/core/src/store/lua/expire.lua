-- Removes one queue's expired records from its indexes, in slices. Redis deletes the record
-- itself when its TTL runs out; each terminal state index is scored by its records' expiry,
-- so the due entries are the first of each. Each expired id's pointer is freed and a
-- tombstone (prelude's bury) says it expired, so a read can tell "expired" from "never
-- existed" for tasks.tombstone_secs: here on a single Redis; on a cluster the caller does
-- both (the pointers and tombstones live in other slots), fenced by this call's ms.
-- Then the queue's outbox entries whose delivery expired undelivered (no worker with
-- webhook secrets serves the queue) are dropped, and once the queue holds nothing (no live
-- record, no pending delivery or workflow end, not paused) its dead ready-list, delayed, priority, throttled
-- and key-waiting entries go and,
-- on a single Redis, it leaves the queue set (a cluster's caller prunes it, docs/scaling.md).
-- ARGV[A]: queue, [A+1]: slice size, [A+2]: tombstone ms (0 = none)
-- Returns {entries handled, 1 if the queue holds nothing, this call's ms, then the ids that
-- expired (a cluster's; empty on a single Redis)}
local queue = ARGV[A]
local ms = now_ms()
local slice, keep = tonumber(ARGV[A + 1]), tonumber(ARGV[A + 2])
local handled, gone = 0, {}
for state in pairs(TERMINAL) do
  if handled >= slice then break end
  local idx = state_index(queue, state)
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', idx, '-inf', ms, 'LIMIT', 0, slice - handled)) do
    local key = record_key(queue, id)
    local cur = redis.call('HGET', key, 'state')
    if not cur then
      redis.call('ZREM', idx, id)
      redis.call('ZREM', queue_index(queue), id)
      if CROSS then
        local p = redis.call('GET', pointer_key(id))
        if not p then
          bury(id, ms, keep)
        elseif string.sub(p, 1, 1) ~= '~' and pointer_parts(p) == queue then
          redis.call('DEL', pointer_key(id))
          bury(id, ms, keep)
        end
      else
        gone[#gone + 1] = id
      end
    elseif cur ~= state then
      -- The id was submitted again after the old record expired: keep the new entries.
      redis.call('ZREM', idx, id)
    else
      -- Not expired yet (Redis expires lazily): score it by the record's own expiry, so it
      -- is looked at again only then.
      local left = redis.call('PTTL', key)
      if left < 0 then
        left = (tonumber(redis.call('HGET', key, 'result_ttl_secs')) or 86400) * 1000
        redis.call('PEXPIRE', key, left)
      end
      redis.call('ZADD', idx, ms + math.max(left, 1), id)
    end
    handled = handled + 1
  end
end
-- Deliveries are kept WEBHOOK_KEEP after their task ended (and due from then on): an entry
-- older than that whose hash is gone was never delivered and never will be.
local due = webhook_due(queue)
for _, did in ipairs(redis.call('ZRANGEBYSCORE', due, '-inf', ms - WEBHOOK_KEEP, 'LIMIT', 0, slice)) do
  if redis.call('EXISTS', webhook_delivery(queue, did)) == 0 then redis.call('ZREM', due, did) end
end
local empty = 0
if handled < slice and redis.call('ZCARD', queue_index(queue)) == 0
    and redis.call('ZCARD', due) == 0 and redis.call('EXISTS', paused_key(queue)) == 0
    and redis.call('EXISTS', wf_outbox(queue)) == 0 then
  -- Every live task is in the listing index: what the ready list, the delayed set or a
  -- state index still holds belongs to no task.
  redis.call('DEL', ready_list(queue), delayed_key(queue), throttled_key(queue), pass_key(queue))
  for _, b in ipairs(redis.call('SMEMBERS', bands_key(queue))) do
    redis.call('DEL', band_list(queue, tonumber(b)))
  end
  for _, ck in ipairs(redis.call('SMEMBERS', keys_waiting(queue))) do
    redis.call('DEL', key_waiting(queue, ck), key_running(queue, ck))
  end
  redis.call('DEL', bands_key(queue), keys_waiting(queue))
  for _, s in ipairs({'queued', 'scheduled', 'running', 'retrying', 'succeeded', 'failed', 'cancelled'}) do
    redis.call('DEL', state_index(queue, s))
  end
  if CROSS then redis.call('SREM', QUEUES, queue) end
  empty = 1
end
local out = {handled, empty, ms}
for _, id in ipairs(gone) do out[#out + 1] = id end
return out
