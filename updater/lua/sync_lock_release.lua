-- Gives up the sync lock, if the caller holds it.
--
-- KEYS[1]  ps:upd:lock   string with expiry: the holder's token
-- ARGV[1]  token
-- Returns  1 when released, else 0.
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
