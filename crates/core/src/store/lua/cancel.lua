-- Cancels a task (prelude's `cancel_task`). A task that has not started (scheduled, queued,
-- retrying) is cancelled here and never starts: its ready-list entry, if any, is dropped
-- when a worker fetches it. A running task is flagged and its worker told over pub/sub
-- (with the lease renewal as a fallback); the worker stops it and ends it `cancelled`.
-- ARGV[A]: queue (where the id's pointer says it lives), [A+1]: id, [A+2]: now rfc3339
-- Returns {'gone'} | {'terminal', state} | {'requested', fields} | {'cancelled', fields}
local queue, id, now = ARGV[A], ARGV[A + 1], ARGV[A + 2]
local verdict, state = cancel_task(queue, id, now, now_ms())
flush_events()
if verdict == 'gone' or verdict == 'terminal' then return {verdict, state} end
return {verdict, redis.call('HGETALL', record_key(queue, id))}
