-- Extends the leases of the claims a worker holds, and tells it which it holds no more.
-- A lease is extended only while the record still holds the claim (state `running`, its
-- `claim` the token), so a worker that lost a task (its lease lapsed and the task went to
-- another worker, was given back, or ended) can never keep the new holder's lease alive,
-- and learns at once that it must stop. Also reports the held tasks with a cancel
-- requested: the fallback for a missed cancel message.
-- ARGV[A]: queue (the claims of one call are of one queue's tasks), [A+1]: lease ms (from
--   now, by Redis's clock), then pairs: id, claim token
-- Returns {cancel requested ids, the positions (1-based) of the pairs whose claim is lost}
local queue = ARGV[A]
local until_ms = now_ms() + tonumber(ARGV[A + 1])
local running = state_index(queue, 'running')
local cancel, lost = {}, {}
for i = A + 2, #ARGV, 2 do
  local id, claim = ARGV[i], ARGV[i + 1]
  local at = (i - A) / 2
  local f = redis.call('HMGET', record_key(queue, id), 'state', 'claim', 'cancel_requested')
  if f[1] == 'running' and f[2] == claim then
    redis.call('ZADD', running, 'XX', until_ms, id)
    if f[3] == '1' then cancel[#cancel + 1] = id end
  else
    lost[#lost + 1] = at
  end
end
return {cancel, lost}
