-- Renews the sync lock while a long transfer runs, if the caller holds it.
--
-- KEYS[1]  ps:upd:lock   string with expiry: the holder's token
-- ARGV[1]  token
-- ARGV[2]  expiry (ms)
-- Returns  1 when renewed, 0 when another holds the lock or it expired.
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
