-- A queue's finish history for the dashboard: the per-minute hashes count_finish writes,
-- summed into `points` buckets of `width` minutes ending with the current minute.
-- ARGV[A]: queue, [A+1]: points, [A+2]: width (minutes)
-- Returns {last minute, then per bucket (oldest first) a flat field/value list}.
local queue, points, width = ARGV[A], tonumber(ARGV[A + 1]), tonumber(ARGV[A + 2])
local last = math.floor(now_ms() / 60000)
local first = last - points * width + 1
local out = {last}
for p = 0, points - 1 do
  local sum, fields = {}, {}
  for m = first + p * width, first + (p + 1) * width - 1 do
    local h = redis.call('HGETALL', stats_key(queue, m))
    for i = 1, #h, 2 do
      local f = h[i]
      if not sum[f] then sum[f] = 0; fields[#fields + 1] = f end
      sum[f] = sum[f] + tonumber(h[i + 1])
    end
  end
  local flat = {}
  for _, f in ipairs(fields) do flat[#flat + 1] = f; flat[#flat + 1] = tostring(sum[f]) end
  out[#out + 1] = flat
end
return out
