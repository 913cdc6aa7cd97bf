-- A cluster's first step of a submit (the pointer lives in the id's own slot, apart from
-- the queue's): names the queue each id's task will live in, unless a live task holds it.
-- With `expected` set, takes the id over from queue `expected` (whose record the caller
-- found missing: a submit that died between its claim and its create) if it still names it.
-- ARGV[A..]: triples of id, queue, expected ('' = a plain claim); every id of one call
--   hashes to one slot (the caller sends one id per call)
-- Returns per triple the queue that holds the id (its own queue when the claim is taken).
local out = {}
for i = A, #ARGV, 3 do
  local id, queue, expected = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  if expected ~= '' and redis.call('GET', pointer_key(id)) == expected then
    redis.call('SET', pointer_key(id), queue)
    out[#out + 1] = queue
  else
    out[#out + 1] = claim_id(id, queue)
  end
end
return out
