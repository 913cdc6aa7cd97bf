-- Removes expired records from the listing indexes, in slices. Redis deletes the record
-- itself when its TTL runs out; this keeps the indexes as small as the live records, and
-- leaves a tombstone so a read of the id can say it expired rather than never existed.
-- ARGV[A]: slice size, [A+1]: tombstones kept
local ms = now_ms()
local due = redis.call('ZRANGEBYSCORE', EXPIRY, '-inf', ms, 'LIMIT', 0, tonumber(ARGV[A]))
local handled = 0
for _, member in ipairs(due) do
  local queue, state, id = string.match(member, '^([^|]*)|([^|]*)|(.*)$')
  local cur = redis.call('HMGET', L.record .. id, 'state', 'queue')
  if not cur[1] then
    redis.call('ZREM', EXPIRY, member)
    redis.call('ZREM', L.index, id)
    redis.call('ZREM', queue_index(queue), id)
    redis.call('ZREM', state_index(queue, state), id)
    redis.call('ZADD', EXPIRED, ms, id)
    handled = handled + 1
  elseif cur[1] ~= state or cur[2] ~= queue then
    -- The id was submitted again after the old record expired: keep the new entries.
    redis.call('ZREM', EXPIRY, member)
    if cur[2] ~= queue then redis.call('ZREM', queue_index(queue), id) end
    redis.call('ZREM', state_index(queue, state), id)
    handled = handled + 1
  end
  -- Otherwise the record is due but Redis has not expired it yet (same millisecond):
  -- leave the entry for the next pass.
end
if #due > 0 then
  redis.call('ZREMRANGEBYRANK', EXPIRED, 0, -(tonumber(ARGV[A + 1]) + 1))
end
return handled
