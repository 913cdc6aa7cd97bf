-- Records progress of the attempt that owns the task; a stale attempt's report is dropped.
-- ARGV[A]: id, [A+1]: attempt, [A+2]: progress json, [A+3]: now rfc3339
local key = L.record .. ARGV[A]
local f = redis.call('HMGET', key, 'state', 'attempt')
if f[1] ~= 'running' or f[2] ~= ARGV[A + 1] then return 0 end
redis.call('HSET', key, 'progress', ARGV[A + 2], 'updated_at', ARGV[A + 3])
publish_event(ARGV[A], 'progress')
return 1
