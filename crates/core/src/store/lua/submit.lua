-- Creates task records and enqueues them, or returns the record already stored under an id.
-- One call submits one task or a whole batch; idle workers of each queue are woken once.
-- On a cluster every task of one call is in one queue (the caller groups them).
-- ARGV[A]: task count, then per task:
--   id, queue, due ms (0 = now), expect (a cluster's claim found the pointer of this queue's
--   task created at that ms; '' = none: create_task), field count n, n record field/value items
-- Returns one item per task: {1, created ms} (created), {0, the existing task's created ms
-- or '', its HGETALL}, or {2} (a cluster's stale claim: create_task).
local created = now_ms()
local out, woken = {}, {}
local i = A + 1
for t = 1, tonumber(ARGV[A]) do
  local id, queue, due, expect, nf = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2]), ARGV[i + 3], tonumber(ARGV[i + 4])
  local made, owner = create_task(id, queue, due, created, ARGV, i + 5, i + 4 + nf, expect)
  if made then
    if due == 0 then woken[queue] = true end
    out[t] = {1, created}
  elseif made == false then
    out[t] = {0, redis.call('ZSCORE', queue_index(owner), id) or '', redis.call('HGETALL', record_key(owner, id))}
  else
    out[t] = {2}
  end
  i = i + 5 + nf
end
for queue in pairs(woken) do wake(queue) end
return out
