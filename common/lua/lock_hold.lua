-- Takes an expiring lock, or renews it if the caller already holds it
-- (common/redis_lock.hpp).
--
-- KEYS[1]  the lock: string with expiry, the holder's token
-- ARGV[1]  token, the caller's
-- ARGV[2]  expiry (ms)
-- Returns  1 when the caller already held the lock (renewed), 2 when it has
--          just taken it, 0 when another holds it.
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if holder then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 2
