-- Cancels a task. A task that has not started (scheduled, queued, retrying) is cancelled
-- here and never starts: its ready-list entry, if any, is dropped when a worker fetches it. A
-- running task is flagged and its worker told over pub/sub (with the lease renewal as a
-- fallback); the worker stops it and ends it `cancelled`.
-- ARGV[A]: id, [A+1]: now rfc3339
-- Returns {'gone'} | {'terminal', state} | {'requested', fields} | {'cancelled', fields}
local id, now = ARGV[A], ARGV[A + 1]
local key = L.record .. id
local f = redis.call('HMGET', key, 'state', 'queue')
local state, queue = f[1], f[2]
if not state then return {'gone'} end
if TERMINAL[state] then return {'terminal', state} end
if state == 'running' then
  redis.call('HSET', key, 'cancel_requested', '1', 'updated_at', now)
  redis.call('PUBLISH', L.chan .. 'cancel', id)
  event(id, 'cancel_requested')
  flush_events()
  return {'requested', redis.call('HGETALL', key)}
end
redis.call('ZREM', L.delayed, id)
redis.call('HSET', key, 'state', 'cancelled', 'finished_at', now, 'updated_at', now,
  'next_attempt_at', '', 'error', cjson.encode({kind = 'cancelled', message = 'cancelled before it ran'}))
transition(key, id, queue, state, 'cancelled', now_ms())
event(id, 'cancelled')
flush_events()
return {'cancelled', redis.call('HGETALL', key)}
