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
-- Flow control (docs/flow-control.md), from the queue's limits hash, read first:
-- - priorities: the head of each priority band's ready list, the bands picked by stride
--   scheduling (a band's share of the picks is proportional to 4^priority among the bands
--   that hold tasks), so higher bands go first and lower ones are never starved;
-- - the queue's rate limit (GCRA): a fetch claims at most the tokens there are, and none
--   when there are none (nothing is taken off the lists);
-- - a kind's rate limit: a task of a kind out of tokens moves to the queue's `throttled`
--   zset, scored by when the kind's next token is due, and is taken from there first once
--   it is due; it stays `queued` and uses no attempt;
-- - concurrency keys: a task whose key holds `per_key` running tasks moves to the key's
--   waiting list, out of the way of other keys' tasks, until one of them leaves `running`
--   (prelude `free_key`; upkeep's `unpark` for a raised or removed limit).
-- A token is spent per claim: an attempt that starts, never a task that waits.
-- ARGV[A]: queue, [A+1]: most tasks (at most MAX_FETCH), [A+2]: worker, [A+3]: now
--   rfc3339, [A+4]: lease ms, [A+5]: fetch token
-- Returns {dropped, held (moved to wait for a limit), ms until a held task may go (0: none
--   held), then per claimed task: id, kind, payload, attempt, max_attempts, timeout_secs
--   or '', traceparent or '', updated_at, workflow or '', inputs or ''} (just what the worker
--   runs it with; updated_at of
--   a queued task is when it entered the queue: its wait, for the metrics).
local MAX_FETCH = 1000
local queue, worker, now = ARGV[A], ARGV[A + 2], ARGV[A + 3]
local n = math.min(math.max(tonumber(ARGV[A + 1]) or 1, 1), MAX_FETCH)
local lease = tonumber(ARGV[A + 4])
local token = ARGV[A + 5]
local memo = fetch_memo(queue, token)
-- What a claim needs of a record (a field read costs a scan of the record's listpack, so
-- no more than that); a replay also reads who holds it.
local FIELDS = {'state', 'attempt', 'max_attempts', 'kind', 'payload', 'timeout_secs',
  'traceparent', 'updated_at', 'cancel_requested', 'concurrency_key', 'workflow', 'inputs'}
local REPLAY = {'state', 'attempt', 'max_attempts', 'kind', 'payload', 'timeout_secs',
  'traceparent', 'updated_at', 'worker', 'claim', 'workflow', 'inputs'}

-- One claimed task's part of the reply, from its FIELDS as read. Every item is a string or
-- a number (a nil would end the reply there).
local function reply(out, id, f, attempt, max)
  local k = #out
  out[k + 1], out[k + 2], out[k + 3] = id, f[4], f[5] or ''
  out[k + 4], out[k + 5], out[k + 6] = attempt, max, f[6] or ''
  out[k + 7], out[k + 8] = f[7] or '', f[8] or ''
  out[k + 9], out[k + 10] = f[11] or '', f[12] or ''
end

local seen = redis.call('LRANGE', memo, 0, -1)
if #seen > 0 then
  -- The same fetch again: answer with its claims this worker still holds.
  local out = {0, 0, 0}
  for _, id in ipairs(seen) do
    local f = redis.call('HMGET', record_key(queue, id), unpack(REPLAY))
    if f[1] == 'running' and f[10] == token and f[9] == worker then
      reply(out, id, f, tonumber(f[2]), tonumber(f[3]))
    end
  end
  return out
end

if redis.call('EXISTS', paused_key(queue)) == 1 then return {0, 0, 0} end
local ms = now_ms()
local L = {}
do
  local raw = redis.call('HGETALL', limits_key(queue))
  for i = 1, #raw, 2 do L[raw[i]] = raw[i + 1] end
end

-- GCRA: a limit of `count` per `period` ms with `burst` lets `burst` go at once after an
-- idle spell and then one per period / count. `tat` is the theoretical arrival time.
local function rate(spec)
  if not spec then return nil end
  local c, per, b = string.match(spec, '^(%d+) (%d+) (%d+)$')
  if not c then return nil end
  local t = tonumber(per) / math.max(tonumber(c), 1)
  return {t = t, tau = t * (math.max(tonumber(b), 1) - 1)}
end
-- How many may go now (at most `cap`), and the ms until the next may.
local function room(r, tat, cap)
  local late = math.max(tat, ms) - ms
  if late > r.tau then return 0, late - r.tau end
  return math.min(math.floor((r.tau - late) / r.t) + 1, cap), 0
end
local gcra = gcra_key(queue)
local tats, limited = {}, L.rate ~= nil
for f in pairs(L) do
  if string.sub(f, 1, 5) == 'rate:' then limited = true end
end
if limited then
  local raw = redis.call('HGETALL', gcra)
  for i = 1, #raw, 2 do tats[raw[i]] = tonumber(raw[i + 1]) end
end
-- The state of limit `name` under rate `r`, no later than `r` alone could have made it:
-- a limit raised at runtime holds from the next fetch, not after the old one's debt.
local function tat_of(name, r)
  tats[name] = math.min(tats[name] or 0, ms + r.tau + r.t)
  return tats[name]
end

local wait_ms = 0
local function hold_until(w)
  w = math.max(math.ceil(w), 1)
  if wait_ms == 0 or w < wait_ms then wait_ms = w end
end
local asked = n
local qrate = rate(L.rate)
if qrate then
  local r, w = room(qrate, tat_of('q', qrate), n)
  if r == 0 then return {0, 0, math.max(math.ceil(w), 1)} end
  n = r
end

-- Candidates: due throttled tasks first (they waited longest), then the bands' heads.
-- `from[i]`: 'z' for the throttled zset, else the band's list key.
local ids, from = {}, {}
local throttled = throttled_key(queue)
local due = redis.call('ZRANGEBYSCORE', throttled, '-inf', ms, 'LIMIT', 0, n)
for _, id in ipairs(due) do ids[#ids + 1] = id; from[#ids] = 'z' end
local take = {}
local want = n - #ids
if want > 0 then
  local others = redis.call('SMEMBERS', bands_key(queue))
  if #others == 0 then
    take[DEFAULT_PRIORITY] = want
  else
    -- Several bands may hold tasks: share `want` picks among the non-empty ones by stride
    -- scheduling. Each non-empty band has a head tag; the band with the lowest goes next
    -- (the higher band on a tie), the queue's virtual time moves to that tag, and the
    -- band's tag grows by its stride, 4^(9 - p). A band that was empty starts at the
    -- virtual time plus its stride: idling earns it no credit.
    local pk = pass_key(queue)
    local lens, bands, gone = {}, {}, {}
    local l = redis.call('LLEN', ready_list(queue))
    if l > 0 then
      lens[DEFAULT_PRIORITY] = l; bands[#bands + 1] = DEFAULT_PRIORITY
    else
      gone[#gone + 1] = DEFAULT_PRIORITY
    end
    for _, b in ipairs(others) do
      local p = tonumber(b)
      local bl = p and redis.call('LLEN', band_list(queue, p)) or 0
      if bl > 0 then
        lens[p] = bl; bands[#bands + 1] = p
      else
        redis.call('SREM', bands_key(queue), b)
        gone[#gone + 1] = b
      end
    end
    if #gone > 0 then redis.call('HDEL', pk, unpack(gone)) end
    if #bands == 1 then
      take[bands[1]] = math.min(want, lens[bands[1]])
    elseif #bands > 1 then
      local vt = tonumber(redis.call('HGET', pk, 'vt')) or 0
      local head = {}
      for _, p in ipairs(bands) do
        head[p] = tonumber(redis.call('HGET', pk, p)) or (vt + 4 ^ (9 - p))
        take[p] = 0
      end
      for _ = 1, want do
        local best
        for _, p in ipairs(bands) do
          if take[p] < lens[p] and (not best or head[p] < head[best]
              or (head[p] == head[best] and p > best)) then
            best = p
          end
        end
        if not best then break end
        take[best] = take[best] + 1
        vt = head[best]
        head[best] = head[best] + 4 ^ (9 - best)
      end
      local w = {'vt', vt}
      for _, p in ipairs(bands) do w[#w + 1] = p; w[#w + 1] = head[p] end
      redis.call('HSET', pk, unpack(w))
    end
  end
  for p = 9, 1, -1 do
    if take[p] and take[p] > 0 then
      local key = band_list(queue, p)
      for _, id in ipairs(redis.call('LRANGE', key, 0, take[p] - 1)) do
        ids[#ids + 1] = id; from[#ids] = key
      end
    end
  end
end
if #ids == 0 then
  local soonest = redis.call('ZRANGE', throttled, 0, 0, 'WITHSCORES')
  if soonest[2] then hold_until(tonumber(soonest[2]) - ms) end
  return {0, 0, wait_ms}
end

-- Judge every entry before writing anything: `act[i]` is 'claim', 'drop', 'cancel',
-- 'throttle', 'park' or the name of the field that makes the record unrunnable. A task can
-- have two entries in one read (cancelled while queued, then retried): only the first is
-- judged, the others are dropped, as when the claim went before them.
local per_key = tonumber(L.per_key)
local krates, holding, score = {}, {}, {}
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
      local ck = f[10]
      if per_key and ck and ck ~= '' then
        if holding[ck] == nil then holding[ck] = redis.call('SCARD', key_running(queue, ck)) end
        if holding[ck] >= per_key then act[i] = 'park' end
      end
      if act[i] == 'claim' then
        local kr = krates[f[4]]
        if kr == nil then kr = rate(L['rate:' .. f[4]]) or false; krates[f[4]] = kr end
        if kr then
          local name = 'k:' .. f[4]
          local r, w = room(kr, tat_of(name, kr), 1)
          if r == 0 then
            act[i], score[i] = 'throttle', ms + w
          else
            tats[name] = math.max(tats[name], ms) + kr.t
          end
        end
      end
      if act[i] == 'claim' and per_key and ck and ck ~= '' then holding[ck] = holding[ck] + 1 end
    end
  end
  judged[id] = true
end

local trims = {}
for i, id in ipairs(ids) do
  if from[i] == 'z' then
    redis.call('ZREM', throttled, id)
  else
    trims[from[i]] = (trims[from[i]] or 0) + 1
  end
end
for key, c in pairs(trims) do redis.call('LTRIM', key, c, -1) end
local lease_until = ms + lease
local claimed = {}
local running = state_index(queue, 'running')
local queued = state_index(queue, 'queued')
local out = {0, 0, 0}
for i, id in ipairs(ids) do
  local f, a = fs[i], act[i]
  if a == 'claim' then
    local key = record_key(queue, id)
    local attempt = attempts[i] + 1
    redis.call('ZREM', queued, id)
    redis.call('ZADD', running, lease_until, id)
    redis.call('HSET', key, 'state', 'running', 'attempt', attempt, 'worker', worker,
      'claim', token, 'started_at', now, 'started_ms', ms, 'updated_at', now)
    if f[10] and f[10] ~= '' then redis.call('SADD', key_running(queue, f[10]), id) end
    event(id, 'running')
    claimed[#claimed + 1] = id
    reply(out, id, f, attempt, maxes[i])
  elseif a == 'drop' then
    out[1] = out[1] + 1
  elseif a == 'throttle' then
    redis.call('ZADD', throttled, score[i], id)
    hold_until(score[i] - ms)
    out[2] = out[2] + 1
  elseif a == 'park' then
    redis.call('RPUSH', key_waiting(queue, f[10]), id)
    redis.call('SADD', keys_waiting(queue), f[10])
    out[2] = out[2] + 1
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
-- Tokens are spent by the claims alone.
if qrate and #claimed > 0 then
  tats.q = math.max(tats.q, ms) + qrate.t * #claimed
  -- Capped by the queue's tokens: more may wait; come back when the next token is due.
  if n < asked then
    local _, w = room(qrate, tats.q, 1)
    hold_until(w)
  end
end
if limited then
  -- The state lives as long as a token of it is owed, and a minute more.
  local wt, horizon = {}, 0
  for name, tat in pairs(tats) do
    if tat > 0 then
      wt[#wt + 1] = name; wt[#wt + 1] = string.format('%.3f', tat)
      horizon = math.max(horizon, tat - ms)
    end
  end
  if #wt > 0 then
    redis.call('HSET', gcra, unpack(wt))
    redis.call('PEXPIRE', gcra, math.ceil(horizon) + 60000)
  end
end
if wait_ms == 0 and #claimed < asked then
  local soonest = redis.call('ZRANGE', throttled, 0, 0, 'WITHSCORES')
  if soonest[2] then hold_until(tonumber(soonest[2]) - ms) end
end
out[3] = wait_ms
-- In slices: `unpack` of thousands of items fails ("too many results to unpack").
for i = 1, #claimed, 500 do
  redis.call('RPUSH', memo, unpack(claimed, i, math.min(i + 499, #claimed)))
end
if #claimed > 0 then redis.call('PEXPIRE', memo, lease) end
flush_events()
return out
