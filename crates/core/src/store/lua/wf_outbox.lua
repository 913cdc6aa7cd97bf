-- A queue's workflow outbox (prelude's `workflow_end`): the steps whose task entered or left
-- a terminal state, taken by an applier (store/workflow_ends.rs) and dropped once their
-- workflow has them.
-- ARGV[A]: 'take' | 'done', [A+1]: queue, then
--   take: [A+2] most entries, [A+3] lease ms (how long the entry is the taker's before
--         another applier may take it again). Returns per due entry: id, its lease (the
--         score `done` fences on), workflow, step, task state, result or error json, wf_seq
--         (workflow and step '' when the record is gone: the caller reads them off the id).
--   done: pairs of id, lease. Drops each entry still under that lease (a newer end of the
--         same step, written meanwhile, stays for the next take).
local op, queue = ARGV[A], ARGV[A + 1]
local out_key = wf_outbox(queue)
local ms = now_ms()
if op == 'take' then
  local n, lease = tonumber(ARGV[A + 2]), tonumber(ARGV[A + 3])
  local out = {}
  local until_ms = ms + lease
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', out_key, '-inf', ms, 'LIMIT', 0, n)) do
    local f = redis.call('HMGET', record_key(queue, id), 'workflow', 'step', 'state', 'result',
      'error', 'wf_seq')
    redis.call('ZADD', out_key, until_ms, id)
    local body = f[5] or ''
    if f[3] == 'succeeded' then body = f[4] or '' end
    out[#out + 1] = id
    out[#out + 1] = until_ms
    out[#out + 1] = f[1] or ''
    out[#out + 1] = f[2] or ''
    out[#out + 1] = f[3] or ''
    out[#out + 1] = body
    out[#out + 1] = f[6] or '0'
  end
  return out
end
local dropped = 0
for i = A + 2, #ARGV, 2 do
  if tonumber(redis.call('ZSCORE', out_key, ARGV[i])) == tonumber(ARGV[i + 1]) then
    redis.call('ZREM', out_key, ARGV[i])
    dropped = dropped + 1
  end
end
return dropped
