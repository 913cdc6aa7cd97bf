-- A cluster's second step of expiry (expire.lua's pointers live in other slots): frees the
-- pointer of an id whose record expired, if it still names that queue's expired task: a
-- confirmed pointer created before `fence` (the ms the queue's slot found the record gone;
-- a task submitted again since was created after it), or a bare one without a TTL (written
-- before pointers were confirmed). A claim in progress (bare, with its TTL) is left alone:
-- its submit creates a new task. Also a submit's own step when its create found the task
-- the pointer names expired (fence: that task's created ms + 1).
-- ARGV[A]: id, [A+1]: queue, [A+2]: fence ms
-- Returns 1 when the id is free (its tombstone may be written), else 0.
local id, queue, fence = ARGV[A], ARGV[A + 1], tonumber(ARGV[A + 2])
local k = pointer_key(id)
local cur = redis.call('GET', k)
if not cur then return 1 end
if string.sub(cur, 1, 1) == '~' then return 0 end
local owner, created = pointer_parts(cur)
if owner ~= queue then return 0 end
if created then
  if created >= fence then return 0 end
elseif redis.call('PTTL', k) ~= -1 then
  return 0
end
redis.call('DEL', k)
return 1
