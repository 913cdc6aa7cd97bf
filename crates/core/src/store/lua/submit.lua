-- Creates task records and enqueues them, or returns the record already stored under an id.
-- One call submits one task or a whole batch; idle workers of each queue are woken once.
-- On a cluster every task of one call is in one queue (the caller groups them).
-- A task with a unique key is created only if no live task of its queue holds the key: the
-- key names the task that took it, for the window (its TTL), and a submit inside the window
-- answers that task instead (docs/flow-control.md). A key whose task is gone (deleted, or
-- expired before the window) is free.
-- ARGV[A]: task count, then per task:
--   id, queue, due ms (0 = now), expect (a cluster's claim found the pointer of this queue's
--   task created at that ms; '' = none: create_task), unique key ('' = none), its window
--   ms, field count n, n record field/value items
-- Returns one item per task: {1, created ms} (created), {0, the existing task's created ms
-- or '', its HGETALL}, {2} (a cluster's stale claim: create_task), or {3, the created ms
-- or '' and the HGETALL of the task holding the unique key}.
local created = now_ms()
local out, woken = {}, {}
local i = A + 1
for t = 1, tonumber(ARGV[A]) do
  local id, queue, due, expect = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2]), ARGV[i + 3]
  local ukey, window, nf = ARGV[i + 4], ARGV[i + 5], tonumber(ARGV[i + 6])
  local holder
  -- An id that names a task already is answered as such (create_task), key or not.
  if ukey ~= '' and redis.call('EXISTS', record_key(queue, id)) == 0 then
    holder = redis.call('GET', unique_key(queue, ukey))
    if holder and redis.call('EXISTS', record_key(queue, holder)) == 0 then
      holder = nil
    end
  end
  if holder then
    out[t] = {3, redis.call('ZSCORE', queue_index(queue), holder) or '',
      redis.call('HGETALL', record_key(queue, holder))}
  else
    local made, owner = create_task(id, queue, due, created, ARGV, i + 7, i + 6 + nf, expect)
    if made then
      if due == 0 then woken[queue] = true end
      if ukey ~= '' then redis.call('SET', unique_key(queue, ukey), id, 'PX', window) end
      out[t] = {1, created}
    elseif made == false then
      out[t] = {0, redis.call('ZSCORE', queue_index(owner), id) or '', redis.call('HGETALL', record_key(owner, id))}
    else
      out[t] = {2}
    end
  end
  i = i + 7 + nf
end
for queue in pairs(woken) do wake(queue) end
return out
