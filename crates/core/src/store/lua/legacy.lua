-- Part of migrate (single Redis only): deletes what the layout before the last
-- (delivery by apalis-redis, before errand's own backend) left behind for queue `queue`, in
-- slices: the bookkeeping of finished jobs (done, dead and
-- failed sets with their data and meta entries), the old expiry zset, and, once no job of
-- that layout waits in the ready list, the rest of apalis-redis's keys for the queue. Jobs
-- still waiting were translated to their task ids by migrate.lua.
-- ARGV[A]: apalis-redis queue name (its key prefix), [A+1]: slice, [A+2..A+4]: done, dead,
--   failed sets, [A+5]: workers set, [A+6]: per-worker inflight set prefix, [A+7]:
--   per-worker metadata prefix, [A+8]: job data hash, [A+9]: job meta hash,
--   [A+10..]: the queue's other apalis-redis keys
-- Returns how many entries it removed (0 = nothing left to do).
local n = tonumber(ARGV[A + 1])
local data, meta = ARGV[A + 8], ARGV[A + 9]
local cleaned = 0
for i = A + 2, A + 4 do
  for _, jid in ipairs(redis.call('SPOP', ARGV[i], n)) do
    redis.call('HDEL', data, jid)
    redis.call('DEL', meta .. ':' .. jid)
    cleaned = cleaned + 1
  end
end
-- The previous layout's expiry zset: expire.lua rescores the entries it described.
cleaned = cleaned + redis.call('DEL', P .. 'expiry')
if cleaned == 0 and redis.call('HLEN', data) == 0 then
  local workers = ARGV[A + 5]
  local kind = redis.call('TYPE', workers)['ok']
  local names = {}
  if kind == 'zset' then names = redis.call('ZRANGE', workers, 0, -1)
  elseif kind == 'set' then names = redis.call('SMEMBERS', workers) end
  for _, w in ipairs(names) do
    cleaned = cleaned + redis.call('DEL', ARGV[A + 6] .. ':' .. w, ARGV[A + 7] .. w)
  end
  for j = A + 5, #ARGV do
    if j ~= A + 6 and j ~= A + 7 and j ~= A + 9 then cleaned = cleaned + redis.call('DEL', ARGV[j]) end
  end
end
return cleaned
