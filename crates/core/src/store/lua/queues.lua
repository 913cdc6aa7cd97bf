-- Per-queue figures for GET /v1/queues: tasks per state, oldest waiting task, entries in
-- the queue's ready list.
-- ARGV[A..]: the states, in the order the counts are returned
-- Returns {queue, oldest queued ms or '', ready list length, count per state...} per queue
local out = {}
local queues = redis.call('SMEMBERS', QUEUES)
table.sort(queues)
for _, q in ipairs(queues) do
  local row = {q}
  local oldest = redis.call('ZRANGE', state_index(q, 'queued'), 0, 0, 'WITHSCORES')
  row[2] = oldest[2] or ''
  row[3] = redis.call('LLEN', ready_list(q))
  for i = A, #ARGV do row[#row + 1] = redis.call('ZCARD', state_index(q, ARGV[i])) end
  out[#out + 1] = row
end
return out
