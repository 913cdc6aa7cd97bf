-- Deletes apalis-redis's bookkeeping for finished jobs in small slices. apalis-redis 1.0
-- keeps every finished job's data, meta hash and done/dead set entry forever, and its own
-- vacuum() also deletes jobs still waiting for retry; errand's record is the truth, so the
-- apalis copy of a finished job is garbage the moment it is acknowledged.
-- ARGV[A]: apalis queue name (full), [A+1]: slice size, [A+2..]: its done/dead/failed set keys
local q, n = ARGV[A], tonumber(ARGV[A + 1])
local cleaned = 0
for i = A + 2, #ARGV do
  local ids = redis.call('SPOP', ARGV[i], n)
  for _, jid in ipairs(ids) do
    redis.call('HDEL', q .. L.sfx_data, jid)
    redis.call('DEL', q .. L.sfx_meta .. ':' .. jid)
  end
  cleaned = cleaned + #ids
end
return cleaned
