-- Fetch and claim in one step: takes up to N ids from the head of a queue's ready list and
-- moves each task that is still `queued` to `running` under this worker, with its lease
-- (its score in the queue's `running` index). N is the caller's free slots, so no claimed
-- task waits in a buffer. An entry whose task is not `queued` (cancelled while waiting, or
-- a second entry of a task already claimed) is dropped: only the queued -> running move
-- claims a task, so no task runs twice at once, whatever the list holds.
-- A fetch is safe to repeat: it is remembered under its token for a lease's time, and a
-- fetch whose reply was lost (a timeout while Redis was slow) is sent again with the same
-- token and answered with the same claims, instead of stranding them until their leases
-- lapse and they run again as a new attempt.
-- ARGV[A]: queue, [A+1]: most tasks, [A+2]: worker, [A+3]: now rfc3339, [A+4]: lease ms,
--   [A+5]: fetch token
-- Returns {dropped, then per claimed task: id, kind, payload, attempt, max_attempts,
--   timeout_secs or '', traceparent or '', updated_at} (just what the worker runs it with;
--   updated_at of a queued task is when it entered the queue: its wait, for the metrics).
local queue, n, worker, now = ARGV[A], tonumber(ARGV[A + 1]), ARGV[A + 2], ARGV[A + 3]
local lease = tonumber(ARGV[A + 4])
local memo = fetch_memo(queue, ARGV[A + 5])
local FIELDS = {'state', 'attempt', 'max_attempts', 'kind', 'payload', 'timeout_secs', 'worker',
  'traceparent', 'updated_at'}

-- One claimed task's part of the reply, from its FIELDS as read.
local function reply(out, id, f, attempt)
  local k = #out
  out[k + 1], out[k + 2], out[k + 3] = id, f[4], f[5]
  out[k + 4], out[k + 5], out[k + 6] = attempt, f[3], f[6] or ''
  out[k + 7], out[k + 8] = f[8] or '', f[9] or ''
end

local seen = redis.call('LRANGE', memo, 0, -1)
if #seen > 0 then
  -- The same fetch again: answer with its claims still held by this worker.
  local out = {0}
  for i = 1, #seen, 2 do
    local id = seen[i]
    local f = redis.call('HMGET', record_key(queue, id), unpack(FIELDS))
    if f[1] == 'running' and f[7] == worker and f[2] == seen[i + 1] then
      reply(out, id, f, tonumber(f[2]))
    end
  end
  return out
end

if redis.call('EXISTS', paused_key(queue)) == 1 then return {0} end
local popped = redis.call('LPOP', ready_list(queue), n)
if not popped then return {0} end
local ms = now_ms()
local lease_until = ms + lease
local claims = {}
local queued, running = state_index(queue, 'queued'), state_index(queue, 'running')
local out = {0}
for _, id in ipairs(popped) do
  local key = record_key(queue, id)
  local f = redis.call('HMGET', key, unpack(FIELDS))
  if f[1] == 'queued' then
    local attempt = tonumber(f[2]) + 1
    redis.call('ZREM', queued, id)
    redis.call('ZADD', running, lease_until, id)
    redis.call('HSET', key, 'state', 'running', 'attempt', attempt, 'worker', worker,
      'started_at', now, 'started_ms', ms, 'updated_at', now)
    event(id, 'running')
    claims[#claims + 1], claims[#claims + 2] = id, attempt
    reply(out, id, f, attempt)
  else
    out[1] = out[1] + 1
  end
end
if #claims > 0 then
  redis.call('RPUSH', memo, unpack(claims))
  redis.call('PEXPIRE', memo, lease)
end
flush_events()
return out
