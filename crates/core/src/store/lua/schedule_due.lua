-- The schedules whose tick is due, by Redis's clock: one clock for every worker, whatever
-- their hosts' clocks say. Reads only, bar dropping an id whose hash is gone.
-- ARGV[A]: most schedules to return.
-- Returns {now ms, earliest tick ms in the zset or '', then per due schedule: id, tick ms
-- (the zset score, verbatim), its hash (HGETALL)}.
local now = now_ms()
local due = redis.call('ZRANGEBYSCORE', SCHEDULES, '-inf', now, 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[A]))
local out = {now, ''}
for i = 1, #due, 2 do
  local id = due[i]
  local h = redis.call('HGETALL', schedule_key(id))
  if #h == 0 then
    redis.call('ZREM', SCHEDULES, id)
  else
    out[#out + 1] = id
    out[#out + 1] = due[i + 1]
    out[#out + 1] = h
  end
end
local first = redis.call('ZRANGE', SCHEDULES, 0, 0, 'WITHSCORES')
if first[2] then out[2] = first[2] end
return out
