-- Queues again one queue's tasks whose time has come in one of two zsets:
--  mode 'delayed': scheduled or retrying tasks now due;
--  mode 'running': running tasks whose lease lapsed (their worker died), from the queue's
--  `running` index (scored by lease expiry); they go to the head of their queue, since
--  their attempt was already under way. Their claim is taken away: the lost worker's
--  later renewals and reports are refused (renew.lua tells it to stop).
-- Bounded per call, so a large backlog is moved in slices and no reply is ever huge.
-- ARGV[A]: queue, [A+1]: mode, [A+2]: now rfc3339, [A+3]: most tasks
local queue, mode, now, limit = ARGV[A], ARGV[A + 1], ARGV[A + 2], tonumber(ARGV[A + 3])
local ms = now_ms()
local src = (mode == 'running') and state_index(queue, 'running') or delayed_key(queue)
local ids = redis.call('ZRANGEBYSCORE', src, '-inf', ms, 'LIMIT', 0, limit)
local moved = 0
for _, id in ipairs(ids) do
  redis.call('ZREM', src, id)
  local key = record_key(queue, id)
  local f = redis.call('HMGET', key, 'state', 'attempt', 'max_attempts', 'worker', 'cancel_requested',
    'priority', 'concurrency_key')
  local state = f[1]
  local eligible = (mode == 'delayed' and (state == 'scheduled' or state == 'retrying'))
    or (mode == 'running' and state == 'running')
  if eligible then
    local to = 'queued'
    if mode == 'running' then
      -- Read defensively: a damaged record must not stop the slice half way.
      local attempt, max = tonumber(f[2]) or 0, tonumber(f[3]) or 1
      local err = cjson.encode({kind = 'worker_lost',
        message = 'worker ' .. (f[4] or '?') .. ' stopped renewing its lease during attempt ' .. attempt})
      if f[5] == '1' then
        to = 'cancelled'
        redis.call('HSET', key, 'state', to, 'claim', '', 'finished_at', now, 'updated_at', now,
          'error', cjson.encode({kind = 'cancelled', message = 'cancelled while its worker was lost'}))
      elseif attempt >= max then
        to = 'failed'
        redis.call('HSET', key, 'state', to, 'claim', '', 'error', err, 'finished_at', now, 'updated_at', now)
      else
        redis.call('HSET', key, 'state', to, 'claim', '', 'error', err, 'progress', '', 'updated_at', now)
      end
    else
      redis.call('HSET', key, 'state', to, 'next_attempt_at', '', 'progress', '', 'updated_at', now)
    end
    transition(key, id, queue, state, to, ms, nil, nil, f[7] or false)
    if to == 'queued' then
      enqueue(queue, id, mode == 'running', f[6])
      moved = moved + 1
    end
    event(id, to)
  end
end
if mode == 'running' then
  -- The safety net of concurrency keys: tasks waiting for a key that has room (a limit
  -- raised or removed, a hand-off a bounded unpark left for later) go back to the queue.
  for _, ck in ipairs(redis.call('SRANDMEMBER', keys_waiting(queue), 20)) do unpark(queue, ck) end
end
if moved > 0 then wake(queue) end
flush_events()
return {#ids, moved}
