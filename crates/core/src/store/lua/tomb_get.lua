-- When id ARGV[A]'s record expired, while its tombstone lasts: probes its shard's buckets
-- from the newest back over the tombstone time.
-- ARGV[A]: id, [A+1]: tombstone ms
-- Returns the expiry ms, or nil.
local id, keep = ARGV[A], tonumber(ARGV[A + 1])
if keep <= 0 then return false end
local ms = now_ms()
local w = tomb_width(keep)
local shard = tomb_shard(id)
for n = math.floor(ms / w), math.floor((ms - keep) / w), -1 do
  local at = redis.call('HGET', tomb_key(shard, w, n), id)
  if at then
    if tonumber(at) + keep >= ms then return at end
    return false
  end
end
return false
