-- Gives up the log file writer's lock, if the caller holds it.
--
-- KEYS[1]  ps:logfile:lock   string with expiry: the holder
-- ARGV[1]  owner
-- Returns  1 when released, else 0.
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
