-- A cluster's last step of pruning a queue from the queue set (expire.lua found it empty,
-- the caller then removed it from the set, which lives in another slot): whether the queue
-- holds something again (a submit landed in between), so the caller puts it back.
-- ARGV[A]: queue
-- Returns 1 (holds a live record, a pending delivery, or is paused) or 0.
local q = ARGV[A]
if redis.call('ZCARD', queue_index(q)) > 0 or redis.call('ZCARD', webhook_due(q)) > 0
    or redis.call('EXISTS', paused_key(q)) == 1 then
  return 1
end
return 0
