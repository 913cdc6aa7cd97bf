-- Creates a task record and enqueues it, or returns the existing record for that id.
-- ARGV[A]: id, [A+1]: job id, [A+2]: created ms (unused until listing has an index), [A+3]: due ms (0 = now), [A+4..]: record field/value pairs
local id, jid = ARGV[A], ARGV[A + 1]
local key = L.record .. id
if redis.call('EXISTS', key) == 1 then
  return {0, redis.call('HGETALL', key)}
end
local fields = {}
for i = A + 4, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', key, unpack(fields))
local due = tonumber(ARGV[A + 3])
if due > 0 then
  redis.call('ZADD', L.delayed, due, id)
  publish_event(id, 'scheduled')
else
  enqueue_job(redis.call('HGET', key, 'queue'), id, jid)
  publish_event(id, 'queued')
end
return {1}
