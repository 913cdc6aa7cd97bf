-- One page of schedules in id order.
-- ARGV[A]: list ids after this one ('' = from the first), [A+1]: page size.
-- Returns {ids examined, last id examined or '', schedule_reply per schedule still there}.
local from = ARGV[A] == '' and '-' or ('(' .. ARGV[A])
local ids = redis.call('ZRANGEBYLEX', SCHEDULE_IDS, from, '+', 'LIMIT', 0, tonumber(ARGV[A + 1]))
local out = {#ids, ids[#ids] or ''}
for _, id in ipairs(ids) do
  if redis.call('EXISTS', schedule_key(id)) == 1 then out[#out + 1] = schedule_reply(id) end
end
return out
