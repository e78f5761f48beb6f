-- Appends one event to the activity log.
--
-- KEYS[1]  ps:events   (common/lua/events.lua)
-- ARGV     type, fields (a MessagePack map), the events cap, now (ms)
-- Returns  {1, events}.
-- @include common/lua/events.lua
emit(ARGV[1], cmsgpack.unpack(ARGV[2]))
return {1, EV}
