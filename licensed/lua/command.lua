-- Queues a management command for a reserved computer. Its next heartbeat
-- must see the queue, so its meta loses the last-seen bucket (unsettle()).
--
-- KEYS[1]  ps:res        zset of "NAME:LICENSE"
-- KEYS[2]  ps:cmd:NAME   list of queued commands (MessagePack)
-- KEYS[3]  ps:meta       hash: NAME -> meta (includes/meta.lua)
-- KEYS[4]  ps:events     (common/lua/events.lua)
-- ARGV     NAME, command id, the command entry (MessagePack), queue limit,
--          command name, the requester (pack_who()), the events cap, now (ms)
-- Returns  {'OK', events}, {'NOT_FOUND'} (not reserved) or {'FULL'}.
-- Events   command.queued
-- @include common/lua/events.lua
-- @include licensed/lua/includes/license_of.lua
-- @include licensed/lua/includes/meta.lua
-- @include licensed/lua/includes/unsettle.lua
if not license_of(KEYS[1], ARGV[1]) then return {'NOT_FOUND'} end
if redis.call('LLEN', KEYS[2]) >= tonumber(ARGV[4]) then return {'FULL'} end
redis.call('RPUSH', KEYS[2], ARGV[3])
unsettle(KEYS[3], ARGV[1])
emit('command.queued', {computer = ARGV[1], command_id = ARGV[2], command = ARGV[5]}, cmsgpack.unpack(ARGV[6]))
return {'OK', EV}
