-- Extends the leases of tasks this worker runs (XX: a lease already given up, because the
-- task ended or was taken over, is never resurrected) and reports which of them have a
-- cancel requested: the fallback for a missed cancel message.
-- ARGV[A]: lease ms (from now, by Redis's clock), [A+1..]: task ids
local until_ms = now_ms() + tonumber(ARGV[A])
local cancel = {}
for i = A + 1, #ARGV do
  local id = ARGV[i]
  local f = redis.call('HMGET', L.record .. id, 'queue', 'cancel_requested')
  if f[1] then redis.call('ZADD', state_index(f[1], 'running'), 'XX', until_ms, id) end
  if f[2] == '1' then cancel[#cancel + 1] = id end
end
return cancel
