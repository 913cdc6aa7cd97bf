-- A queue's flow-control limits (store/limits.rs; fetch.lua enforces them).
-- ARGV[A]: queue, [A+1]: 'set', then field/value pairs (every limit: the hash is replaced);
--   or 'held', [A+2]: most keys to name.
-- 'set' hands back at once what the new limits free: the tasks waiting for a key with room
-- now (100 keys a call; upkeep sweeps the rest), and the throttled tasks, re-judged at the
-- next fetch (the first 1,000; the rest go when their token is due anyway). Returns 1.
-- 'held' returns {throttled, waiting for a key, {key, waiting}... (the most waiting first)}.
local queue, op = ARGV[A], ARGV[A + 1]
if op == 'set' then
  local lk = limits_key(queue)
  redis.call('DEL', lk)
  if #ARGV >= A + 3 then redis.call('HSET', lk, unpack(ARGV, A + 2)) end
  for _, ck in ipairs(redis.call('SRANDMEMBER', keys_waiting(queue), 100)) do unpark(queue, ck) end
  local ms = now_ms()
  local t = throttled_key(queue)
  local ids = redis.call('ZRANGE', t, 0, 999)
  for _, id in ipairs(ids) do redis.call('ZADD', t, ms, id) end
  wake(queue)
  return 1
end
local cks = redis.call('SRANDMEMBER', keys_waiting(queue), 1000)
local total, keys = 0, {}
for _, ck in ipairs(cks) do
  local n = redis.call('LLEN', key_waiting(queue, ck))
  total = total + n
  keys[#keys + 1] = {ck, n}
end
table.sort(keys, function(a, b) return a[2] > b[2] or (a[2] == b[2] and a[1] < b[1]) end)
local top = {}
for i = 1, math.min(#keys, tonumber(ARGV[A + 2]) or 20) do top[i] = keys[i] end
return {redis.call('ZCARD', throttled_key(queue)), total, top}
