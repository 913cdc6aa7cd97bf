-- Fetch and claim in one step: takes up to N ids from the head of a queue's ready list and
-- moves each task that is still `queued` to `running` under this worker, with its lease
-- (its score in the queue's `running` index) and its claim token. N is the caller's free
-- slots, so no claimed task waits in a buffer. An entry whose task is not `queued`
-- (cancelled while waiting, or a second entry of a task already claimed) is dropped: only
-- the queued -> running move claims a task, so no task runs twice at once, whatever the
-- list holds.
--
-- The claim token (`<fetch token>.<n>`, stored as the record's `claim`) fences every later
-- write of the attempt: finish, progress, renew and release act only while the record still
-- holds it. Fetch tokens are ULIDs, so a token never repeats, even when a manual retry
-- starts the attempt count again (docs/task-lifecycle.md, "Claims").
--
-- Read first, then write: every popped record is read and checked before the first write,
-- so no record, however damaged, can stop the script half way with ids off the list and
-- their tasks left `queued`. A queued task whose cancel was requested (given back by a
-- stopping worker after the request) ends `cancelled` here instead of running; a record
-- missing what a worker needs to run it ends `failed` (`corrupt_record`).
--
-- A fetch is safe to repeat: it is remembered under its token for a lease's time, and a
-- fetch whose reply was lost (a timeout while Redis was slow) is sent again with the same
-- token and answered with the same claims, instead of stranding them until their leases
-- lapse and they run again as a new attempt.
-- ARGV[A]: queue, [A+1]: most tasks (at most MAX_FETCH), [A+2]: worker, [A+3]: now
--   rfc3339, [A+4]: lease ms, [A+5]: fetch token
-- Returns {dropped, then per claimed task: id, claim token, kind, payload, attempt,
--   max_attempts, timeout_secs or '', traceparent or '', updated_at} (just what the worker
--   runs it with; updated_at of a queued task is when it entered the queue: its wait, for
--   the metrics).
local MAX_FETCH = 1000
local queue, worker, now = ARGV[A], ARGV[A + 2], ARGV[A + 3]
local n = math.min(math.max(tonumber(ARGV[A + 1]) or 1, 1), MAX_FETCH)
local lease = tonumber(ARGV[A + 4])
local token = ARGV[A + 5]
local memo = fetch_memo(queue, token)
local FIELDS = {'state', 'attempt', 'max_attempts', 'kind', 'payload', 'timeout_secs', 'worker',
  'traceparent', 'updated_at', 'claim', 'cancel_requested'}

-- One claimed task's part of the reply, from its FIELDS as read. Every item is a string or
-- a number (a nil would end the reply there).
local function reply(out, id, claim, f, attempt, max)
  local k = #out
  out[k + 1], out[k + 2], out[k + 3] = id, claim, f[4]
  out[k + 4], out[k + 5], out[k + 6] = f[5] or '', attempt, max
  out[k + 7], out[k + 8], out[k + 9] = f[6] or '', f[8] or '', f[9] or ''
end

local seen = redis.call('LRANGE', memo, 0, -1)
if #seen > 0 then
  -- The same fetch again: answer with its claims this worker still holds.
  local out = {0}
  for i = 1, #seen, 2 do
    local id, claim = seen[i], seen[i + 1]
    local f = redis.call('HMGET', record_key(queue, id), unpack(FIELDS))
    if f[1] == 'running' and f[10] == claim and f[7] == worker then
      reply(out, id, claim, f, tonumber(f[2]), tonumber(f[3]))
    end
  end
  return out
end

if redis.call('EXISTS', paused_key(queue)) == 1 then return {0} end
local popped = redis.call('LPOP', ready_list(queue), n)
if not popped then return {0} end

-- Read and judge every popped task before writing anything.
-- A task can have two entries in one pop (cancelled while queued, then retried): only the
-- first is judged, the others are dropped, as when the claim went before them.
local plan, judged = {}, {}
for i, id in ipairs(popped) do
  local f = redis.call('HMGET', record_key(queue, id), unpack(FIELDS))
  local p = {id = id, f = f}
  if judged[id] or f[1] ~= 'queued' then
    p.act = 'drop'
  elseif f[11] == '1' then
    p.act = 'cancel'
  else
    local attempt, max = tonumber(f[2]), tonumber(f[3])
    local bad = (not attempt and 'attempt') or (not max and 'max_attempts')
      or ((not f[4] or f[4] == '') and 'kind') or nil
    if bad then
      p.act, p.bad = 'corrupt', bad
    else
      p.act, p.attempt, p.max = 'claim', attempt + 1, max
    end
  end
  judged[id] = true
  plan[i] = p
end

local ms = now_ms()
local lease_until = ms + lease
local claims = {}
local running = state_index(queue, 'running')
local out = {0}
for _, p in ipairs(plan) do
  local id, f = p.id, p.f
  local key = record_key(queue, id)
  if p.act == 'claim' then
    local claim = token .. '.' .. (#claims / 2 + 1)
    redis.call('ZREM', state_index(queue, 'queued'), id)
    redis.call('ZADD', running, lease_until, id)
    redis.call('HSET', key, 'state', 'running', 'attempt', p.attempt, 'worker', worker,
      'claim', claim, 'started_at', now, 'started_ms', ms, 'updated_at', now)
    event(id, 'running')
    claims[#claims + 1], claims[#claims + 2] = id, claim
    reply(out, id, claim, f, p.attempt, p.max)
  elseif p.act == 'cancel' then
    redis.call('HSET', key, 'state', 'cancelled', 'finished_at', now, 'updated_at', now,
      'error', cjson.encode({kind = 'cancelled', message = 'cancelled before it ran'}))
    transition(key, id, queue, 'queued', 'cancelled', ms)
    event(id, 'cancelled')
    out[1] = out[1] + 1
  elseif p.act == 'corrupt' then
    -- Fill what a read of the record needs, so it can be served and retried by hand.
    if not tonumber(f[2]) then redis.call('HSET', key, 'attempt', 0) end
    if not tonumber(f[3]) then redis.call('HSET', key, 'max_attempts', 1) end
    if not f[4] then redis.call('HSET', key, 'kind', '') end
    redis.call('HSET', key, 'state', 'failed', 'finished_at', now, 'updated_at', now,
      'error', cjson.encode({kind = 'corrupt_record',
        message = 'the stored task cannot be run: field `' .. p.bad .. '` is missing or not valid'}))
    transition(key, id, queue, 'queued', 'failed', ms)
    event(id, 'failed')
    out[1] = out[1] + 1
  else
    out[1] = out[1] + 1
  end
end
-- In slices: `unpack` of thousands of items fails ("too many results to unpack").
for i = 1, #claims, 200 do
  redis.call('RPUSH', memo, unpack(claims, i, math.min(i + 199, #claims)))
end
if #claims > 0 then redis.call('PEXPIRE', memo, lease) end
flush_events()
return out
