-- A cluster's last step of expiry: the tombstones of ids whose pointers tombstone.lua
-- freed, in their shard's slot (prelude's bury).
-- ARGV[A]: tombstone ms, [A+1]: expiry ms, [A+2..]: ids, all of one tombstone shard
local keep, ms = tonumber(ARGV[A]), tonumber(ARGV[A + 1])
for i = A + 2, #ARGV do bury(ARGV[i], ms, keep) end
return #ARGV - A - 1
