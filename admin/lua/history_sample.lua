-- Records one sample of the fleet's history (admin/include/admin/history.hpp):
-- the state of the fleet now, and what the counters moved since the sample
-- before, into the period's hourly and daily hashes.
--
-- Counters come from totals that only grow: the op counters every worker
-- adds to (ps:metrics:ops), ps:stats, and the activity log (events of a
-- type, counted from the last event id counted). ps:hist:last keeps the
-- totals and that id as of the last sample; each sample adds total - last
-- and moves last, in this one script, so any number of admin workers
-- sampling at any moment count each increment once. A counter without a
-- last total (the first sample, or a counter new to this release) is taken
-- as its baseline and counts from there; a total below its last (data
-- restored from an older backup) counts from 0.
--
-- KEYS[1..4]  ps:serial, ps:res, ps:active, ps:lost
-- KEYS[5]     ps:metrics:ops   hash of op counters
-- KEYS[6]     ps:stats         hash of counters
-- KEYS[7]     ps:events        the activity log stream
-- KEYS[8]     ps:hist:last     hash: NAME -> total at the last sample; ev -> last event id counted
-- KEYS[9]     ps:hist:h:HOUR   hash of the hour (HOUR: its start, Unix s)
-- KEYS[10]    ps:hist:d:DAY    hash of the day
-- ARGV[1]     cutoff (ms): active = last seen at or after it
-- ARGV[2]     now (ms)
-- ARGV[3]     when the hour's hash expires (Unix s)
-- ARGV[4]     when the day's hash expires (Unix s)
-- ARGV[5]     the most activity log entries read by one sample
-- ARGV[6..]   pairs NAME, SOURCE: SOURCE is 'ops:FIELD' (of ps:metrics:ops),
--             'stats:FIELD' (of ps:stats) or 'event:TYPE' (entries of the
--             activity log of that type)
-- Writes      in both period hashes: purchased, reserved, active, lost,
--             never_seen and sampled_at (overwritten: the period's last
--             sample), and HINCRBY NAME by each counter's increase
-- Returns     {1 when this sample only took baselines else 0, log entries read}
local cutoff, now, max_events = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[5])
local last, hour, day = KEYS[8], KEYS[9], KEYS[10]
local baseline = redis.call('EXISTS', last) == 0 and 1 or 0

local purchased = tonumber(redis.call('HGET', KEYS[1], 'purchased') or '0') or 0
local reserved = redis.call('ZCARD', KEYS[2])
local active = redis.call('ZCOUNT', KEYS[3], cutoff, '+inf')
local lost = redis.call('ZCOUNT', KEYS[3], '-inf', '(' .. cutoff) + redis.call('ZCARD', KEYS[4])
local never = math.max(0, reserved - active - lost)
for _, k in ipairs({hour, day}) do
  redis.call('HSET', k, 'purchased', purchased, 'reserved', reserved, 'active', active, 'lost', lost,
             'never_seen', never, 'sampled_at', now)
end

local function add(name, delta)
  if delta > 0 then
    redis.call('HINCRBY', hour, name, delta)
    redis.call('HINCRBY', day, name, delta)
  end
end

-- Counters kept as totals.
local by_type = {}
for i = 6, #ARGV - 1, 2 do
  local name, source = ARGV[i], ARGV[i + 1]
  local kind, what = string.match(source, '^(%a+):(.+)$')
  if kind == 'event' then
    by_type[what] = name
  else
    local key = kind == 'ops' and KEYS[5] or KEYS[6]
    local total = tonumber(redis.call('HGET', key, what) or '0') or 0
    local prev = tonumber(redis.call('HGET', last, name) or '')
    if prev then add(name, total >= prev and total - prev or total) end
    redis.call('HSET', last, name, total)
  end
end

-- Activity log entries after the last one counted, a bounded number per sample.
local from = redis.call('HGET', last, 'ev')
local read = 0
if not from then
  local newest = redis.call('XREVRANGE', KEYS[7], '+', '-', 'COUNT', 1)
  redis.call('HSET', last, 'ev', newest[1] and newest[1][1] or '0-0')
else
  local entries = redis.call('XRANGE', KEYS[7], '(' .. from, '+', 'COUNT', max_events)
  local counts = {}
  for _, e in ipairs(entries) do
    local f = e[2]
    for j = 1, #f - 1, 2 do
      if f[j] == 'type' then
        local name = by_type[f[j + 1]]
        if name then counts[name] = (counts[name] or 0) + 1 end
        break
      end
    end
  end
  for name, n in pairs(counts) do add(name, n) end
  read = #entries
  if read > 0 then redis.call('HSET', last, 'ev', entries[read][1]) end
end

redis.call('EXPIREAT', hour, ARGV[3])
redis.call('EXPIREAT', day, ARGV[4])
return {baseline, read}
