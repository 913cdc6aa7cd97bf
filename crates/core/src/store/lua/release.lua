-- Gives back tasks a worker claimed but will not run (it is shutting down): each goes back
-- to `queued` at the head of its queue with the attempt it had, as if never fetched, unless
-- its cancel was requested meanwhile: that one ends `cancelled` here, never to run.
-- ARGV[A]: queue, [A+1]: now rfc3339, then pairs: id, claim token
-- Returns how many were given back or cancelled (a task that no longer holds the claim is
-- left alone).
local queue, now = ARGV[A], ARGV[A + 1]
local ms, back, requeued = now_ms(), 0, 0
for i = #ARGV - 1, A + 2, -2 do
  local id, claim = ARGV[i], ARGV[i + 1]
  local key = record_key(queue, id)
  local f = redis.call('HMGET', key, 'state', 'claim', 'attempt', 'cancel_requested', 'priority',
    'concurrency_key')
  if f[1] == 'running' and f[2] == claim then
    if f[4] == '1' then
      redis.call('HSET', key, 'state', 'cancelled', 'claim', '', 'finished_at', now,
        'updated_at', now, 'error', cjson.encode({kind = 'cancelled', message = 'cancelled before it ran'}))
      transition(key, id, queue, 'running', 'cancelled', ms, nil, nil, f[6] or false)
      event(id, 'cancelled')
    else
      redis.call('HSET', key, 'state', 'queued', 'claim', '',
        'attempt', math.max((tonumber(f[3]) or 1) - 1, 0), 'updated_at', now)
      transition(key, id, queue, 'running', 'queued', ms, nil, nil, f[6] or false)
      enqueue(queue, id, true, f[5])
      event(id, 'queued')
      requeued = requeued + 1
    end
    back = back + 1
  end
end
if requeued > 0 then wake(queue) end
flush_events()
return back
