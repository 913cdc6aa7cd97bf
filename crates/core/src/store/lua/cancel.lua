-- Cancels a task. A task that has not started (scheduled, queued, retrying) is cancelled
-- here and never starts: its ready-list entry, if any, is dropped when a worker fetches it. A
-- running task is flagged and its worker told over pub/sub (with the lease renewal as a
-- fallback); the worker stops it and ends it `cancelled`.
-- ARGV[A]: queue (where the id's pointer says it lives), [A+1]: id, [A+2]: now rfc3339
-- Returns {'gone'} | {'terminal', state} | {'requested', fields} | {'cancelled', fields}
local queue, id, now = ARGV[A], ARGV[A + 1], ARGV[A + 2]
local key = record_key(queue, id)
local state = redis.call('HGET', key, 'state')
if not state then return {'gone'} end
if TERMINAL[state] then return {'terminal', state} end
if state == 'running' then
  redis.call('HSET', key, 'cancel_requested', '1', 'updated_at', now)
  redis.call('PUBLISH', P .. 'cancel', id)
  event(id, 'cancel_requested')
  flush_events()
  return {'requested', redis.call('HGETALL', key)}
end
redis.call('ZREM', delayed_key(queue), id)
redis.call('HSET', key, 'state', 'cancelled', 'finished_at', now, 'updated_at', now,
  'next_attempt_at', '', 'error', cjson.encode({kind = 'cancelled', message = 'cancelled before it ran'}))
transition(key, id, queue, state, 'cancelled', now_ms())
event(id, 'cancelled')
flush_events()
return {'cancelled', redis.call('HGETALL', key)}
