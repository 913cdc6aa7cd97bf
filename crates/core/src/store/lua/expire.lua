-- Removes expired records from the listing indexes, in slices. Redis deletes the record
-- itself when its TTL runs out; each terminal state index is scored by its records' expiry,
-- so the due entries are the first of each. A tombstone is left so a read of the id can
-- say it expired rather than never existed.
-- ARGV[A]: slice size, [A+1]: tombstones kept
local ms = now_ms()
local slice = tonumber(ARGV[A])
local handled = 0
for _, queue in ipairs(redis.call('SMEMBERS', QUEUES)) do
  for state in pairs(TERMINAL) do
    if handled >= slice then break end
    local idx = state_index(queue, state)
    for _, id in ipairs(redis.call('ZRANGEBYSCORE', idx, '-inf', ms, 'LIMIT', 0, slice - handled)) do
      local key = L.record .. id
      local cur = redis.call('HMGET', key, 'state', 'queue')
      if not cur[1] then
        redis.call('ZREM', idx, id)
        redis.call('ZREM', L.index, id)
        redis.call('ZREM', queue_index(queue), id)
        redis.call('ZADD', EXPIRED, ms, id)
      elseif cur[1] ~= state or cur[2] ~= queue then
        -- The id was submitted again after the old record expired: keep the new entries.
        redis.call('ZREM', idx, id)
        if cur[2] ~= queue then redis.call('ZREM', queue_index(queue), id) end
      else
        -- Not expired yet (Redis expires lazily, or the entry predates expiry scores):
        -- score it by the record's own expiry, so it is looked at again only then.
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
end
if handled > 0 then
  redis.call('ZREMRANGEBYRANK', EXPIRED, 0, -(tonumber(ARGV[A + 1]) + 1))
end
return handled
