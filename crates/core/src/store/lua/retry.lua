-- Runs a failed or cancelled task again, with a fresh budget of attempts.
-- ARGV[A]: queue (where the id's pointer says it lives), [A+1]: id, [A+2]: now rfc3339
-- Returns {'gone'} | {'conflict', state} | {'queued', fields}
local queue, id, now = ARGV[A], ARGV[A + 1], ARGV[A + 2]
local key = record_key(queue, id)
local state = redis.call('HGET', key, 'state')
if not state then return {'gone'} end
if state ~= 'failed' and state ~= 'cancelled' then return {'conflict', state} end
redis.call('HSET', key, 'state', 'queued', 'attempt', 0, 'claim', '', 'cancel_requested', '',
  'result', '', 'error', '', 'progress', '', 'started_at', '', 'finished_at', '', 'next_attempt_at', '',
  'updated_at', now)
transition(key, id, queue, state, 'queued', now_ms())
enqueue(queue, id, false, redis.call('HGET', key, 'priority'))
wake(queue)
event(id, 'queued')
flush_events()
return {'queued', redis.call('HGETALL', key)}
