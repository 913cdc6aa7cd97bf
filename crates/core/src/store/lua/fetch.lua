-- Fetch and claim in one step: takes up to N ids from the head of a queue's ready list and
-- moves each task that is still `queued` to `running` under this worker, with its lease
-- (its score in the queue's `running` index) and its claim. N is the caller's free slots,
-- so no claimed task waits in a buffer. An entry whose task is not `queued` (cancelled
-- while waiting, or a second entry of a task already claimed) is dropped: only the
-- queued -> running move claims a task, so no task runs twice at once, whatever the list
-- holds.
--
-- The claim token is this fetch's token (a ULID the caller makes per fetch), stored as the
-- record's `claim`: with the task id it names one attempt (a fetch claims a task at most
-- once, and tokens never repeat, even when a manual retry starts the attempt count again),
-- and it fences every later write of the attempt: finish, progress, renew and release act
-- only while the record still holds it (docs/task-lifecycle.md, "Claims").
--
-- Read first, then write: the head of the list and every record in it are read and judged
-- before the first write (the list is trimmed only then), so no record, however damaged,
-- can stop the script half way with ids off the list and their tasks left `queued`. An
-- entry whose key is not a record hash is dropped. A queued task whose cancel was requested
-- (given back by a stopping worker after the request) ends `cancelled` here instead of
-- running; a record missing what a worker needs to run it ends `failed` (`corrupt_record`).
--
-- A fetch is safe to repeat: it is remembered under its token for a lease's time, and a
-- fetch whose reply was lost (a timeout while Redis was slow) is sent again with the same
-- token and answered with the same claims, instead of stranding them until their leases
-- lapse and they run again as a new attempt.
-- ARGV[A]: queue, [A+1]: most tasks (at most MAX_FETCH), [A+2]: worker, [A+3]: now
--   rfc3339, [A+4]: lease ms, [A+5]: fetch token
-- Returns {dropped, then per claimed task: id, kind, payload, attempt, max_attempts,
--   timeout_secs or '', traceparent or '', updated_at} (just what the worker runs it with;
--   updated_at of a queued task is when it entered the queue: its wait, for the metrics).
local MAX_FETCH = 1000
local queue, worker, now = ARGV[A], ARGV[A + 2], ARGV[A + 3]
local n = math.min(math.max(tonumber(ARGV[A + 1]) or 1, 1), MAX_FETCH)
local lease = tonumber(ARGV[A + 4])
local token = ARGV[A + 5]
local memo = fetch_memo(queue, token)
-- What a claim needs of a record (a field read costs a scan of the record's listpack, so
-- no more than that); a replay also reads who holds it.
local FIELDS = {'state', 'attempt', 'max_attempts', 'kind', 'payload', 'timeout_secs',
  'traceparent', 'updated_at', 'cancel_requested'}
local REPLAY = {'state', 'attempt', 'max_attempts', 'kind', 'payload', 'timeout_secs',
  'traceparent', 'updated_at', 'worker', 'claim'}

-- One claimed task's part of the reply, from its FIELDS as read. Every item is a string or
-- a number (a nil would end the reply there).
local function reply(out, id, f, attempt, max)
  local k = #out
  out[k + 1], out[k + 2], out[k + 3] = id, f[4], f[5] or ''
  out[k + 4], out[k + 5], out[k + 6] = attempt, max, f[6] or ''
  out[k + 7], out[k + 8] = f[7] or '', f[8] or ''
end

local seen = redis.call('LRANGE', memo, 0, -1)
if #seen > 0 then
  -- The same fetch again: answer with its claims this worker still holds.
  local out = {0}
  for _, id in ipairs(seen) do
    local f = redis.call('HMGET', record_key(queue, id), unpack(REPLAY))
    if f[1] == 'running' and f[10] == token and f[9] == worker then
      reply(out, id, f, tonumber(f[2]), tonumber(f[3]))
    end
  end
  return out
end

if redis.call('EXISTS', paused_key(queue)) == 1 then return {0} end
local ready = ready_list(queue)
local ids = redis.call('LRANGE', ready, 0, n - 1)
if #ids == 0 then return {0} end

-- Judge every entry before writing anything: `act[i]` is 'claim', 'drop', 'cancel' or the
-- name of the field that makes the record unrunnable. A task can have two entries in one
-- read (cancelled while queued, then retried): only the first is judged, the others are
-- dropped, as when the claim went before them.
local fs, act, attempts, maxes, judged = {}, {}, {}, {}, {}
for i, id in ipairs(ids) do
  local f = redis.pcall('HMGET', record_key(queue, id), unpack(FIELDS))
  fs[i] = f
  if f.err or judged[id] or f[1] ~= 'queued' then
    act[i] = 'drop'
  elseif f[9] == '1' then
    act[i] = 'cancel'
  else
    local attempt, max = tonumber(f[2]), tonumber(f[3])
    attempts[i], maxes[i] = attempt, max
    if not attempt then
      act[i] = 'attempt'
    elseif not max then
      act[i] = 'max_attempts'
    elseif not f[4] or f[4] == '' then
      act[i] = 'kind'
    else
      act[i] = 'claim'
    end
  end
  judged[id] = true
end

redis.call('LTRIM', ready, #ids, -1)
local ms = now_ms()
local lease_until = ms + lease
local claimed = {}
local running, queued = state_index(queue, 'running'), state_index(queue, 'queued')
local out = {0}
for i, id in ipairs(ids) do
  local f, a = fs[i], act[i]
  if a == 'claim' then
    local key = record_key(queue, id)
    local attempt = attempts[i] + 1
    redis.call('ZREM', queued, id)
    redis.call('ZADD', running, lease_until, id)
    redis.call('HSET', key, 'state', 'running', 'attempt', attempt, 'worker', worker,
      'claim', token, 'started_at', now, 'started_ms', ms, 'updated_at', now)
    event(id, 'running')
    claimed[#claimed + 1] = id
    reply(out, id, f, attempt, maxes[i])
  elseif a == 'drop' then
    out[1] = out[1] + 1
  elseif a == 'cancel' then
    local key = record_key(queue, id)
    redis.call('HSET', key, 'state', 'cancelled', 'finished_at', now, 'updated_at', now,
      'error', cjson.encode({kind = 'cancelled', message = 'cancelled before it ran'}))
    transition(key, id, queue, 'queued', 'cancelled', ms)
    event(id, 'cancelled')
    out[1] = out[1] + 1
  else
    local key = record_key(queue, id)
    -- Fill what a read of the record needs, so it can be served and retried by hand.
    if not attempts[i] then redis.call('HSET', key, 'attempt', 0) end
    if not maxes[i] then redis.call('HSET', key, 'max_attempts', 1) end
    if not f[4] then redis.call('HSET', key, 'kind', '') end
    redis.call('HSET', key, 'state', 'failed', 'finished_at', now, 'updated_at', now,
      'error', cjson.encode({kind = 'corrupt_record',
        message = 'the stored task cannot be run: field `' .. a .. '` is missing or not valid'}))
    transition(key, id, queue, 'queued', 'failed', ms)
    event(id, 'failed')
    out[1] = out[1] + 1
  end
end
-- In slices: `unpack` of thousands of items fails ("too many results to unpack").
for i = 1, #claimed, 500 do
  redis.call('RPUSH', memo, unpack(claimed, i, math.min(i + 499, #claimed)))
end
if #claimed > 0 then redis.call('PEXPIRE', memo, lease) end
flush_events()
return out
