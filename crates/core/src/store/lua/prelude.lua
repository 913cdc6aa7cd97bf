-- Shared by every errand script (prepended at load time).
-- ARGV[1..8] always carry the key layout, so one Rust definition (store::Layout) names
-- every key; script-specific arguments start at ARGV[9].
local L = {
  record = ARGV[1],        -- task record hash prefix, e.g. "errand:task:"
  index = ARGV[2],         -- zset: every live task id -> created ms (unfiltered listing)
  delayed = ARGV[3],       -- zset: scheduled/retrying task id -> due time (ms)
  apalis = ARGV[4],        -- apalis-redis queue name prefix, e.g. "errand:q:"
  sfx_data = ARGV[5],      -- apalis-redis key suffixes (from apalis_redis::Config)
  sfx_meta = ARGV[6],
  sfx_active = ARGV[7],
  chan = ARGV[8],          -- prefix of every other key and channel, e.g. "errand:"
}
local A = 9

local TERMINAL = {succeeded = true, failed = true, cancelled = true}

-- Keys derived from the prefix (store::Layout documents each).
local function queue_index(queue) return L.chan .. 'idx:' .. queue end
-- The `running` state index is also the lease table: its score is the lease expiry (ms),
-- not the time the task started, so taking and renewing a lease costs no extra write.
local function state_index(queue, state) return L.chan .. 'idx:' .. queue .. ':' .. state end
local EXPIRED = L.chan .. 'expired'     -- zset: recently expired ids -> expiry ms (tombstones)
local QUEUES = L.chan .. 'queues'       -- set: every queue ever submitted to

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function wake(queue)
  redis.call('PUBLISH', L.chan .. 'wake:' .. queue, '1')
end

-- The queue's ready list: ids of tasks waiting to run, taken from the head by fetch.lua.
-- Its key is the one apalis-redis names its active list (apalis_redis::Config), so data
-- written by the previous layout (apalis job ids in the same list) is found where it was.
local function ready_list(queue) return L.apalis .. queue .. L.sfx_active end

-- Hands task `id` to its queue's workers. `front`: ahead of the waiting tasks, for a task
-- whose attempt was already under way when its worker died. The caller wakes the queue.
-- A task may have more than one entry (cancelled while queued, then retried): only the
-- entry that finds it `queued` claims it; the others are dropped by fetch.lua.
local function enqueue(queue, id, front)
  redis.call(front and 'LPUSH' or 'RPUSH', ready_list(queue), id)
end

-- Events of one script call, published as ONE message of "<id> <state>" lines (a batch of
-- claims or finishes costs one PUBLISH, not one per task).
local EVENTS = {}
local function event(id, state) EVENTS[#EVENTS + 1] = id .. ' ' .. state end
local function flush_events()
  if #EVENTS > 0 then redis.call('PUBLISH', L.chan .. 'events', table.concat(EVENTS, '\n')) end
end

-- Keeps the per-queue state indexes true as a task moves `from` -> `to` (from = nil on
-- create), and gives a record entering a terminal state its TTL (and takes it away from a
-- record leaving one, on manual retry). Every state change goes through here. `ms` is now
-- (Redis TIME: the one clock of every score) or, for `running`, the lease expiry; a
-- terminal index is scored by the record's expiry, so upkeep finds expired ids there
-- without a zset of its own. `ttl`: the record's result_ttl_secs when the caller already
-- read it (else it is read here).
local function transition(key, id, queue, from, to, ms, ttl)
  if from then
    redis.call('ZREM', state_index(queue, from), id)
    if TERMINAL[from] then redis.call('PERSIST', key) end
  end
  if TERMINAL[to] then
    ttl = tonumber(ttl or redis.call('HGET', key, 'result_ttl_secs')) or 86400
    redis.call('EXPIRE', key, ttl)
    ms = ms + ttl * 1000
  end
  redis.call('ZADD', state_index(queue, to), ms, id)
end

-- Creates task `id` from its record fields (the field/value items args[from..to]) and hands
-- it on: to `delayed` when due > 0, else onto its queue's ready list. Returns false, having
-- written nothing, when the id is taken. The caller wakes the queue. Every way a task comes
-- into being (submit, a schedule's tick) goes through here.
local function create_task(id, queue, due, created, args, from, to)
  local key = L.record .. id
  if redis.call('EXISTS', key) == 1 then return false end
  redis.call('HSET', key, unpack(args, from, to))
  redis.call('ZADD', L.index, created, id)
  redis.call('ZADD', queue_index(queue), created, id)
  redis.call('SADD', QUEUES, queue)
  if due > 0 then
    redis.call('ZADD', L.delayed, due, id)
    transition(key, id, queue, nil, 'scheduled', created)
  else
    enqueue(queue, id)
    transition(key, id, queue, nil, 'queued', created)
  end
  return true
end

-- The dashboard's keys (store::Layout::paused / stats_minute; pause.lua, stats.lua).
-- A paused queue's flag: fetch.lua hands out nothing while it exists (value: paused-at ms).
local function paused_key(queue) return L.chan .. 'paused:' .. queue end
-- One minute of a queue's finished attempts: a hash of counts per outcome, `n` (all) and
-- `rt:<b>` run-time buckets; kept a day plus an hour, so history needs no sweeper.
local function stats_key(queue, minute) return L.chan .. 'stats:' .. queue .. ':' .. minute end
local STATS_TTL = 90000

-- ms since the epoch of an rfc3339 UTC time as task::rfc3339 writes it; nil if not one.
local function rfc3339_ms(s)
  if not s then return nil end
  local y, mo, d, h, mi, sec, frac = string.match(s, '^(%d+)-(%d+)-(%d+)T(%d+):(%d+):(%d+)%.?(%d*)Z$')
  if not y then return nil end
  y, mo = tonumber(y), tonumber(mo)
  if mo <= 2 then y = y - 1 end
  local era = math.floor(y / 400)
  local yoe = y - era * 400
  local doy = math.floor((153 * ((mo + 9) % 12) + 2) / 5) + tonumber(d) - 1
  local days = era * 146097 + yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy - 719468
  local msf = frac ~= '' and tonumber((frac .. '00'):sub(1, 3)) or 0
  return ((days * 24 + tonumber(h)) * 60 + tonumber(mi)) * 60000 + tonumber(sec) * 1000 + msf
end

-- Counts an attempt that ended `outcome` at `ms` in its queue's minute of history, with its
-- run time (since the record's started_at) in bucket floor(4 * log2(ms + 1)), ~19 % wide:
-- enough for percentiles without keeping every sample. Written by the finish path in the
-- same call, so the history is exactly the finishes Redis recorded. A failed attempt's
-- error is also appended to the record's `attempt_errors` field (lines of "attempt TAB
-- ended ms TAB run ms TAB error json"; the record keeps only the last error), so it lives
-- and expires with the record.
local function count_finish(key, queue, outcome, ms, attempt, body)
  local k = stats_key(queue, math.floor(ms / 60000))
  if redis.call('HINCRBY', k, 'n', 1) == 1 then redis.call('EXPIRE', k, STATS_TTL) end
  redis.call('HINCRBY', k, outcome, 1)
  local started = rfc3339_ms(redis.call('HGET', key, 'started_at'))
  local run = started and math.max(ms - started, 0)
  if run then
    redis.call('HINCRBY', k, 'rt:' .. math.floor(4 * math.log(run + 1) / math.log(2)), 1)
  end
  if outcome ~= 'succeeded' then
    local line = attempt .. '\t' .. ms .. '\t' .. (run or '') .. '\t' .. body
    local prev = redis.call('HGET', key, 'attempt_errors')
    redis.call('HSET', key, 'attempt_errors', prev and (prev .. '\n' .. line) or line)
  end
end
