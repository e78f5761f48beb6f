-- Deletes every key matching a pattern: a restore's first step inside its
-- MULTI (sent with EVAL, run once per restore).
--
-- KEYS     none
-- ARGV[1]  the pattern, 'ps:*'
-- Returns  the number of keys deleted.
local n = 0
for _, k in ipairs(redis.call('KEYS', ARGV[1])) do
  redis.call('DEL', k)
  n = n + 1
end
return n
