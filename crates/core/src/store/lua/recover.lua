-- Queues again tasks whose time has come in one of two zsets:
--  mode 'delayed': scheduled or retrying tasks now due;
--  mode 'running': running tasks whose lease lapsed (their worker died), from every queue's
--  `running` index (scored by lease expiry); they go to the head of their queue, since
--  their attempt was already under way.
-- Bounded per call, so a large backlog is moved in slices and no reply is ever huge.
-- ARGV[A]: mode, [A+1]: now rfc3339, [A+2]: most tasks
local mode, now, limit = ARGV[A], ARGV[A + 1], tonumber(ARGV[A + 2])
local ms = now_ms()
local ids, srcs = {}, {}
if mode == 'running' then
  for _, q in ipairs(redis.call('SMEMBERS', QUEUES)) do
    if #ids >= limit then break end
    local src = state_index(q, 'running')
    for _, id in ipairs(redis.call('ZRANGEBYSCORE', src, '-inf', ms, 'LIMIT', 0, limit - #ids)) do
      local n = #ids + 1
      ids[n], srcs[n] = id, src
    end
  end
else
  ids = redis.call('ZRANGEBYSCORE', L.delayed, '-inf', ms, 'LIMIT', 0, limit)
end
local moved, woken = 0, {}
for i, id in ipairs(ids) do
  redis.call('ZREM', srcs[i] or L.delayed, id)
  local key = L.record .. id
  local f = redis.call('HMGET', key, 'state', 'queue', 'attempt', 'max_attempts', 'worker', 'cancel_requested')
  local state, queue = f[1], f[2]
  local eligible = (mode == 'delayed' and (state == 'scheduled' or state == 'retrying'))
    or (mode == 'running' and state == 'running')
  if eligible then
    local to = 'queued'
    if mode == 'running' then
      local attempt = tonumber(f[3])
      local err = cjson.encode({kind = 'worker_lost',
        message = 'worker ' .. (f[5] or '?') .. ' stopped renewing its lease during attempt ' .. attempt})
      if f[6] == '1' then
        to = 'cancelled'
        redis.call('HSET', key, 'state', to, 'finished_at', now, 'updated_at', now,
          'error', cjson.encode({kind = 'cancelled', message = 'cancelled while its worker was lost'}))
      elseif attempt >= tonumber(f[4]) then
        to = 'failed'
        redis.call('HSET', key, 'state', to, 'error', err, 'finished_at', now, 'updated_at', now)
      else
        redis.call('HSET', key, 'state', to, 'error', err, 'progress', '', 'updated_at', now)
      end
    else
      redis.call('HSET', key, 'state', to, 'next_attempt_at', '', 'progress', '', 'updated_at', now)
    end
    transition(key, id, queue, state, to, ms)
    if to == 'queued' then
      enqueue(queue, id, mode == 'running')
      woken[queue] = true
      moved = moved + 1
    end
    event(id, to)
  end
end
for queue in pairs(woken) do wake(queue) end
flush_events()
return {#ids, moved}
