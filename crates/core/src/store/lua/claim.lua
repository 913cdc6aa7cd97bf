-- A cluster's first step of a submit (the pointer lives in the id's own slot, apart from
-- the queue's): names the queue each id's task will live in, unless a task holds it. The
-- claim is bare, with a TTL, until the create's confirm (confirm.lua), so a submit that
-- dies between its steps leaves no pointer for good. With `expected` set, takes the id over
-- if its pointer still reads exactly that (a claim whose create never came, or the pointer
-- of a task whose record the caller found expired).
-- ARGV[A]: claim ms, then triples of id, queue, expected ('' = a plain claim); every id of
--   one call hashes to one slot (the caller sends one id per call)
-- Returns per triple {the queue that holds the id (its own when the claim is taken), the
--   pointer as the claim found it ('' = none)}.
local claim_ms = tonumber(ARGV[A])
local out = {}
for i = A + 1, #ARGV, 3 do
  local id, queue, expected = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  if expected ~= '' and redis.call('GET', pointer_key(id)) == expected then
    redis.call('SET', pointer_key(id), queue, 'PX', claim_ms)
    out[#out + 1] = {queue, ''}
  else
    local owner, seen = claim_id(id, queue, claim_ms)
    out[#out + 1] = {owner, seen}
  end
end
return out
