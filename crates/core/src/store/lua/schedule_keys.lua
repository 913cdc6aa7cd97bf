-- Shared by the schedule scripts (prepended after prelude.lua); store::Layout names each.
local SCHEDULES = L.chan .. 'schedules'        -- zset: enabled schedule id -> tick it waits for (ms)
local SCHEDULE_IDS = L.chan .. 'schedule-ids'  -- zset: every schedule id, all scored 0 (listing)
local function schedule_key(id) return L.chan .. 'schedule:' .. id end

-- A schedule's hash and its firing score ('' when it is not waiting for a tick).
local function schedule_reply(id)
  return {redis.call('HGETALL', schedule_key(id)), redis.call('ZSCORE', SCHEDULES, id) or ''}
end
