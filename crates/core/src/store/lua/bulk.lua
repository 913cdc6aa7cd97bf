-- One slice of a bulk action (store/bulk.rs) on ids a listing matched: each is acted on as
-- its single-task route would (prelude's retry_task, cancel_task), so a task whose state
-- changed since it was listed is skipped, not forced. `delete` removes a terminal record
-- at once and leaves the rest to upkeep's expiry path (indexes, the id's pointer, its
-- tombstone: a deleted id reads as expired), the same on one Redis and on a cluster.
-- ARGV[A]: queue, [A+1]: action (retry|cancel|delete), [A+2]: now rfc3339, then the ids
-- Returns {done, skipped}
local queue, action, now = ARGV[A], ARGV[A + 1], ARGV[A + 2]
local ms = now_ms()
local done, skipped, woken = 0, 0, false
for i = A + 3, #ARGV do
  local id = ARGV[i]
  local ok
  if action == 'retry' then
    ok = retry_task(queue, id, now, ms) == 'queued'
    woken = woken or ok
  elseif action == 'cancel' then
    local v = cancel_task(queue, id, now, ms)
    ok = v == 'cancelled' or v == 'requested'
  else
    local key = record_key(queue, id)
    local state = redis.call('HGET', key, 'state')
    ok = state ~= nil and TERMINAL[state] == true
    if ok then
      redis.call('DEL', key)
      -- Due for upkeep's expiry now (its index is scored by record expiry).
      redis.call('ZADD', state_index(queue, state), ms - 1, id)
      event(id, 'deleted')
    end
  end
  if ok then done = done + 1 else skipped = skipped + 1 end
end
if woken then wake(queue) end
flush_events()
return {done, skipped}
