-- Queues again (as a new apalis job) tasks whose time has come in one of two zsets:
--  mode 'delayed': scheduled or retrying tasks now due;
--  mode 'running': running tasks whose lease lapsed (their worker died), from every queue's
--  `running` index (scored by lease expiry).
-- Bounded per call, so a large backlog is moved in slices and no reply is ever huge.
-- ARGV[A]: mode, [A+1]: now ms, [A+2]: now rfc3339, [A+3..]: fresh job ids (one per slot)
local mode, now_ms, now = ARGV[A], ARGV[A + 1], ARGV[A + 2]
local limit = #ARGV - (A + 2)
local ids, srcs = {}, {}
if mode == 'running' then
  for _, q in ipairs(redis.call('SMEMBERS', QUEUES)) do
    if #ids >= limit then break end
    local src = state_index(q, 'running')
    for _, id in ipairs(redis.call('ZRANGEBYSCORE', src, '-inf', now_ms, 'LIMIT', 0, limit - #ids)) do
      local n = #ids + 1
      ids[n], srcs[n] = id, src
    end
  end
else
  ids = redis.call('ZRANGEBYSCORE', L.delayed, '-inf', now_ms, 'LIMIT', 0, limit)
end
local moved, woken = 0, {}
local ms = tonumber(now_ms)
for i, id in ipairs(ids) do
  redis.call('ZREM', srcs[i] or L.delayed, id)
  local key = L.record .. id
  local f = redis.call('HMGET', key, 'state', 'queue', 'attempt', 'max_attempts', 'worker', 'cancel_requested')
  local state, queue = f[1], f[2]
  local eligible = (mode == 'delayed' and (state == 'scheduled' or state == 'retrying'))
    or (mode == 'running' and state == 'running')
  if eligible then
    local jid = ARGV[A + 2 + i]
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
        redis.call('HSET', key, 'state', to, 'error', err, 'job', jid, 'updated_at', now)
      end
    else
      redis.call('HSET', key, 'state', to, 'job', jid, 'next_attempt_at', '', 'updated_at', now)
    end
    transition(key, id, queue, state, to, ms)
    if to == 'queued' then
      enqueue_job(queue, id, jid, mode == 'running')
      woken[queue] = true
      moved = moved + 1
    end
    publish_event(id, to)
  end
end
for queue in pairs(woken) do wake(queue) end
return {#ids, moved}
