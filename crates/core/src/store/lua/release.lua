-- Gives back tasks a worker claimed but will not run (it is shutting down): each goes back
-- to `queued` at the head of its queue with the attempt it had, as if never fetched.
-- ARGV[A]: queue, [A+1]: now rfc3339, then pairs: id, the attempt its claim started
-- Returns how many were given back (a task no longer running that attempt is left alone).
local queue, now = ARGV[A], ARGV[A + 1]
local ms, back = now_ms(), 0
for i = #ARGV - 1, A + 2, -2 do
  local id, attempt = ARGV[i], ARGV[i + 1]
  local key = record_key(queue, id)
  local f = redis.call('HMGET', key, 'state', 'attempt')
  if f[1] == 'running' and f[2] == attempt then
    redis.call('HSET', key, 'state', 'queued', 'attempt', tonumber(attempt) - 1, 'updated_at', now)
    transition(key, id, queue, 'running', 'queued', ms)
    enqueue(queue, id, true)
    event(id, 'queued')
    back = back + 1
  end
end
if back > 0 then wake(queue) end
flush_events()
return back
