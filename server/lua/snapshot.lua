-- Every product key, its DUMP and its absolute expiry, in one atomic run;
-- with Redis's clock and the figures `backup` prints, from the same
-- instant. (MULTI/EXEC over a key list read beforehand would miss keys made
-- in between; DUMPs in several batches would mix instants.)
--
-- KEYS     none; reads ps:res and ps:serial, and every key matching ARGV[1]
-- ARGV[1]  the product's key pattern, 'ps:*'
-- Returns  {seconds, microseconds (Redis's TIME), reservations (ZCARD
--          ps:res), serial or '', purchased or '', then per key: name,
--          DUMP, absolute expiry in ms (PEXPIRETIME: -1 for none)}.
local t = redis.call('TIME')
local out = {t[1], t[2], redis.call('ZCARD', 'ps:res'),
             redis.call('HGET', 'ps:serial', 'serial') or '',
             redis.call('HGET', 'ps:serial', 'purchased') or ''}
for _, k in ipairs(redis.call('KEYS', ARGV[1])) do
  local d = redis.call('DUMP', k)
  if d then
    out[#out + 1] = k
    out[#out + 1] = d
    out[#out + 1] = redis.call('PEXPIRETIME', k)
  end
end
return out
