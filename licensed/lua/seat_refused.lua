-- Logs a seat code the worker refused before any state was read (bad
-- signature or shape, expired, the other kind of code).
--
-- KEYS[1]  ps:events (common/lua/events.lua)
-- ARGV     kind, reason, NAME or '', TO or '', code id or '', the requester
--          (pack_who()), the events cap, now (ms)
-- Returns  {events}
-- Events   seat_code.refused
-- @include common/lua/events.lua
local function opt(v) if v == '' then return nil end return v end
emit('seat_code.refused', {kind = opt(ARGV[1]), reason = ARGV[2], computer = opt(ARGV[3]), to = opt(ARGV[4]),
                           code_id = opt(ARGV[5])}, cmsgpack.unpack(ARGV[6]))
return {EV}
