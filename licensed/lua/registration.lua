-- Registers a serial number with its registration code, or reads the one
-- registered. Once a serial is unlocked only that serial can be registered
-- again.
--
-- KEYS[1]  ps:serial   hash: serial, registration, unlocked
-- ARGV[1]  the serial, or '' to read
-- ARGV[2]  the registration code for it
-- Returns  {'OK', serial, registration}, {'LOCKED', the unlocked serial}
--          or {'NONE'} (reading, nothing registered).
local cur = redis.call('HMGET', KEYS[1], 'serial', 'registration', 'unlocked')
if ARGV[1] == '' then
  if not cur[1] then return {'NONE'} end
  return {'OK', cur[1], cur[2]}
end
if cur[3] and cur[3] ~= ARGV[1] then return {'LOCKED', cur[3]} end
redis.call('HSET', KEYS[1], 'serial', ARGV[1], 'registration', ARGV[2])
return {'OK', ARGV[1], ARGV[2]}
