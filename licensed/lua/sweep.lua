-- Marks computers not seen since the cutoff as lost, oldest first, at most
-- `limit` per run: the cost is the number that changed, not the fleet size.
-- A computer marked lost loses its last-seen bucket, so its next heartbeat
-- takes the full path and finds itself in the lost set, whatever the clocks.
--
-- KEYS[1]  ps:active   zset: NAME -> last seen (ms)
-- KEYS[2]  ps:lost     zset: NAME -> last seen (ms)
-- KEYS[3]  ps:meta     hash: NAME -> meta (includes/meta.lua)
-- KEYS[4]  ps:events   (common/lua/events.lua)
-- ARGV     cutoff (ms), limit, the events cap, now (ms)
-- Returns  {number marked lost, events}.
-- Events   client.lost
-- @include common/lua/events.lua
-- @include licensed/lua/includes/meta.lua
-- @include licensed/lua/includes/unsettle.lua
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1], 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[2]))
for i = 1, #due, 2 do
  redis.call('ZREM', KEYS[1], due[i])
  redis.call('ZADD', KEYS[2], due[i + 1], due[i])
  unsettle(KEYS[3], due[i])
  emit('client.lost', {computer = due[i], last_seen = tonumber(due[i + 1])})
end
return {#due / 2, EV}
