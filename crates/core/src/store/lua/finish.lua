-- Ends attempts. Only the attempt that holds a task's claim may end it (fenced by the claim
-- token fetch.lua made, never by the attempt number, which a manual retry starts again), so
-- a late or duplicate report can never move a task backwards or out of a terminal state.
-- The same report sent again (its reply was lost) is answered as the first was: the claim
-- is still on the record, the task no longer running. A failed attempt of a
-- task whose cancel was requested ends `cancelled`, not `retrying`. Ends reported at the
-- same moment by one worker process arrive together (group commit).
-- Every end of one call is of one queue's tasks.
-- ARGV[A]: queue, [A+1]: now rfc3339, then groups of 8: id, claim token, attempt (for the
--   history), outcome (succeeded|failed|retry|
--   cancelled), result json (succeeded) or error json (otherwise), retry delay ms (retry),
--   next attempt rfc3339 (retry), the attempt's last progress json ('' = none newer than
--   the record's: it rides along here instead of costing a write of its own first)
-- Returns one 1 (recorded, now or by an earlier send of this report) or 0 (the claim is
-- not the task's any more) per group.
local queue, now = ARGV[A], ARGV[A + 1]
local ms = now_ms()

local function finish(id, claim, attempt, outcome, body, delay, next_at, progress)
  local key = record_key(queue, id)
  local f = redis.call('HMGET', key, 'state', 'claim', 'started_ms', 'cancel_requested',
    'result_ttl_secs', 'callback', 'concurrency_key', 'workflow')
  if f[2] ~= claim or claim == '' then return 0 end
  if f[1] ~= 'running' then return 1 end
  if outcome == 'retry' and f[4] == '1' then outcome = 'cancelled' end
  if outcome == 'succeeded' then
    if progress ~= '' then
      redis.call('HSET', key, 'state', 'succeeded', 'result', body, 'finished_at', now, 'updated_at', now, 'progress', progress)
    else
      redis.call('HSET', key, 'state', 'succeeded', 'result', body, 'finished_at', now, 'updated_at', now)
    end
  elseif outcome == 'retry' then
    redis.call('HSET', key, 'state', 'retrying', 'error', body, 'next_attempt_at', next_at, 'updated_at', now)
    if progress ~= '' then redis.call('HSET', key, 'progress', progress) end
    redis.call('ZADD', delayed_key(queue), ms + (tonumber(delay) or 0), id)
    outcome = 'retrying'
  else
    redis.call('HSET', key, 'state', outcome, 'error', body, 'finished_at', now, 'updated_at', now)
    if progress ~= '' then redis.call('HSET', key, 'progress', progress) end
  end
  transition(key, id, queue, 'running', outcome, ms, f[5], f[6] or false, f[7] or false, f[8] or false)
  count_finish(key, queue, outcome, ms, attempt, body, f[3])
  event(id, outcome)
  return 1
end

local out = {}
for i = A + 2, #ARGV, 8 do
  out[#out + 1] = finish(ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4],
    ARGV[i + 5], ARGV[i + 6], ARGV[i + 7])
end
flush_stats()
flush_events()
return out
