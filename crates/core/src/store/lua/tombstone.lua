-- A cluster's second step of expiry (expire.lua's pointers live in other slots): turns the
-- pointer of an id whose record expired into a tombstone, if it still names that queue.
-- ARGV[A]: id, [A+1]: queue, [A+2]: tombstone ms
if redis.call('GET', pointer_key(ARGV[A])) == ARGV[A + 1] then
  redis.call('SET', pointer_key(ARGV[A]), '~' .. now_ms(), 'PX', tonumber(ARGV[A + 2]))
  return 1
end
return 0
