-- Records the feed in force unless a newer one already is.
--
-- KEYS[1]  ps:upd:feed   hash: issued, expires, synced_at, source
-- ARGV     issued (ms), expires (ms), now (ms), source
-- Returns  1 if recorded, 0 if a later feed is in force.
local cur = tonumber(redis.call('HGET', KEYS[1], 'issued') or '-1')
if tonumber(ARGV[1]) < cur then return 0 end
redis.call('HSET', KEYS[1], 'issued', ARGV[1], 'expires', ARGV[2], 'synced_at', ARGV[3], 'source', ARGV[4])
return 1
