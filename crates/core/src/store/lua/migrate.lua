-- One slice of converting a single Redis from the untagged layout (errand before its keys
-- carried hash tags; see migrate.rs) to this one. Safe to run from several processes at
-- once and to stop anywhere: each call is atomic, moves at most `slice` things, and the
-- next call goes on from what is left. Only ever run on a single Redis (it reaches across
-- slots), which is all the untagged layout ever ran on.
-- ARGV[A]: slice, [A+1]: the old ready list's key suffix (apalis-redis's active list),
--   [A+2]: the old job data hash suffix, [A+3]: the old job meta hash suffix,
--   [A+4]: tombstone ms, [A+5..]: the task states
-- Returns how much it moved (0: nothing is left).
local slice = tonumber(ARGV[A])
local sfx_ready, sfx_data, sfx_meta = ARGV[A + 1], ARGV[A + 2], ARGV[A + 3]
local keep = tonumber(ARGV[A + 4])
local STATES = {}
for i = A + 5, #ARGV do STATES[#STATES + 1] = ARGV[i] end
local function old_record(id) return P .. 'task:' .. id end
local moved = 0

-- 1. Records, found through the old all-tasks index: renamed (keeping their TTL) into
-- their queue's slot, each with its pointer.
local index = P .. 'tasks'
for _, id in ipairs(redis.call('ZRANGE', index, 0, slice - 1)) do
  local old = old_record(id)
  local q = redis.call('HGET', old, 'queue')
  if q then
    if redis.call('EXISTS', record_key(q, id)) == 0 then redis.call('RENAME', old, record_key(q, id)) end
    redis.call('DEL', old)
    if not redis.call('GET', pointer_key(id)) then redis.call('SET', pointer_key(id), q) end
  end
  redis.call('ZREM', index, id)
  moved = moved + 1
end
if moved > 0 then return moved end

-- 2. Per queue: its indexes renamed (merged into any the new layout already wrote), its
-- ready list moved ahead of what the new layout queued meanwhile, jobs of the layout before
-- (apalis-redis job ids) translated to their tasks.
local function move_zset(from, to)
  if redis.call('EXISTS', from) == 0 then return 0 end
  if redis.call('EXISTS', to) == 0 then
    redis.call('RENAME', from, to)
  else
    redis.call('ZUNIONSTORE', to, 2, to, from)
    redis.call('DEL', from)
  end
  return 1
end
for _, q in ipairs(redis.call('SMEMBERS', QUEUES)) do
  moved = moved + move_zset(P .. 'idx:' .. q, queue_index(q))
  for _, s in ipairs(STATES) do moved = moved + move_zset(P .. 'idx:' .. q .. ':' .. s, state_index(q, s)) end
  local old_ready = P .. 'q:' .. q .. sfx_ready
  local data = P .. 'q:' .. q .. sfx_data
  for _ = 1, slice do
    local e = redis.call('RPOP', old_ready)
    if not e then break end
    moved = moved + 1
    local id = e
    if redis.call('EXISTS', record_key(q, e)) == 0 then
      id = redis.call('HGET', data, e)
      if id then
        redis.call('HDEL', data, e)
        redis.call('DEL', P .. 'q:' .. q .. sfx_meta .. ':' .. e)
        if redis.call('HGET', record_key(q, id), 'job') ~= e then id = nil end
      end
    end
    if id then redis.call('LPUSH', ready_list(q), id) end
  end
  if moved >= slice then return moved end
end
if moved > 0 then return moved end

-- 3. The delayed set, split by queue.
local delayed = P .. 'delayed'
local due = redis.call('ZRANGE', delayed, 0, slice - 1, 'WITHSCORES')
for i = 1, #due, 2 do
  local id = due[i]
  local q = redis.call('GET', pointer_key(id))
  if q and string.sub(q, 1, 1) ~= '~' then redis.call('ZADD', delayed_key(q), due[i + 1], id) end
  redis.call('ZREM', delayed, id)
  moved = moved + 1
end
if moved > 0 then return moved end

-- 4. Tombstones become tombstone pointers; the schedules and the worker registry move
-- under their hash tags (workers register again with their next heartbeat).
local expired = P .. 'expired'
local gone = redis.call('ZRANGE', expired, 0, slice - 1, 'WITHSCORES')
for i = 1, #gone, 2 do
  if not redis.call('GET', pointer_key(gone[i])) then
    redis.call('SET', pointer_key(gone[i]), '~' .. math.floor(tonumber(gone[i + 1])), 'PX', keep)
  end
  redis.call('ZREM', expired, gone[i])
  moved = moved + 1
end
if moved > 0 then return moved end
local ST = P .. '{~schedules}:'
local ids = P .. 'schedule-ids'
for _, id in ipairs(redis.call('ZRANGE', ids, 0, slice - 1)) do
  local old = P .. 'schedule:' .. id
  if redis.call('EXISTS', old) == 1 then
    if redis.call('EXISTS', ST .. 's:' .. id) == 0 then redis.call('RENAME', old, ST .. 's:' .. id) end
    redis.call('DEL', old)
  end
  redis.call('ZADD', ST .. 'ids', 0, id)
  redis.call('ZREM', ids, id)
  moved = moved + 1
end
if moved > 0 then return moved end
moved = moved + move_zset(P .. 'schedules', ST .. 'due')
local workers = P .. 'workers'
if redis.call('TYPE', workers)['ok'] == 'zset' then
  for _, w in ipairs(redis.call('ZRANGE', workers, 0, -1)) do redis.call('DEL', P .. 'worker:' .. w) end
  redis.call('DEL', workers)
  moved = moved + 1
end
return moved
