-- Runs a failed or cancelled task again, with a fresh budget of attempts (prelude's
-- `retry_task`).
-- ARGV[A]: queue (where the id's pointer says it lives), [A+1]: id, [A+2]: now rfc3339
-- Returns {'gone'} | {'conflict', state} | {'queued', fields}
local queue, id, now = ARGV[A], ARGV[A + 1], ARGV[A + 2]
local verdict, state = retry_task(queue, id, now, now_ms())
if verdict ~= 'queued' then return {verdict, state} end
wake(queue)
flush_events()
return {'queued', redis.call('HGETALL', record_key(queue, id))}
