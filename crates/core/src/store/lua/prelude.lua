-- Shared by every errand script (prepended at load time).
-- ARGV[1] is the key prefix with its colon (e.g. "errand:"), ARGV[2] says whether this
-- script may touch keys outside its own hash slot ('1' on a single Redis, '0' on a Redis
-- Cluster) and ARGV[3] how long a webhook delivery is kept (ms, store::Retention);
-- script-specific arguments start at ARGV[4]. store::Layout names every key derived here,
-- and KEYS[1] (one key of the slot the script works in) routes the call.
--
-- Every key of a queue carries the queue's hash tag, `<prefix>{<queue>}:`, so one script
-- call touches one slot: a queue's records, indexes, ready list and delayed set live
-- together on one Redis Cluster master.
local P = ARGV[1]
local CROSS = ARGV[2] == '1'
local WEBHOOK_KEEP = tonumber(ARGV[3]) or 86475000
local A = 4

local TERMINAL = {succeeded = true, failed = true, cancelled = true}

local function tag(queue) return P .. '{' .. queue .. '}:' end
local function record_key(queue, id) return tag(queue) .. 'task:' .. id end
-- Zset of the queue's live task ids by creation ms (the queue's listing).
local function queue_index(queue) return tag(queue) .. 'idx' end
-- The `running` state index is also the lease table: its score is the lease expiry (ms),
-- not the time the task started, so taking and renewing a lease costs no extra write.
local function state_index(queue, state) return tag(queue) .. 'idx:' .. state end
-- Zset of the queue's scheduled and retrying task ids by due ms.
local function delayed_key(queue) return tag(queue) .. 'delayed' end
-- The queue's ready list: ids of tasks waiting to run, taken from the head by fetch.lua.
local function ready_list(queue) return tag(queue) .. 'ready' end
local function fetch_memo(queue, token) return tag(queue) .. 'fetch:' .. token end
-- Outside any queue's slot (touched only when CROSS, else by the caller on its own):
local QUEUES = P .. 'queues'      -- set: the queues that hold something (expire.lua prunes)
-- String: the queue task `id` lives in. How a read that has only an id finds the task's
-- slot, and the point where two submits of one id in different queues are decided. On a
-- cluster a created task's pointer is '<queue>@<created ms>' (the ms its queue's slot created
-- it: which task of the id it names, so a late expiry step cannot free a newer one's), and a
-- bare '<queue>' with a TTL while a submit's claim waits for its create. '~<ms>': a tombstone
-- of the layout before (expired, with a TTL); tombstones now live in hashes (below).
local function pointer_key(id) return P .. 'id:' .. id end
-- The queue a pointer value names, and the created ms it carries (nil: a bare pointer).
local function pointer_parts(v)
  local q, c = string.match(v, '^(.*)@(%d+)$')
  if q then return q, tonumber(c) end
  return v, nil
end

-- Tombstones: for `keep` ms (tasks.tombstone_secs) after its record expired, an id reads as
-- expired (404 task-expired) rather than unknown. Each is a field (id -> expiry ms) of a hash
-- per shard of ids and time bucket, the bucket with its own expiry: ~60 bytes an id, where a
-- key of its own cost ~200. TOMB_SHARDS hash tags spread them over a cluster's slots and keep
-- each hash small (a listpack) up to ~1M expiries an hour; a read probes one shard's buckets
-- (store/tombstones.rs holds the same arithmetic).
local TOMB_SHARDS = 2048
local function tomb_shard(id)
  local h = 0
  for i = 1, #id do h = (h * 31 + string.byte(id, i)) % 2147483647 end
  return h % TOMB_SHARDS
end
-- A bucket spans a 24th of `keep`, at least a minute and at most an hour (ms): a read probes
-- at most 25 buckets, and a bucket outlives its last tombstone by at most its width.
local function tomb_width(keep) return math.min(math.max(math.floor(keep / 24000), 60), 3600) * 1000 end
local function tomb_key(shard, width, n)
  return P .. '{~tomb:' .. shard .. '}:' .. math.floor(width / 1000) .. ':' .. string.format('%d', n)
end
-- Remembers that `id`'s record expired at `ms`, for `keep` ms (0: not at all).
local function bury(id, ms, keep)
  if keep <= 0 then return end
  local w = tomb_width(keep)
  local n = math.floor(ms / w)
  local k = tomb_key(tomb_shard(id), w, n)
  redis.call('HSET', k, id, string.format('%d', ms))
  redis.call('PEXPIREAT', k, string.format('%d', (n + 1) * w + keep))
end

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function wake(queue)
  redis.call('PUBLISH', P .. 'wake:' .. queue, '1')
end

-- Flow control (docs/flow-control.md). A queue's limits, set at runtime through the admin
-- API (store::Layout::limits), a hash: `rate` (the queue's) and `rate:<kind>` as
-- "<tasks> <period ms> <burst>", `per_key` the most running tasks per concurrency key.
local function limits_key(queue) return tag(queue) .. 'limits' end
-- Each rate limit's GCRA state, a hash: `q` (the queue's) or `k:<kind>` -> theoretical
-- arrival time (ms).
local function gcra_key(queue) return tag(queue) .. 'gcra' end
-- Zset of queued task ids held back by their kind's rate limit, by the ms a token is due.
local function throttled_key(queue) return tag(queue) .. 'throttled' end
-- Set of the running task ids holding concurrency key `k`, list of the queued ids waiting
-- for it (oldest first), and the set of keys with waiting tasks.
local function key_running(queue, k) return tag(queue) .. 'ck:run:' .. k end
local function key_waiting(queue, k) return tag(queue) .. 'ck:wait:' .. k end
local function keys_waiting(queue) return tag(queue) .. 'ck:waiting' end
-- Priorities 1 to 9, 5 the default. Each band has a ready list; the default band's is the
-- queue's `ready` list, so a queue that never uses priorities has one list as before.
-- `bands`: the set of the other bands that may hold entries (fetch.lua reads only those).
local DEFAULT_PRIORITY = 5
local function band_list(queue, p)
  if not p or p == DEFAULT_PRIORITY then return ready_list(queue) end
  return ready_list(queue) .. ':p' .. p
end
local function bands_key(queue) return tag(queue) .. 'bands' end
-- Each band's pass (stride scheduling, fetch.lua) and the queue's virtual time `vt`.
local function pass_key(queue) return tag(queue) .. 'pass' end

-- Hands task `id` to its queue's workers, on the ready list of its priority band `prio`
-- (nil: the default). `front`: ahead of the waiting tasks of its band, for a task whose
-- attempt was already under way when its worker died, or that waited for its key. The
-- caller wakes the queue. A task may have more than one entry (cancelled while queued, then
-- retried): only the entry that finds it `queued` claims it; the others are dropped by
-- fetch.lua.
local function enqueue(queue, id, front, prio)
  prio = tonumber(prio)
  if prio and prio ~= DEFAULT_PRIORITY then redis.call('SADD', bands_key(queue), prio) end
  redis.call(front and 'LPUSH' or 'RPUSH', band_list(queue, prio), id)
end

-- Hands the tasks waiting for concurrency key `ck` back to the queue (each at the head of
-- its band, oldest first) while the key has room under the queue's `per_key` limit (all of
-- them, 100 a call, when there is no limit any more). Entries of tasks no longer queued
-- (cancelled while they waited) are dropped. Returns how many went back.
local function unpark(queue, ck)
  local limit = tonumber(redis.call('HGET', limits_key(queue), 'per_key'))
  local room = 100
  if limit then room = math.min(limit - redis.call('SCARD', key_running(queue, ck)), 100) end
  local wait, back, pops = key_waiting(queue, ck), {}, 0
  while #back < room and pops < 200 do
    local id = redis.call('LPOP', wait)
    if not id then
      redis.call('SREM', keys_waiting(queue), ck)
      break
    end
    pops = pops + 1
    local f = redis.call('HMGET', record_key(queue, id), 'state', 'priority')
    if f[1] == 'queued' then back[#back + 1] = {id, f[2]} end
  end
  for i = #back, 1, -1 do enqueue(queue, back[i][1], true, back[i][2]) end
  if #back > 0 then wake(queue) end
  return #back
end

-- Task `id` left `running`: its hold on its concurrency key `ck` ends (nil: read from the
-- record), and a task waiting for the key may go.
local function free_key(key, queue, id, ck)
  if ck == nil then ck = redis.call('HGET', key, 'concurrency_key') end
  if not ck or ck == '' then return end
  if redis.call('SREM', key_running(queue, ck), id) == 1
      and redis.call('EXISTS', key_waiting(queue, ck)) == 1 then
    unpark(queue, ck)
  end
end

-- Events of one script call, published as ONE message of "<id> <state>" lines (a batch of
-- claims or finishes costs one PUBLISH, not one per task).
local EVENTS = {}
local function event(id, state) EVENTS[#EVENTS + 1] = id .. ' ' .. state end
local function flush_events()
  if #EVENTS > 0 then redis.call('PUBLISH', P .. 'events', table.concat(EVENTS, '\n')) end
end

-- Webhook outbox (store/webhooks.rs): per queue, a zset of delivery ids by the ms their
-- next attempt is due, and a hash per delivery.
local function webhook_due(queue) return tag(queue) .. 'webhook:due' end
local function webhook_delivery(queue, did) return tag(queue) .. 'webhook:d:' .. did end

-- Record fields a webhook's `data` leaves out: the input (it can be large, and the
-- receiver sent it) and errand's own bookkeeping.
local WEBHOOK_SKIP = {payload = true, callback = true, webhook = true, webhook_seq = true,
  traceparent = true, attempt_errors = true, started_ms = true, claim = true}

-- Puts a webhook delivery for task `id` entering terminal state `event` into its queue's
-- outbox, due at once, when the record's callback asks for that event. Called from
-- `transition`, so every way a task ends writes its delivery in the same script call as
-- the state change: a crash can lose neither. The delivery keeps a snapshot of the record
-- as it ended, so a later manual retry cannot change what this event says. `raw`: the
-- record's callback field when the caller already read it (false: it has none).
local function queue_webhook(key, id, queue, event, ms, raw)
  if raw == nil then raw = redis.call('HGET', key, 'callback') end
  if not raw or raw == '' then return end
  local ok, cb = pcall(cjson.decode, raw)
  if not ok or type(cb) ~= 'table' or type(cb.url) ~= 'string' or type(cb.events) ~= 'table' then return end
  local wanted = false
  for _, e in ipairs(cb.events) do if e == event then wanted = true end end
  if not wanted then return end
  local seq = redis.call('HINCRBY', key, 'webhook_seq', 1)
  local did = id .. '.' .. seq
  redis.call('HSET', key, 'webhook', cjson.encode({id = did, event = event, state = 'pending', attempts = 0}))
  local snap, all = {}, redis.call('HGETALL', key)
  for i = 1, #all, 2 do
    if not WEBHOOK_SKIP[all[i]] then snap[#snap + 1] = all[i]; snap[#snap + 1] = all[i + 1] end
  end
  local dkey = webhook_delivery(queue, did)
  redis.call('HSET', dkey, 'task', id, 'seq', seq, 'event', event,
    'url', cb.url, 'snapshot', cjson.encode(snap), 'ended_ms', ms, 'attempts', 0)
  -- Kept as long as it can be retried (webhooks.retry_window_secs after the end, plus its
  -- last attempt), whether or not a worker with secrets ever claims it; upkeep then drops
  -- its outbox entry (expire.lua).
  redis.call('PEXPIREAT', dkey, string.format('%d', ms + WEBHOOK_KEEP))
  redis.call('ZADD', webhook_due(queue), ms, did)
end

-- Workflow outbox (store/workflow_ends.rs): per queue, a zset of the ids of workflow steps
-- whose task entered or left a terminal state, by the ms the entry is due (now, or the end of
-- an applier's lease on it). Written by `transition` in the same script call as the state
-- change, so no crash between two calls can keep a step's end from its workflow. The
-- record's `wf_seq` counts those changes: the workflow applies each step's newest only.
local function wf_outbox(queue) return tag(queue) .. 'wf:out' end
-- `wf`: the record's workflow field when the caller already read it (false: none).
local function workflow_end(key, id, queue, ms, wf)
  if wf == nil then wf = redis.call('HGET', key, 'workflow') end
  if not wf or wf == '' then return end
  redis.call('HINCRBY', key, 'wf_seq', 1)
  redis.call('ZADD', wf_outbox(queue), ms, id)
end

-- Keeps the per-queue state indexes true as a task moves `from` -> `to` (from = nil on
-- create), and gives a record entering a terminal state its TTL (and takes it away from a
-- record leaving one, on manual retry). Every state change goes through here. `ms` is now
-- (Redis TIME: the one clock of every score) or, for `running`, the lease expiry; a
-- terminal index is scored by the record's expiry, so upkeep finds expired ids there
-- without a zset of its own. `ttl`: the record's result_ttl_secs when the caller already
-- read it (else it is read here); `cb` likewise the record's callback (false: none), and
-- `ck` its concurrency key (false: none), whose hold a task leaving `running` gives up.
local function transition(key, id, queue, from, to, ms, ttl, cb, ck, wf)
  if TERMINAL[to] or (from and TERMINAL[from]) then workflow_end(key, id, queue, ms, wf) end
  if from then
    redis.call('ZREM', state_index(queue, from), id)
    if TERMINAL[from] then redis.call('PERSIST', key) end
    if from == 'running' then free_key(key, queue, id, ck) end
  end
  if TERMINAL[to] then
    queue_webhook(key, id, queue, to, ms, cb)
    ttl = tonumber(ttl or redis.call('HGET', key, 'result_ttl_secs')) or 86400
    redis.call('EXPIRE', key, ttl)
    ms = ms + ttl * 1000
  end
  redis.call('ZADD', state_index(queue, to), ms, id)
end

-- Names `queue` as task `id`'s home unless another task holds the id; returns the queue
-- that holds it and the pointer as it was ('' for none). A tombstone or no pointer leaves
-- the id free. `claim_ms` (a cluster's claim.lua): the claim is bare with that TTL until the
-- create's confirm (confirm.lua) makes it the task's; a pointer of a task this queue created
-- is left as it is (the create checks that task, create_task's `expect`). nil on a single
-- Redis, where claim and create are one script.
local function claim_id(id, queue, claim_ms)
  local k = pointer_key(id)
  local cur = redis.call('GET', k)
  if cur and string.sub(cur, 1, 1) == '~' then cur = false end
  if cur then
    local owner, created = pointer_parts(cur)
    if owner ~= queue then return owner, cur end
    if created or not claim_ms then return queue, cur end
  end
  if claim_ms then redis.call('SET', k, queue, 'PX', claim_ms) else redis.call('SET', k, queue) end
  return queue, cur or ''
end

-- Creates task `id` from its record fields (the field/value items args[from..to]) and hands
-- it on: to its queue's delayed set when due > 0, else onto its ready list. Returns true
-- when created; false and the queue that holds it when the id is taken (in this queue; on a
-- single Redis, in any); nil, having written nothing, when `expect` (a cluster's claim found
-- the pointer of this queue's task created at that ms) names a task that expired and whose
-- pointer expiry is freeing: the caller frees it itself and claims again. On a cluster the
-- caller has claimed the id first (claim.lua) and registered the queue. The caller wakes
-- the queue. Every way a task comes into being (submit, a schedule's tick) goes through here.
local function create_task(id, queue, due, created, args, from, to, expect)
  if CROSS then
    local owner = claim_id(id, queue)
    if owner ~= queue then
      if redis.call('EXISTS', record_key(owner, id)) == 1 then return false, owner end
      -- The pointer outlived its record (expired, not yet freed by upkeep): the id is free.
      redis.call('SET', pointer_key(id), queue)
    end
    redis.call('SADD', QUEUES, queue)
  end
  local key = record_key(queue, id)
  if redis.call('EXISTS', key) == 1 then return false, queue end
  if expect and expect ~= ''
      and tonumber(redis.call('ZSCORE', queue_index(queue), id)) ~= tonumber(expect) then
    -- Upkeep took that task out of the indexes already: its pointer is about to be freed.
    return nil
  end
  redis.call('HSET', key, unpack(args, from, to))
  redis.call('ZADD', queue_index(queue), created, id)
  if due > 0 then
    redis.call('ZADD', delayed_key(queue), due, id)
    transition(key, id, queue, nil, 'scheduled', created)
  else
    local prio
    for j = from, to - 1, 2 do
      if args[j] == 'priority' then prio = args[j + 1] end
    end
    enqueue(queue, id, false, prio)
    transition(key, id, queue, nil, 'queued', created)
  end
  return true
end

-- The dashboard's keys (store::Layout::paused / stats_minute; pause.lua, stats.lua).
-- A paused queue's flag: fetch.lua hands out nothing while it exists (value: paused-at ms).
local function paused_key(queue) return tag(queue) .. 'paused' end
-- The task holding a unique key in a queue for its window (store::Layout::unique; submit.lua).
local function unique_key(queue, key) return tag(queue) .. 'uniq:' .. key end
-- One minute of a queue's finished attempts: a hash of counts per outcome, `n` (all) and
-- `rt:<b>` run-time buckets; kept a day plus an hour, so history needs no sweeper.
local function stats_key(queue, minute) return tag(queue) .. 'stats:' .. minute end
local STATS_TTL = 90000

-- ms since the epoch of an rfc3339 UTC time as task::rfc3339 writes it; nil if not one.
local function rfc3339_ms(s)
  if not s then return nil end
  local y, mo, d, h, mi, sec, frac = string.match(s, '^(%d+)-(%d+)-(%d+)T(%d+):(%d+):(%d+)%.?(%d*)Z$')
  if not y then return nil end
  y, mo = tonumber(y), tonumber(mo)
  if mo <= 2 then y = y - 1 end
  local era = math.floor(y / 400)
  local yoe = y - era * 400
  local doy = math.floor((153 * ((mo + 9) % 12) + 2) / 5) + tonumber(d) - 1
  local days = era * 146097 + yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy - 719468
  local msf = frac ~= '' and tonumber((frac .. '00'):sub(1, 3)) or 0
  return ((days * 24 + tonumber(h)) * 60 + tonumber(mi)) * 60000 + tonumber(sec) * 1000 + msf
end

-- Counts an attempt that ended `outcome` at `ms` in its queue's minute of history, with its
-- run time in bucket floor(4 * log2(ms + 1)), ~19 % wide: enough for percentiles without
-- keeping every sample. Written by the finish path in the same call, so the history is
-- exactly the finishes Redis recorded. The counts of one call are summed here and written
-- by flush_stats, one HINCRBY per minute and field for the whole batch (a batch of 100
-- finishes costs a handful of writes, not 300). A failed attempt's error is also appended
-- to the record's `attempt_errors` field (lines of "attempt TAB ended ms TAB run ms TAB
-- error json"; the record keeps only the last error), so it lives and expires with the
-- record. It keeps the last ATTEMPT_ERRORS lines (as many as one run's attempts can be at
-- most), so manual retries cannot grow it without bound. `started`: the attempt's start
-- (ms, Redis's clock: the record's `started_ms`), nil for a record claimed by an older
-- errand (then read from `started_at`).
local STATS = {}
local ATTEMPT_ERRORS = 100
local function count_finish(key, queue, outcome, ms, attempt, body, started)
  local k = stats_key(queue, math.floor(ms / 60000))
  local row = STATS[k]
  if not row then row = {n = 0}; STATS[k] = row end
  row.n = row.n + 1
  row[outcome] = (row[outcome] or 0) + 1
  started = tonumber(started) or rfc3339_ms(redis.call('HGET', key, 'started_at'))
  local run = started and math.max(ms - started, 0)
  if run then
    local b = 'rt:' .. math.floor(4 * math.log(run + 1) / math.log(2))
    row[b] = (row[b] or 0) + 1
  end
  if outcome ~= 'succeeded' then
    local line = attempt .. '\t' .. ms .. '\t' .. (run or '') .. '\t' .. body
    local prev = redis.call('HGET', key, 'attempt_errors')
    if prev then
      local _, breaks = string.gsub(prev, '\n', '\n')
      -- Lines prev holds: breaks + 1; with this one, keep ATTEMPT_ERRORS.
      local drop, at = breaks + 2 - ATTEMPT_ERRORS, 0
      while drop > 0 do at = string.find(prev, '\n', at + 1, true); drop = drop - 1 end
      line = string.sub(prev, at + 1) .. '\n' .. line
    end
    redis.call('HSET', key, 'attempt_errors', line)
  end
end

-- Writes what count_finish summed in this call.
local function flush_stats()
  for k, row in pairs(STATS) do
    for f, n in pairs(row) do redis.call('HINCRBY', k, f, n) end
    redis.call('EXPIRE', k, STATS_TTL)
  end
end

-- Queues a failed or cancelled task again with a fresh budget of attempts (retry.lua, and
-- bulk.lua's `retry`). Returns 'queued', or 'gone' | 'conflict' and the state. The caller
-- wakes the queue and flushes the events.
local function retry_task(queue, id, now, ms)
  local key = record_key(queue, id)
  local f = redis.call('HMGET', key, 'state', 'priority')
  local state = f[1]
  if not state then return 'gone' end
  if state ~= 'failed' and state ~= 'cancelled' then return 'conflict', state end
  redis.call('HSET', key, 'state', 'queued', 'attempt', 0, 'claim', '', 'cancel_requested', '',
    'result', '', 'error', '', 'progress', '', 'started_at', '', 'finished_at', '', 'next_attempt_at', '',
    'updated_at', now)
  transition(key, id, queue, state, 'queued', ms)
  enqueue(queue, id, false, f[2])
  event(id, 'queued')
  return 'queued'
end

-- Cancels a task (cancel.lua, and bulk.lua's `cancel`): one that has not started now, a
-- running one by request to its worker. Returns 'cancelled' | 'requested', or 'gone' |
-- 'terminal' and the state. The caller flushes the events.
local function cancel_task(queue, id, now, ms)
  local key = record_key(queue, id)
  local state = redis.call('HGET', key, 'state')
  if not state then return 'gone' end
  if TERMINAL[state] then return 'terminal', state end
  if state == 'running' then
    redis.call('HSET', key, 'cancel_requested', '1', 'updated_at', now)
    redis.call('PUBLISH', P .. 'cancel', id)
    event(id, 'cancel_requested')
    return 'requested'
  end
  redis.call('ZREM', delayed_key(queue), id)
  redis.call('ZREM', throttled_key(queue), id)
  redis.call('HSET', key, 'state', 'cancelled', 'finished_at', now, 'updated_at', now,
    'next_attempt_at', '', 'error', cjson.encode({kind = 'cancelled', message = 'cancelled before it ran'}))
  transition(key, id, queue, state, 'cancelled', ms)
  event(id, 'cancelled')
  return 'cancelled'
end
