-- Creates schedule `id` unless one exists: its hash, its entry in the id index and, when it
-- fires, its first tick in the firing zset, all in one step.
-- ARGV[A]: id, [A+1]: first tick ms (0 = none: disabled), then the hash's field/value items.
-- Returns 1 (created) or the existing schedule (schedule_reply).
local id, first = ARGV[A], tonumber(ARGV[A + 1])
local key = schedule_key(id)
if redis.call('EXISTS', key) == 1 then return schedule_reply(id) end
redis.call('HSET', key, unpack(ARGV, A + 2, #ARGV))
redis.call('ZADD', SCHEDULE_IDS, 0, id)
if first > 0 then redis.call('ZADD', SCHEDULES, first, id) end
return 1
