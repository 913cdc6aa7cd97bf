-- Extends the leases of tasks this worker runs (XX: a lease already given up, because the
-- task ended or was taken over, is never resurrected) and reports which of them have a
-- cancel requested: the fallback for a missed cancel message.
-- ARGV[A]: queue (the ids of one call are of one queue's tasks), [A+1]: lease ms (from now,
--   by Redis's clock), [A+2..]: task ids
local queue = ARGV[A]
local until_ms = now_ms() + tonumber(ARGV[A + 1])
local running = state_index(queue, 'running')
local cancel = {}
for i = A + 2, #ARGV do
  local id = ARGV[i]
  redis.call('ZADD', running, 'XX', until_ms, id)
  if redis.call('HGET', record_key(queue, id), 'cancel_requested') == '1' then
    cancel[#cancel + 1] = id
  end
end
return cancel
