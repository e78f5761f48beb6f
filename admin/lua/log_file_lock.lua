-- Takes or renews the log file writer's lock: one admin worker at a time
-- writes the activity log to its file.
--
-- KEYS[1]  ps:logfile:lock   string with expiry: the holder
-- ARGV[1]  owner, this writer's id
-- ARGV[2]  expiry (ms)
-- Returns  1 when the caller already held the lock (renewed), 2 when it has
--          just taken it, 0 when another writer holds it.
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if holder then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 2
