-- Adds one worker's per-op counters to the shared totals (common/metrics.hpp).
--
-- KEYS[1]  ps:metrics:ops, hash of counters
-- ARGV     field, delta, field, delta, ...; a field ending in '|sum' is a
--          float (HINCRBYFLOAT), any other an integer (HINCRBY)
-- Returns  the number of fields added to.
for i = 1, #ARGV, 2 do
  if string.sub(ARGV[i], -4) == '|sum' then
    redis.call('HINCRBYFLOAT', KEYS[1], ARGV[i], ARGV[i + 1])
  else
    redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1])
  end
end
return #ARGV / 2
