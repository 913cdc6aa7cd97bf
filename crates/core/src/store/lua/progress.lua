-- Records progress of the attempts that hold their tasks' claims; a report of a claim the
-- task no longer holds is dropped. Reports made at the same moment by one worker process
-- arrive together.
-- ARGV[A]: queue (every report of one call is of one queue's tasks), [A+1]: now rfc3339,
--   then groups of 3: id, claim token, progress json
-- Returns one 1 (recorded) or 0 (the claim is not the task's any more) per group.
local queue, now = ARGV[A], ARGV[A + 1]
local out = {}
for i = A + 2, #ARGV, 3 do
  local id = ARGV[i]
  local key = record_key(queue, id)
  local f = redis.call('HMGET', key, 'state', 'claim')
  if f[1] == 'running' and f[2] == ARGV[i + 1] then
    redis.call('HSET', key, 'progress', ARGV[i + 2], 'updated_at', now)
    event(id, 'progress')
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
flush_events()
return out
