-- A cluster's last step of a create (the pointer lives in the id's own slot): makes the id's
-- pointer its task's for good, '<queue>@<created ms>' without a TTL, once the record exists.
-- A claim still waiting (bare, with its TTL) or the pointer of an older task of this queue
-- under the id is replaced; a pointer naming another queue is left (that queue took the id
-- over); a claim that lapsed meanwhile (or no pointer at all) is set again.
-- ARGV[A]: id, [A+1]: queue, [A+2]: created ms (as the queue's slot scored it)
-- Returns 1 (the pointer names the task) or 0 (it names another queue).
local id, queue, created = ARGV[A], ARGV[A + 1], ARGV[A + 2]
local k = pointer_key(id)
local cur = redis.call('GET', k)
if cur and string.sub(cur, 1, 1) ~= '~' then
  local owner, c = pointer_parts(cur)
  if owner ~= queue then return 0 end
  if c and c > tonumber(created) then return 1 end
end
redis.call('SET', k, queue .. '@' .. created)
return 1
