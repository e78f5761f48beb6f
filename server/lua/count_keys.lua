-- The number of keys matching a pattern.
--
-- KEYS     none
-- ARGV[1]  the pattern, 'ps:*'
-- Returns  the count.
return #redis.call('KEYS', ARGV[1])
