-- Fetch and claim in one step: takes up to N ids from the head of a queue's ready list and
-- moves each task that is still `queued` to `running` under this worker, with its lease
-- (its score in the queue's `running` index). N is the caller's free slots, so no claimed
-- task waits in a buffer. An entry whose task is not `queued` (cancelled while waiting, or
-- a second entry of a task already claimed) is dropped: only the queued -> running move
-- claims a task, so no task runs twice at once, whatever the list holds.
-- An entry of the previous layout (an apalis-redis job id, whose task id is in the job data
-- hash) is translated here and its bookkeeping deleted, so an upgrade needs no stop.
-- ARGV[A]: queue, [A+1]: most tasks, [A+2]: worker, [A+3]: now rfc3339, [A+4]: lease ms
-- Returns {dropped, then per claimed task: id, kind, payload, attempt, max_attempts,
--   timeout_secs or ''} (just what the worker runs it with).
local queue, n, worker, now = ARGV[A], tonumber(ARGV[A + 1]), ARGV[A + 2], ARGV[A + 3]
local popped = redis.call('LPOP', ready_list(queue), n)
if not popped then return {0} end
local ms = now_ms()
local lease_until = ms + tonumber(ARGV[A + 4])
local queued, running = state_index(queue, 'queued'), state_index(queue, 'running')
local data = L.apalis .. queue .. L.sfx_data
local FIELDS = {'state', 'attempt', 'max_attempts', 'kind', 'payload', 'timeout_secs'}
local out = {0}
for _, id in ipairs(popped) do
  local key = L.record .. id
  local f = redis.call('HMGET', key, unpack(FIELDS))
  if not f[1] then
    local legacy = redis.call('HGET', data, id)
    if legacy then
      -- A job of the previous layout: it runs its task if it is still that task's job.
      redis.call('HDEL', data, id)
      redis.call('DEL', L.apalis .. queue .. L.sfx_meta .. ':' .. id)
      local jid = id
      id, key = legacy, L.record .. legacy
      f = redis.call('HMGET', key, unpack(FIELDS))
      if redis.call('HGET', key, 'job') ~= jid then f[1] = nil end
    end
  end
  if f[1] == 'queued' then
    local attempt = tonumber(f[2]) + 1
    redis.call('ZREM', queued, id)
    redis.call('ZADD', running, lease_until, id)
    redis.call('HSET', key, 'state', 'running', 'attempt', attempt, 'worker', worker,
      'started_at', now, 'updated_at', now)
    event(id, 'running')
    local k = #out
    out[k + 1], out[k + 2], out[k + 3] = id, f[4], f[5]
    out[k + 4], out[k + 5], out[k + 6] = attempt, f[3], f[6] or ''
  else
    out[1] = out[1] + 1
  end
end
flush_events()
return out
