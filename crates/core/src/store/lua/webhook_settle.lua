-- Records how a claimed webhook attempt went: on the delivery (due again after `delay`, or
-- deleted once delivered or given up) and, as a summary, on the task record. Only the
-- latest claim may settle (its attempt number is the delivery's), so a claim that lapsed
-- while its request hung cannot undo what the attempt after it recorded. The task record is
-- written only while it exists (it may have expired) and while this is its latest delivery.
-- ARGV[A]: queue, [A+1]: delivery id, [A+2]: attempt, [A+3]: 'retry' | 'done',
--   [A+4]: retry delay ms, [A+5]: summary json for the record's `webhook` field
-- Returns 1 (recorded) or 0 (a later claim owns the delivery, or it is gone).
local queue, did, attempt, verdict = ARGV[A], ARGV[A + 1], ARGV[A + 2], ARGV[A + 3]
local delay, summary = tonumber(ARGV[A + 4]), ARGV[A + 5]
local key = webhook_delivery(queue, did)
local f = redis.call('HMGET', key, 'attempts', 'task', 'seq')
if f[1] ~= attempt then return 0 end
local rec = record_key(queue, f[2])
if redis.call('HGET', rec, 'webhook_seq') == f[3] then
  redis.call('HSET', rec, 'webhook', summary)
end
if verdict == 'retry' then
  redis.call('ZADD', webhook_due(queue), now_ms() + delay, did)
else
  redis.call('ZREM', webhook_due(queue), did)
  redis.call('DEL', key)
end
return 1
