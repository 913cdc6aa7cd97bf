-- Applies what workers planned for due ticks, each only if its schedule still waits for that
-- very tick: the same score in the firing zset and the same definition (created_at). Any
-- number of workers may plan one tick from the same schedule_due.lua answer; the first to
-- get here applies it, the others find the score moved on. This compare-and-set is the
-- lease: one fire per tick. The tick's task was created before this (it lives in its
-- queue's slot, not the schedules'), under an id made of the schedule's and the tick's, so a
-- crash between the two steps fires the tick again into the same id: created once.
-- ARGV[A]: now RFC 3339, [A+1]: schedule count, then per schedule:
--   id, tick ms (as schedule_due.lua gave it), created_at (as read), next tick ms (0 = none),
--   task id ('' = advance without firing)
-- Returns per schedule: 0 (not applied: another worker was first, or the schedule changed),
-- 1 (fired), 2 (moved on without firing: a late tick under misfire skip).
local now_iso = ARGV[A]
local out = {}
local i = A + 2
for s = 1, tonumber(ARGV[A + 1]) do
  local id, tick, created, next_ms = ARGV[i], ARGV[i + 1], ARGV[i + 2], tonumber(ARGV[i + 3])
  local tid = ARGV[i + 4]
  local key = schedule_key(id)
  local score = redis.call('ZSCORE', SCHEDULES, id)
  out[s] = 0
  if score and tonumber(score) == tonumber(tick)
      and (redis.call('HGET', key, 'created_at') or '') == created then
    if next_ms > 0 then
      redis.call('ZADD', SCHEDULES, next_ms, id)
    else
      redis.call('ZREM', SCHEDULES, id)
    end
    out[s] = 2
    if tid ~= '' then
      redis.call('HSET', key, 'last_run_at', now_iso, 'last_task_id', tid)
      redis.call('HINCRBY', key, 'run_count', 1)
      out[s] = 1
    end
  end
  i = i + 5
end
return out
