-- Pauses or resumes a queue. While paused, fetch.lua hands out none of its tasks (one
-- EXISTS on the hot path); running tasks finish and submits are still accepted. Resume
-- wakes the queue's idle workers, so waiting tasks start at once.
-- ARGV[A]: queue, [A+1]: 'pause' | 'resume'
-- Returns the ms the queue was paused at (pause: the first pause's, kept on a repeat), or
-- '' after a resume.
local queue, op = ARGV[A], ARGV[A + 1]
local key = paused_key(queue)
if op == 'pause' then
  redis.call('SET', key, now_ms(), 'NX')
  if CROSS then redis.call('SADD', QUEUES, queue) end
  return redis.call('GET', key)
end
if redis.call('DEL', key) == 1 then wake(queue) end
return ''
