-- One page of one queue's tasks, newest first, with bounded cost: at most `budget` index entries are
-- examined per call, so a page can hold fewer than `limit` tasks and still have a cursor.
-- With a state filter the order is by when tasks entered that state (for `running`, by lease
-- expiry: that index is the lease table); otherwise by creation.
-- Listing across queues merges these pages (store::list).
-- ARGV[A]: state or '', [A+1]: queue, [A+2]: kind or '', [A+3]: cursor score or '',
--   [A+4]: cursor id, [A+5]: limit, [A+6]: budget
-- Returns {next score or '', next id or '', then per task: its score, its record HGETALL}
local state, queue, kind = ARGV[A], ARGV[A + 1], ARGV[A + 2]
local cur_score, cur_id = tonumber(ARGV[A + 3]), ARGV[A + 4]
local limit, budget = tonumber(ARGV[A + 5]), tonumber(ARGV[A + 6])

local sources = {(state ~= '') and state_index(queue, state) or queue_index(queue)}

-- Up to `n` entries of `key` strictly after the cursor, newest first.
local more = false
local function after_cursor(key, n)
  local got, offset, chunk = {}, 0, n
  local max = cur_score and tostring(cur_score) or '+inf'
  while #got < n and offset < n + 10000 do
    local batch = redis.call('ZREVRANGEBYSCORE', key, max, '-inf', 'WITHSCORES', 'LIMIT', offset, chunk)
    for j = 1, #batch, 2 do
      local m, s = batch[j], tonumber(batch[j + 1])
      if not (cur_score and s == cur_score and m >= cur_id) and #got < n then
        got[#got + 1] = {s, m}
      end
    end
    if #batch < 2 * chunk then return got end
    offset = offset + chunk
  end
  more = true
  return got
end

local cands = {}
for _, key in ipairs(sources) do
  for _, e in ipairs(after_cursor(key, budget)) do cands[#cands + 1] = e end
end
table.sort(cands, function(a, b)
  if a[1] ~= b[1] then return a[1] > b[1] end
  return a[2] > b[2]
end)

local out = {'', ''}
local found, last = 0, nil
for i = 1, math.min(#cands, budget) do
  local e = cands[i]
  last = e
  local h = redis.call('HGETALL', record_key(queue, e[2]))
  if #h > 0 then
    local ok = true
    if kind ~= '' then
      ok = false
      for j = 1, #h, 2 do
        if h[j] == 'kind' then ok = (h[j + 1] == kind) break end
      end
    end
    if ok then
      out[#out + 1] = tostring(e[1])
      out[#out + 1] = h
      found = found + 1
      if found >= limit then
        if i < #cands or more then out[1], out[2] = tostring(e[1]), e[2] end
        return out
      end
    end
  end
end
if last and (#cands > budget or more) then out[1], out[2] = tostring(last[1]), last[2] end
return out
