-- Removes one queue's expired records from its indexes, in slices. Redis deletes the record
-- itself when its TTL runs out; each terminal state index is scored by its records' expiry,
-- so the due entries are the first of each. Each expired id's pointer becomes a tombstone,
-- so a read of the id can say it expired rather than never existed: here on a single
-- Redis, by the caller on a cluster (the pointers live in other slots).
-- ARGV[A]: queue, [A+1]: slice size, [A+2]: tombstone ms
-- Returns {entries handled, then the ids that expired}
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
      gone[#gone + 1] = id
      if CROSS and redis.call('GET', pointer_key(id)) == queue then
        redis.call('SET', pointer_key(id), '~' .. ms, 'PX', keep)
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
local out = {handled}
for _, id in ipairs(gone) do out[#out + 1] = id end
return out
