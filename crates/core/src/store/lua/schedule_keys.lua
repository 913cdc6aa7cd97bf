-- Shared by the schedule scripts (prepended after prelude.lua); store::Layout names each.
-- Every schedule key carries one hash tag (`~` is never in a queue name), so the schedule
-- scripts touch one slot.
local ST = P .. '{~schedules}:'
local SCHEDULES = ST .. 'due'      -- zset: enabled schedule id -> tick it waits for (ms)
local SCHEDULE_IDS = ST .. 'ids'   -- zset: every schedule id, all scored 0 (listing)
local function schedule_key(id) return ST .. 's:' .. id end

-- A schedule's hash and its firing score ('' when it is not waiting for a tick).
local function schedule_reply(id)
  return {redis.call('HGETALL', schedule_key(id)), redis.call('ZSCORE', SCHEDULES, id) or ''}
end
