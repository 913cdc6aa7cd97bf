-- Creates task records and enqueues them, or returns the record already stored under an id.
-- One call submits one task or a whole batch; idle workers of each queue are woken once.
-- On a cluster every task of one call is in one queue (the caller groups them).
-- ARGV[A]: task count, then per task:
--   id, queue, due ms (0 = now), field count n, n record field/value items
-- Returns one item per task: 1 (created) or the existing record's HGETALL.
local created = now_ms()
local out, woken = {}, {}
local i = A + 1
for t = 1, tonumber(ARGV[A]) do
  local id, queue, due, nf = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3])
  local made, owner = create_task(id, queue, due, created, ARGV, i + 4, i + 3 + nf)
  if made then
    if due == 0 then woken[queue] = true end
    out[t] = 1
  else
    out[t] = redis.call('HGETALL', record_key(owner, id))
  end
  i = i + 4 + nf
end
for queue in pairs(woken) do wake(queue) end
return out
