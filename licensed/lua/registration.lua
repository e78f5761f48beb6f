-- Registers a serial number with its registration code, or reads the one
-- registered. Once a serial is unlocked only that serial can be registered
-- again.
--
-- KEYS[1]  ps:serial   hash: serial, registration, unlocked
-- KEYS[2]  ps:events   (common/lua/events.lua)
-- ARGV     the serial ('' to read), the registration code for it, the
--          requester (pack_who()), the events cap, now (ms)
-- Returns  {'OK', serial, registration}, {'LOCKED', the unlocked serial}
--          or {'NONE'} (reading, nothing registered); a registration also
--          returns its events after them.
-- Events   serial.registered
-- @include common/lua/events.lua
local cur = redis.call('HMGET', KEYS[1], 'serial', 'registration', 'unlocked')
if ARGV[1] == '' then
  if not cur[1] then return {'NONE'} end
  return {'OK', cur[1], cur[2]}
end
if cur[3] and cur[3] ~= ARGV[1] then return {'LOCKED', cur[3]} end
redis.call('HSET', KEYS[1], 'serial', ARGV[1], 'registration', ARGV[2])
if cur[1] ~= ARGV[1] then
  emit('serial.registered', {serial = ARGV[1]}, cmsgpack.unpack(ARGV[3]))
end
return {'OK', ARGV[1], ARGV[2], EV}
