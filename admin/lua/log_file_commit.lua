-- Records the last event id written to the log file, if the caller still
-- holds the writer's lock.
--
-- KEYS[1]  ps:logfile:lock   string with expiry: the holder
-- KEYS[2]  ps:logfile:last   string: last event id written
-- ARGV[1]  owner
-- ARGV[2]  event id
-- Returns  1, or 0 when the lock is lost.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[2], ARGV[2])
return 1
