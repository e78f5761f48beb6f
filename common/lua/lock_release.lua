-- Gives up an expiring lock if the caller holds it (common/redis_lock.hpp).
--
-- KEYS[1]  the lock: string with expiry, the holder's token
-- ARGV[1]  token, the caller's
-- Returns  1 when released, else 0.
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
