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
local EXPIRY = L.chan .. 'expiry'       -- zset: "queue|state|id" -> record expiry ms
local EXPIRED = L.chan .. 'expired'     -- zset: recently expired ids -> expiry ms (tombstones)
local QUEUES = L.chan .. 'queues'       -- set: every queue ever submitted to

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function publish_event(id, state)
  redis.call('PUBLISH', L.chan .. 'events', id .. ' ' .. state)
end

local function wake(queue)
  redis.call('PUBLISH', L.chan .. 'wake:' .. queue, '1')
end

-- Hands task `id` to apalis-redis as job `jid` on `queue`, in apalis-redis 1.0's own layout
-- (what its batch_push.lua writes), but straight onto the active list: never through its
-- scheduled set, whose unbounded fetch breaks past ~8k entries. The caller wakes the queue.
-- `front`: ahead of the waiting jobs (apalis fetches from the head), for a task whose
-- attempt was already under way when its worker died.
local function enqueue_job(queue, id, jid, front)
  local q = L.apalis .. queue
  redis.call('HSET', q .. L.sfx_data, jid, id)
  redis.call('HSET', q .. L.sfx_meta .. ':' .. jid,
    'attempts', 0, 'max_attempts', 1, 'status', 'Pending', 'idempotency_key', '', 'errand_id', id)
  redis.call(front and 'LPUSH' or 'RPUSH', q .. L.sfx_active, jid)
end

-- Keeps the per-queue state indexes true as a task moves `from` -> `to` (from = nil on
-- create; `ms` is the score in `to`'s index: the lease expiry for `running`), and gives a
-- record entering a terminal state its TTL (and takes it away from a
-- record leaving one, on manual retry). Every state change goes through here. `ttl`: the
-- record's result_ttl_secs when the caller already read it (else it is read here).
local function transition(key, id, queue, from, to, ms, ttl)
  if from then
    redis.call('ZREM', state_index(queue, from), id)
    if TERMINAL[from] then
      redis.call('ZREM', EXPIRY, queue .. '|' .. from .. '|' .. id)
      redis.call('PERSIST', key)
    end
  end
  redis.call('ZADD', state_index(queue, to), ms, id)
  if TERMINAL[to] then
    ttl = tonumber(ttl or redis.call('HGET', key, 'result_ttl_secs')) or 86400
    redis.call('EXPIRE', key, ttl)
    redis.call('ZADD', EXPIRY, ms + ttl * 1000, queue .. '|' .. to .. '|' .. id)
  end
end

-- Creates task `id` from its record fields (the field/value items args[from..to]) and hands
-- it on: to `delayed` when due > 0, else onto its queue as job `jid`. Returns false, having
-- written nothing, when the id is taken. The caller wakes the queue. Every way a task comes
-- into being (submit, a schedule's tick) goes through here.
local function create_task(id, jid, queue, due, created, args, from, to)
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
    enqueue_job(queue, id, jid)
    transition(key, id, queue, nil, 'queued', created)
  end
  return true
end
