-- Enables or disables schedule `id`. Enabling puts it back in the firing zset at the tick
-- the caller computed from now, so ticks that passed while it was disabled never run;
-- disabling takes it out. A schedule already in the asked state is left as it is.
-- ARGV[A]: id, [A+1]: '1' (enable) or '0' (disable), [A+2]: next tick ms (0 = none),
-- [A+3]: now, RFC 3339.
-- Returns the schedule after the change (schedule_reply), or 0 when there is none.
local id, on, first = ARGV[A], ARGV[A + 1], tonumber(ARGV[A + 2])
local key = schedule_key(id)
if redis.call('EXISTS', key) == 0 then return 0 end
if redis.call('HGET', key, 'enabled') ~= on then
  redis.call('HSET', key, 'enabled', on, 'updated_at', ARGV[A + 3])
  if on == '1' and first > 0 then
    redis.call('ZADD', SCHEDULES, first, id)
  else
    redis.call('ZREM', SCHEDULES, id)
  end
end
return schedule_reply(id)
