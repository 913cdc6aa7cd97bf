-- Claims due webhook deliveries of one queue for one attempt each: the claim moves the
-- delivery's due score forward by the lease, so a worker that dies mid-attempt leaves it
-- due again once the lease lapses (at least once), and counts the attempt, which fences
-- what a lapsed claim reports later (webhook_settle.lua).
-- ARGV[A]: queue, [A+1]: lease ms, [A+2]: most deliveries
-- Returns {now ms, {id, task, event, url, snapshot json, ended ms, attempt}...}
local queue, lease, limit = ARGV[A], tonumber(ARGV[A + 1]), tonumber(ARGV[A + 2])
local ms = now_ms()
local due = webhook_due(queue)
local out = {}
for _, did in ipairs(redis.call('ZRANGEBYSCORE', due, '-inf', ms, 'LIMIT', 0, limit)) do
  local key = webhook_delivery(queue, did)
  local f = redis.call('HMGET', key, 'task', 'event', 'url', 'snapshot', 'ended_ms')
  if not f[1] then
    redis.call('ZREM', due, did)
  else
    local attempt = redis.call('HINCRBY', key, 'attempts', 1)
    redis.call('ZADD', due, ms + lease, did)
    out[#out + 1] = {did, f[1], f[2], f[3], f[4], f[5], attempt}
  end
end
return {ms, out}
