-- Appends one event to the activity log.
--
-- KEYS[1]  ps:events   (common/lua/events.lua)
-- ARGV     type, fields (a MessagePack map), the requester (pack_who(), or
--          '' for none), the events cap, now (ms)
-- Returns  {1, events}.
-- @include common/lua/events.lua
local who
if ARGV[3] ~= '' then who = cmsgpack.unpack(ARGV[3]) end
emit(ARGV[1], cmsgpack.unpack(ARGV[2]), who)
return {1, EV}
