-- Ends an attempt. Only the attempt that owns the task may end it, so a late or duplicate
-- report can never move a task backwards or out of a terminal state. A failed attempt of a
-- task whose cancel was requested ends `cancelled`, not `retrying`.
-- ARGV[A]: id, [A+1]: attempt, [A+2]: outcome (succeeded|failed|retry|cancelled),
--   [A+3]: now rfc3339, [A+4]: result json (succeeded) or error json (otherwise),
--   [A+5]: next attempt ms (retry), [A+6]: next attempt rfc3339 (retry)
local id, outcome, now = ARGV[A], ARGV[A + 2], ARGV[A + 3]
local key = L.record .. id
local f = redis.call('HMGET', key, 'state', 'attempt', 'queue', 'cancel_requested')
if f[1] ~= 'running' or f[2] ~= ARGV[A + 1] then return 0 end
local ms = now_ms()
redis.call('ZREM', L.running, id)
if outcome == 'retry' and f[4] == '1' then outcome = 'cancelled' end
if outcome == 'succeeded' then
  redis.call('HSET', key, 'state', 'succeeded', 'result', ARGV[A + 4], 'finished_at', now, 'updated_at', now)
elseif outcome == 'retry' then
  redis.call('HSET', key, 'state', 'retrying', 'error', ARGV[A + 4], 'next_attempt_at', ARGV[A + 6], 'updated_at', now)
  redis.call('ZADD', L.delayed, ARGV[A + 5], id)
  outcome = 'retrying'
else
  redis.call('HSET', key, 'state', outcome, 'error', ARGV[A + 4], 'finished_at', now, 'updated_at', now)
end
transition(key, id, f[3], 'running', outcome, ms)
publish_event(id, outcome)
return 1
