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

-- Webhook outbox (store/webhooks.rs): per queue, a zset of delivery ids by the ms their
-- next attempt is due, and a hash per delivery.
local function webhook_due(queue) return L.chan .. 'webhook:' .. queue .. ':due' end
local function webhook_delivery(queue, did) return L.chan .. 'webhook:' .. queue .. ':d:' .. did end

-- Record fields a webhook's `data` leaves out: the input (it can be large, and the
-- receiver sent it) and errand's own bookkeeping.
local WEBHOOK_SKIP = {payload = true, callback = true, webhook = true, webhook_seq = true}

-- Puts a webhook delivery for task `id` entering terminal state `event` into its queue's
-- outbox, due at once, when the record's callback asks for that event. Called from
-- `transition`, so every way a task ends writes its delivery in the same script call as
-- the state change: a crash can lose neither. The delivery keeps a snapshot of the record
-- as it ended, so a later manual retry cannot change what this event says.
local function queue_webhook(key, id, queue, event, ms)
  local raw = redis.call('HGET', key, 'callback')
  if not raw or raw == '' then return end
  local ok, cb = pcall(cjson.decode, raw)
  if not ok or type(cb) ~= 'table' or type(cb.url) ~= 'string' or type(cb.events) ~= 'table' then return end
  local wanted = false
  for _, e in ipairs(cb.events) do if e == event then wanted = true end end
  if not wanted then return end
  local seq = redis.call('HINCRBY', key, 'webhook_seq', 1)
  local did = id .. '.' .. seq
  redis.call('HSET', key, 'webhook', cjson.encode({id = did, event = event, state = 'pending', attempts = 0}))
  local snap, all = {}, redis.call('HGETALL', key)
  for i = 1, #all, 2 do
    if not WEBHOOK_SKIP[all[i]] then snap[#snap + 1] = all[i]; snap[#snap + 1] = all[i + 1] end
  end
  redis.call('HSET', webhook_delivery(queue, did), 'task', id, 'seq', seq, 'event', event,
    'url', cb.url, 'snapshot', cjson.encode(snap), 'ended_ms', ms, 'attempts', 0)
  redis.call('ZADD', webhook_due(queue), ms, did)
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
    queue_webhook(key, id, queue, to, ms)
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
