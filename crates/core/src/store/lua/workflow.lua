-- A workflow's bookkeeping (docs/workflows.md): one hash per workflow, in a slot of its own
-- (one of store::workflows::SHARDS hash tags), never in a step's queue's slot. Steps are
-- tasks in their own queues; what reaches this hash is each step's end, applied from the
-- queues' outboxes (`workflow_end` in the prelude), and what leaves it is the steps to
-- create and the tasks to cancel, which the caller does in the steps' slots. Every op is
-- idempotent: applied twice, an end changes nothing the second time, and what must still be
-- created is returned again until the step's task is seen.
--
-- The hash `H`: `state` (running | succeeded | failed | cancelled), `n` steps (spawned ones
-- too), `ended`, `failed`, `cancelled` (steps in those states), `cancel` ('1' once
-- requested), `created_ms`, `ended_ms`, `max_fan_out`, `ttl` (secs kept once ended),
-- `order` (json: the submitted step names), `traceparent`; and per step `s`:
--   task:s  the task to create (json, store::workflows::StepTask, passed back as it is)
--   dag:s   {"after": [[dep, "fail"|"run"]...], "next": [dependents], "map": bool,
--            "parent": map step (a spawned step)}
--   res:s   a map step's and a spawned step's raw result (the reduce joins them unparsed)
--   cx:s    '1' once a cancel of the workflow cancelled its task
--   st:s    waiting | creating | started | mapping | succeeded | failed | cancelled
--   wait:s  dependencies not yet ended
--   out:s   json of its end: {"id", "state", "result" | "error"} (a map step's result is
--           its spawned steps' results, in order, and "children" their ends)
--   seq:s   the task's wf_seq last applied (older ends are ignored)
--   nt:s    '1': ended without a task (a dependency failed, or the workflow was cancelled)
--   kids:s, kwait:s  a map step's spawned steps and how many have not ended
-- A step's task id is `<workflow id>.<step>` (a spawned step's `<step>.<i>`).
-- ARGV[A]: op, [A+1]: the workflow's tag, [A+2]: workflow id, [A+3]: how long a workflow
-- may go untouched before upkeep looks at it (ms), then the op's own.
local op, WT, wid = ARGV[A], ARGV[A + 1], ARGV[A + 2]
local STALL = tonumber(ARGV[A + 3])
local H = WT .. 'wf:' .. wid
local LIVE, IDX, ENDED = WT .. 'live', WT .. 'idx', WT .. 'ended'
local ms = now_ms()
local CREATES, CANCELS, LINES = {}, {}, {}
-- An end applied before was sent again: every step still `creating` is returned.
local REAPPLIED = false
-- The state this call ended the workflow in ('' if it did not): counted once, by its caller.
local SETTLED = ''

local function term(s) return s == 'succeeded' or s == 'failed' or s == 'cancelled' end
local function get(f) return redis.call('HGET', H, f) end
local DAGS = {}
local function dag(name)
  local d = DAGS[name]
  if not d then
    d = cjson.decode(get('dag:' .. name) or '{}')
    DAGS[name] = d
  end
  return d
end
local function task_id(name) return wid .. '.' .. name end
local function say(name, s) LINES[#LINES + 1] = wid .. ' ' .. name .. ' ' .. s end

-- The inputs of step `name`: each dependency's end by name (a json object).
local function inputs(name)
  local parts = {}
  for _, a in ipairs(dag(name).after or {}) do
    parts[#parts + 1] = cjson.encode(a[1]) .. ':' .. (get('out:' .. a[1]) or 'null')
  end
  return '{' .. table.concat(parts, ',') .. '}'
end

-- A step to create: its task, its inputs, and for a spawned step the raw result of its
-- map step (the caller takes the entry's payload from it exactly: decoding and encoding it
-- here would turn `[]` into `{}` and round large numbers).
-- Each map step's raw result goes in the reply once (SOURCES), however many of its spawned
-- steps are created; a create names its map step.
local SOURCES = {}
local function want_create(name)
  local parent = dag(name).parent
  if parent and not SOURCES[parent] then SOURCES[parent] = get('res:' .. parent) or '' end
  CREATES[#CREATES + 1] = {name, get('task:' .. name) or '{}', inputs(name), parent or ''}
end

local set_state
local function ended_without_task(name, s, kind, message)
  redis.call('HSET', H, 'nt:' .. name, '1')
  set_state(name, s, cjson.encode({id = task_id(name), state = s,
    error = {kind = kind, message = message}}))
end

-- Step `name`'s dependencies have all ended: it fails (a dependency it must not run without
-- did not succeed), is cancelled (so is the workflow), or is to be created.
local function evaluate(name)
  if get('cancel') == '1' then
    return ended_without_task(name, 'cancelled', 'cancelled', 'the workflow was cancelled')
  end
  for _, a in ipairs(dag(name).after or {}) do
    local ds = get('st:' .. a[1])
    if ds ~= 'succeeded' and a[2] ~= 'run' then
      return ended_without_task(name, 'failed', 'dependency_failed',
        'step ' .. a[1] .. ' ended ' .. tostring(ds))
    end
  end
  redis.call('HSET', H, 'st:' .. name, 'creating')
  say(name, 'creating')
  want_create(name)
end

-- The workflow's own state, from its steps': ended once every step has.
local function settle()
  local f = redis.call('HMGET', H, 'n', 'ended', 'state')
  local n, ended, state = tonumber(f[1]), tonumber(f[2] or 0), f[3]
  if ended >= n then
    if term(state) then return end
    local s = 'succeeded'
    if tonumber(get('failed') or 0) > 0 then s = 'failed'
    elseif tonumber(get('cancelled') or 0) > 0 then s = 'cancelled' end
    local ttl = tonumber(get('ttl')) or 86400
    redis.call('HSET', H, 'state', s, 'ended_ms', ms)
    redis.call('EXPIRE', H, ttl)
    redis.call('ZREM', LIVE, wid)
    redis.call('ZADD', ENDED, ms + ttl * 1000, wid)
    say('-', s)
    SETTLED = s
  elseif term(state) then
    -- A step was retried: the workflow runs again, from it.
    redis.call('HSET', H, 'state', 'running', 'ended_ms', '')
    redis.call('PERSIST', H)
    redis.call('ZREM', ENDED, wid)
    redis.call('ZADD', LIVE, ms + STALL, wid)
    say('-', 'running')
    SETTLED = ''
  end
end

local child_ended, child_reopened
-- What a step's change means for its dependents, worked through in order after it (a loop,
-- not recursion: a failure at the head of a long chain ends every step after it).
local WORK = {}
local function work()
  local i = 1
  while WORK[i] do
    local kind, nx = WORK[i][1], WORK[i][2]
    if kind == 'reopen' then
      if get('nt:' .. nx) == '1' and term(get('st:' .. nx)) then
        redis.call('HDEL', H, 'nt:' .. nx)
        set_state(nx, 'waiting', nil)
      end
    end
    if get('st:' .. nx) == 'waiting' and (tonumber(get('wait:' .. nx)) or 0) <= 0 then
      evaluate(nx)
    end
    WORK[i] = false
    i = i + 1
  end
  WORK = {}
end

-- Moves step `name` to `s` (with its end `out` when terminal), and what follows from it:
-- dependents whose dependencies have all ended are evaluated; a step leaving a terminal
-- state (its task was retried) takes back what its end did, so what failed or was
-- cancelled only because of it waits for it again.
set_state = function(name, s, out)
  local old = get('st:' .. name)
  if old == s and (not term(s) or get('out:' .. name) == out) then return end
  if term(old) and term(s) then
    -- A newer end whose reopening was not seen (both in one apply): undo the old first.
    set_state(name, 'started', nil)
    old = 'started'
  end
  say(name, s)
  local d = dag(name)
  if term(s) then
    redis.call('HSET', H, 'st:' .. name, s, 'out:' .. name, out)
    redis.call('HINCRBY', H, 'ended', 1)
    if s ~= 'succeeded' then redis.call('HINCRBY', H, s, 1) end
    if d.parent then child_ended(d.parent) end
    for _, nx in ipairs(d.next or {}) do
      redis.call('HINCRBY', H, 'wait:' .. nx, -1)
      WORK[#WORK + 1] = {'eval', nx}
    end
  else
    redis.call('HSET', H, 'st:' .. name, s)
    if term(old) then
      redis.call('HDEL', H, 'out:' .. name)
      redis.call('HINCRBY', H, 'ended', -1)
      if old ~= 'succeeded' then redis.call('HINCRBY', H, old, -1) end
      if d.parent then child_reopened(d.parent) end
      for _, nx in ipairs(d.next or {}) do
        redis.call('HINCRBY', H, 'wait:' .. nx, 1)
        WORK[#WORK + 1] = {'reopen', nx}
      end
    end
  end
  settle()
end

-- The reduce: once every spawned step of map step `parent` has ended, the map step ends
-- with their results in order (succeeded only if they all did).
child_ended = function(parent)
  if redis.call('HINCRBY', H, 'kwait:' .. parent, -1) > 0 then return end
  local k = tonumber(get('kids:' .. parent)) or 0
  local results, ends, bad = {}, {}, 0
  for i = 0, k - 1 do
    local kid = parent .. '.' .. i
    local f = redis.call('HMGET', H, 'out:' .. kid, 'st:' .. kid, 'res:' .. kid)
    ends[#ends + 1] = f[1] or 'null'
    -- The raw result as the task stored it (never decoded and encoded again).
    if f[2] == 'succeeded' then
      results[#results + 1] = (f[3] and f[3] ~= '') and f[3] or 'null'
    else
      results[#results + 1] = 'null'
      bad = bad + 1
    end
  end
  local s, tail = 'succeeded', ''
  if bad > 0 then
    s = 'failed'
    tail = ',"error":' .. cjson.encode({kind = 'spawned_failed',
      message = bad .. ' of ' .. k .. ' spawned steps did not succeed'})
  end
  set_state(parent, s, '{"id":' .. cjson.encode(task_id(parent)) .. ',"state":"' .. s ..
    '","result":[' .. table.concat(results, ',') .. '],"children":[' .. table.concat(ends, ',') ..
    ']' .. tail .. '}')
end

child_reopened = function(parent)
  redis.call('HINCRBY', H, 'kwait:' .. parent, 1)
  if term(get('st:' .. parent)) then set_state(parent, 'mapping', nil) end
end

local QUEUE_NAME = '^[A-Za-z0-9_.-]+$'
-- Most steps one workflow may hold, spawned ones included (settings' MAX_WORKFLOW_STEPS).
local MOST_STEPS = 10000
-- `x` as a whole number, or nil (nan, fractions, strings and infinities are not).
local function whole(x)
  x = tonumber(x)
  if not x or x ~= x or x ~= math.floor(x) or x == math.huge or x == -math.huge then return nil end
  return x
end
-- Map step `name` succeeded with `result`: what it asked to spawn becomes steps of the
-- workflow (the map), each created now; the step ends when they all have.
local function spawn(name, body)
  local ok, r = pcall(cjson.decode, body)
  local list = ok and type(r) == 'table' and r.spawn
  local fail = function(why)
    set_state(name, 'failed', cjson.encode({id = task_id(name), state = 'failed',
      error = {kind = 'invalid_spawn', message = why}}))
  end
  if type(list) ~= 'table' then return fail('a map step returns {"spawn": [tasks]}') end
  local max = tonumber(get('max_fan_out')) or 1000
  if #list > max then
    return fail(#list .. ' tasks to spawn; the limit is ' .. max .. ' (workflows.max_fan_out)')
  end
  -- However many map steps spawn, one workflow stays one hash a read can take whole.
  if (tonumber(get('n')) or 0) + #list > MOST_STEPS then
    return fail('the workflow would have more than ' .. MOST_STEPS .. ' steps')
  end
  if get('cancel') == '1' then
    -- Cancelled while the map step ran: nothing is spawned.
    return set_state(name, 'cancelled', cjson.encode({id = task_id(name), state = 'cancelled',
      error = {kind = 'cancelled', message = 'the workflow was cancelled'}}))
  end
  local parent = cjson.decode(get('task:' .. name) or '{}')
  local kids = {}
  for i, t in ipairs(list) do
    if type(t) ~= 'table' or type(t.kind) ~= 'string' or #t.kind == 0 or #t.kind > 128 then
      return fail('spawn[' .. (i - 1) .. '].kind: a kind name is required')
    end
    local q = t.queue or parent.queue
    if type(q) ~= 'string' or #q > 64 or not string.match(q, QUEUE_NAME) then
      return fail('spawn[' .. (i - 1) .. '].queue: [A-Za-z0-9_.-], at most 64')
    end
    local ma = t.max_attempts == nil and parent.max_attempts or whole(t.max_attempts)
    if not ma or ma < 1 or ma > 100 then
      return fail('spawn[' .. (i - 1) .. '].max_attempts: a whole number, 1 to 100')
    end
    local to = parent.timeout_secs
    if t.timeout_secs ~= nil then
      to = whole(t.timeout_secs)
      if not to or to < 1 or to > 604800 then
        return fail('spawn[' .. (i - 1) .. '].timeout_secs: a whole number, 1 to 604800')
      end
    end
    -- The payload is left out here: the caller takes it from the map step's raw result.
    kids[i] = cjson.encode({kind = t.kind, queue = q, payload = false, max_attempts = ma,
      timeout_secs = to, result_ttl_secs = parent.result_ttl_secs, priority = parent.priority,
      concurrency_key = parent.concurrency_key})
  end
  redis.call('HSET', H, 'kids:' .. name, #kids, 'kwait:' .. name, #kids, 'st:' .. name, 'mapping',
    'res:' .. name, body)
  SOURCES[name] = body
  say(name, 'mapping')
  redis.call('HINCRBY', H, 'n', #kids)
  local pd = cjson.encode({parent = name})
  for i, raw in ipairs(kids) do
    local c = name .. '.' .. (i - 1)
    redis.call('HSET', H, 'task:' .. c, raw, 'dag:' .. c, pd, 'st:' .. c, 'creating')
    CREATES[#CREATES + 1] = {c, raw, '{}', name}
  end
  if #kids == 0 then
    -- Nothing to map: the reduce gets an empty list.
    redis.call('HSET', H, 'kwait:' .. name, 1)
    child_ended(name)
  end
end

-- What one step's task now is (`state`, its result or error json `body`, the record's
-- `wf_seq`) applied to the workflow.
local function apply(name, state, body, seq)
  -- One read of what the step's apply needs (each field read is a lookup of its own).
  local f = redis.call('HMGET', H, 'st:' .. name, 'seq:' .. name, 'dag:' .. name)
  if not f[1] then return end
  seq = tonumber(seq) or 0
  if not DAGS[name] then DAGS[name] = cjson.decode(f[3] or '{}') end
  local d = DAGS[name]
  if seq <= (tonumber(f[2]) or -1) then
    -- Applied before (its applier died, or another got there too): return every step still
    -- to be created, however far down the graph that apply readied it.
    REAPPLIED = true
    return
  end
  redis.call('HSET', H, 'seq:' .. name, seq)
  -- It has a task after all (created after a cancel marked it ended without one).
  redis.call('HDEL', H, 'nt:' .. name)
  local cur = f[1]
  if not term(state) then
    -- The task exists and has not ended (or was retried): the step is under way.
    if cur == 'creating' or term(cur) then set_state(name, 'started', nil) end
    return
  end
  if state == 'succeeded' and d.map then
    if cur == 'mapping' then return end
    if term(cur) then set_state(name, 'started', nil) end
    redis.call('HSET', H, 'st:' .. name, 'started')
    return spawn(name, body)
  end
  local out
  if state == 'succeeded' then
    if d.parent then redis.call('HSET', H, 'res:' .. name, body) end
    out = '{"id":' .. cjson.encode(task_id(name)) .. ',"state":"succeeded","result":' ..
      (body ~= '' and body or 'null') .. '}'
  else
    out = '{"id":' .. cjson.encode(task_id(name)) .. ',"state":"' .. state .. '","error":' ..
      (body ~= '' and body or 'null') .. '}'
  end
  set_state(name, state, out)
end

-- Every step whose task may exist and has not ended: cancelled with the workflow.
local function running_tasks(also_creating)
  local names = cjson.decode(get('order') or '[]')
  local all = {}
  for _, s in ipairs(names) do
    all[#all + 1] = s
    for i = 0, (tonumber(get('kids:' .. s)) or 0) - 1 do all[#all + 1] = s .. '.' .. i end
  end
  local out = {}
  for _, s in ipairs(all) do
    local st = get('st:' .. s)
    if st == 'started' or st == 'mapping' or (also_creating and st == 'creating') then
      out[#out + 1] = s
    end
  end
  return out
end

-- Every reply: {state, creates (step, task json, inputs json, map step or ''...), tasks to
-- cancel, (advance) started steps and their queues, traceparent, the state this call ended
-- the workflow in or '', this call's ms, the map steps' raw results (step, raw...)}.
local function reply_creates()
  local flat = {}
  for _, c in ipairs(CREATES) do
    flat[#flat + 1] = c[1]; flat[#flat + 1] = c[2]; flat[#flat + 1] = c[3]
    flat[#flat + 1] = c[4] or ''
  end
  return flat
end

local function sources()
  local flat = {}
  for k, v in pairs(SOURCES) do flat[#flat + 1] = k; flat[#flat + 1] = v end
  return flat
end

local function flush()
  work()
  if #LINES > 0 then redis.call('PUBLISH', P .. 'wf-events', table.concat(LINES, '\n')) end
  if get('state') == 'running' then redis.call('ZADD', LIVE, ms + STALL, wid) end
end

if op == 'create' then
  -- [A+4]: max fan-out, [A+5]: ttl secs, [A+6]: traceparent, [A+7]: step count, then per
  -- step: name, task json, dag json, dependency count. Returns {'created', creates, {}, {},
  -- traceparent, '', created ms}, or {'exists', ...} when the workflow exists (nothing
  -- written).
  if redis.call('EXISTS', H) == 1 then return {'exists', {}, {}, {}, '', '', ms, {}} end
  local n, names, i = tonumber(ARGV[A + 7]), {}, A + 8
  redis.call('HSET', H, 'id', wid, 'state', 'running', 'n', n, 'ended', 0, 'created_ms', ms,
    'max_fan_out', ARGV[A + 4], 'ttl', ARGV[A + 5], 'traceparent', ARGV[A + 6])
  for _ = 1, n do
    local name, waits = ARGV[i], tonumber(ARGV[i + 3])
    names[#names + 1] = name
    redis.call('HSET', H, 'task:' .. name, ARGV[i + 1], 'dag:' .. name, ARGV[i + 2],
      'wait:' .. name, waits, 'st:' .. name, waits == 0 and 'creating' or 'waiting')
    if waits == 0 then CREATES[#CREATES + 1] = {name, ARGV[i + 1], '{}', ''} end
    i = i + 4
  end
  redis.call('HSET', H, 'order', cjson.encode(names))
  redis.call('ZADD', IDX, ms, wid)
  say('-', 'running')
  flush()
  return {'created', reply_creates(), {}, {}, ARGV[A + 6], SETTLED, ms, {}}
end

if redis.call('EXISTS', H) == 0 then return {'gone', {}, {}, {}, '', '', ms, {}} end

if op == 'apply' then
  -- Then groups of 4: step, task state ('' when its record is gone), result or error json,
  -- wf_seq. Returns {state, creates (step, task json, inputs json...), tasks to cancel, {},
  -- traceparent}.
  local i = A + 4
  while ARGV[i] do
    apply(ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3])
    i = i + 4
  end
  if REAPPLIED then
    for _, s in ipairs(running_tasks(true)) do
      if get('st:' .. s) == 'creating' then want_create(s) end
    end
  end
  if get('cancel') == '1' then
    -- Each step's task is cancelled once from here (upkeep's look cancels again if needed).
    for _, s in ipairs(running_tasks(true)) do
      if redis.call('HSETNX', H, 'cx:' .. s, '1') == 1 then CANCELS[#CANCELS + 1] = task_id(s) end
    end
  end
elseif op == 'cancel' then
  -- Cancels every step that has not started, and returns the tasks of those that have.
  if not term(get('state')) then
    redis.call('HSET', H, 'cancel', '1')
    local names = cjson.decode(get('order') or '[]')
    for _, s in ipairs(names) do
      if get('st:' .. s) == 'waiting' then
        ended_without_task(s, 'cancelled', 'cancelled', 'the workflow was cancelled')
      end
    end
    for _, s in ipairs(running_tasks(true)) do CANCELS[#CANCELS + 1] = task_id(s) end
  end
elseif op == 'advance' then
  -- Upkeep's look at a workflow nothing touched for a while: the steps still to create, the
  -- tasks still to cancel, and (4th) the steps whose tasks should exist with their queues
  -- (step, queue...), for the caller to apply their tasks' state again (a task deleted or
  -- lost ends its step `failed`).
  local started = {}
  for _, s in ipairs(running_tasks(true)) do
    if get('st:' .. s) == 'creating' then
      if get('cancel') == '1' then
        -- Its task may have been created after the cancel: cancelled too if so.
        CANCELS[#CANCELS + 1] = task_id(s)
        ended_without_task(s, 'cancelled', 'cancelled', 'the workflow was cancelled')
      else
        want_create(s)
      end
    elseif get('st:' .. s) == 'started' then
      -- (A `mapping` step's task has ended: its spawned steps are what runs.)
      local t = cjson.decode(get('task:' .. s) or '{}')
      started[#started + 1] = s
      started[#started + 1] = t.queue or ''
      if get('cancel') == '1' then CANCELS[#CANCELS + 1] = task_id(s) end
    end
  end
  flush()
  return {get('state'), reply_creates(), CANCELS, started, get('traceparent') or '', SETTLED, ms,
    sources()}
elseif op == 'created' then
  -- Then step names whose tasks were seen: created, so no longer returned by `advance`.
  for i = A + 4, #ARGV do
    if get('st:' .. ARGV[i]) == 'creating' then
      redis.call('HSET', H, 'st:' .. ARGV[i], 'started')
      say(ARGV[i], 'started')
    end
  end
end
flush()
return {get('state'), reply_creates(), CANCELS, {}, get('traceparent') or '', SETTLED, ms, sources()}
