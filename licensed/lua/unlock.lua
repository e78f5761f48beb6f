-- Applies an unlock code: the serial becomes unlocked for its number of
-- licenses. A later code for the same serial and registration replaces it
-- (and may add licenses); an earlier or equal one is refused.
--
-- KEYS[1]  ps:serial   hash: serial, registration, unlocked, purchased, issued, code
-- KEYS[2]  ps:events   (common/lua/events.lua)
-- ARGV     serial, registration code, licenses, issued (the code's time),
--          the unlock code, the requester (pack_who()), the events cap,
--          now (ms)
-- Returns  {'OK', purchased, events} or {'INVALID', reason}.
-- Events   serial.unlocked
-- @include common/lua/events.lua
local serial, reg, licenses, issued = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local cur = redis.call('HMGET', KEYS[1], 'serial', 'registration', 'issued')
if not cur[1] then return {'INVALID', 'no serial is registered on this server; register first'} end
if cur[1] ~= serial then return {'INVALID', 'the code is for another serial number'} end
if cur[2] ~= reg then return {'INVALID', "the code is for another server's registration code"} end
if cur[3] and issued <= tonumber(cur[3]) then
  return {'INVALID', 'the code is not later than the unlock code in force'}
end
redis.call('HSET', KEYS[1], 'unlocked', serial, 'purchased', licenses, 'issued', issued, 'code', ARGV[5])
emit('serial.unlocked', {serial = serial, purchased = licenses}, cmsgpack.unpack(ARGV[6]))
return {'OK', licenses, EV}
