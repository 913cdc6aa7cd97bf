-- One queue's figures for GET /v1/queues: tasks per state, oldest waiting task, entries in
-- its ready list.
-- ARGV[A]: queue, [A+1..]: the states, in the order the counts are returned
-- Returns {oldest queued ms or '', ready list length, count per state...}
local q = ARGV[A]
local row = {}
local oldest = redis.call('ZRANGE', state_index(q, 'queued'), 0, 0, 'WITHSCORES')
row[1] = oldest[2] or ''
row[2] = redis.call('LLEN', ready_list(q))
for i = A + 1, #ARGV do row[#row + 1] = redis.call('ZCARD', state_index(q, ARGV[i])) end
return row
