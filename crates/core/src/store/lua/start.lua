-- Workers received jobs: claim each job's task for one attempt, or say why not. Claims
-- made at the same moment by one worker process arrive together (group commit): one call,
-- one reply per claim, in order.
-- ARGV[A]: worker, [A+1]: now ms, [A+2]: now rfc3339, [A+3]: lease until ms,
--   [A+4..]: task id, job id pairs
-- Each reply: {'run', kind, payload, attempt, max_attempts, timeout_secs} (just what the
--   worker needs to run it; the rest of the record stays in Redis) | {'stale'} (job superseded) | {'busy'} (live lease elsewhere)
--       | {'gone'} (expired/unknown) | {'skip', state} | {'exhausted'}
local worker, now_ms, now, lease_until = ARGV[A], tonumber(ARGV[A + 1]), ARGV[A + 2], ARGV[A + 3]

local function claim(id, jid)
  local key = L.record .. id
  local f = redis.call('HMGET', key, 'state', 'job', 'attempt', 'max_attempts', 'worker', 'queue',
    'cancel_requested', 'kind', 'payload', 'timeout_secs')
  local state, queue = f[1], f[6]
  if not state then return {'gone'} end
  if f[2] ~= jid then return {'stale'} end
  local attempt, max = tonumber(f[3]), tonumber(f[4])
  if state == 'running' then
    local lease = redis.call('ZSCORE', state_index(queue, 'running'), id)
    if lease and tonumber(lease) > now_ms then return {'busy'} end
    -- The lease lapsed: the previous runner is gone. This delivery is the next attempt,
    -- unless a cancel was requested meanwhile or no attempts are left.
    if f[7] == '1' then
      redis.call('HSET', key, 'state', 'cancelled', 'finished_at', now, 'updated_at', now,
        'error', cjson.encode({kind = 'cancelled', message = 'cancelled while its worker was lost'}))
      transition(key, id, queue, 'running', 'cancelled', now_ms)
      publish_event(id, 'cancelled')
      return {'skip', 'cancelled'}
    end
    local err = cjson.encode({kind = 'worker_lost',
      message = 'worker ' .. (f[5] or '?') .. ' stopped renewing its lease during attempt ' .. attempt})
    if attempt >= max then
      redis.call('HSET', key, 'state', 'failed', 'error', err, 'finished_at', now, 'updated_at', now)
      transition(key, id, queue, 'running', 'failed', now_ms)
      publish_event(id, 'failed')
      return {'exhausted'}
    end
    redis.call('HSET', key, 'error', err)
    redis.call('ZADD', state_index(queue, 'running'), lease_until, id)
  elseif state ~= 'queued' then
    return {'skip', state}
  else
    transition(key, id, queue, 'queued', 'running', lease_until)
  end
  redis.call('HSET', key, 'state', 'running', 'attempt', attempt + 1, 'worker', worker,
    'started_at', now, 'updated_at', now, 'progress', '', 'next_attempt_at', '')
  publish_event(id, 'running')
  return {'run', f[8], f[9], attempt + 1, f[4], f[10] or ''}
end

local out = {}
for i = A + 4, #ARGV, 2 do
  out[#out + 1] = claim(ARGV[i], ARGV[i + 1])
end
return out
