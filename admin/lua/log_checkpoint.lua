-- Appends a signed checkpoint to the activity log, unless another admin
-- worker appended one since the caller looked (admin/log_checkpoint.hpp).
--
-- KEYS[1]  ps:logchk    hash: seq, at of the last checkpoint entry
-- KEYS[2]  ps:events    (common/lua/events.lua)
-- ARGV[1]  the last checkpoint's seq the caller saw ("0": none)
-- ARGV[2]  the checkpoint event type
-- ARGV[3]  its fields, a MessagePack map (count, head, log_key, signature)
-- ARGV[4]  the events cap, ARGV[5] now (ms): common/lua/events.lua
-- Returns  {1, events} appended, {0, {}} when the caller lost the race.
-- @include common/lua/events.lua
local last = redis.call('HGET', KEYS[1], 'seq') or '0'
if last ~= ARGV[1] then return {0, {}} end
emit(ARGV[2], cmsgpack.unpack(ARGV[3]))
redis.call('HSET', KEYS[1], 'seq', string.format('%d', EV[1][5]), 'at', ARGV[5])
return {1, EV}
