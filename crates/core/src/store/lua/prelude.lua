-- Shared by every errand script (prepended at load time).
-- ARGV[1..9] always carry the key layout, so one Rust definition (store::Layout) names
-- every key; script-specific arguments start at ARGV[10].
local L = {
  record = ARGV[1],        -- task record hash prefix, e.g. "errand:task:"
  index = ARGV[2],         -- reserved for the listing index (not written yet)
  running = ARGV[3],       -- zset: running task id -> lease expiry (ms)
  delayed = ARGV[4],       -- zset: scheduled/retrying task id -> due time (ms)
  apalis = ARGV[5],        -- apalis-redis queue name prefix, e.g. "errand:q:"
  sfx_data = ARGV[6],      -- apalis-redis key suffixes (from apalis_redis::Config)
  sfx_meta = ARGV[7],
  sfx_active = ARGV[8],
  chan = ARGV[9],          -- channel prefix: <chan>wake:<queue>, <chan>events
}
local A = 10

local function publish_event(id, state)
  redis.call('PUBLISH', L.chan .. 'events', id .. ' ' .. state)
end

-- Hands task `id` to apalis-redis as job `jid` on `queue`, in apalis-redis 1.0's own layout
-- (what its batch_push.lua writes), but straight onto the active list: never through its
-- scheduled set, whose unbounded fetch breaks past ~8k entries. Then wakes idle workers.
local function enqueue_job(queue, id, jid)
  local q = L.apalis .. queue
  redis.call('HSET', q .. L.sfx_data, jid, id)
  redis.call('HSET', q .. L.sfx_meta .. ':' .. jid,
    'attempts', 0, 'max_attempts', 1, 'status', 'Pending', 'idempotency_key', '', 'errand_id', id)
  redis.call('RPUSH', q .. L.sfx_active, jid)
  redis.call('PUBLISH', L.chan .. 'wake:' .. queue, '1')
end

local function expire_terminal(key)
  local ttl = tonumber(redis.call('HGET', key, 'result_ttl_secs')) or 86400
  redis.call('EXPIRE', key, ttl)
end
