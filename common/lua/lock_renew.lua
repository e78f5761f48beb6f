-- Renews an expiring lock if the caller holds it (common/redis_lock.hpp).
--
-- KEYS[1]  the lock: string with expiry, the holder's token
-- ARGV[1]  token, the caller's
-- ARGV[2]  expiry (ms)
-- Returns  1 when renewed, 0 when another holds the lock or it expired.
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
