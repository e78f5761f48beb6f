-- Applies a vendor-signed retire code (the worker has checked its signature
-- and expiry): frees the computer's reservation, once per code, and only
-- while the computer still holds the license the code names. The seat
-- counts one fewer reserved; a later reserve of the name creates a new
-- license like any other. All in one script, so no heartbeat or reserve
-- sees half of it.
--
-- KEYS[1..10]  as in includes/retire_seat.lua
-- KEYS[11]     ps:events (common/lua/events.lua)
-- ARGV         registration code, NAME, license, code id, the requester
--              (pack_who()), the events cap, now (ms)
-- Returns      {'OK', reserved, purchased, events} or
--              {'REFUSED', reason, events} (reasons: includes/retire_seat.lua)
-- Events       license.retired, seat_code.refused
-- @include common/lua/events.lua
-- @include licensed/lua/includes/license_of.lua
-- @include licensed/lua/includes/retire_seat.lua
local reg, name, license, id = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local who = cmsgpack.unpack(ARGV[5])
local why = check_seat(reg, name, license, id)
if why then
  emit('seat_code.refused', {kind = 'retire', reason = why, computer = name, code_id = id}, who)
  return {'REFUSED', why, EV}
end
retire_seat(name, license)
redis.call('SADD', KEYS[8], id)
local reserved = redis.call('ZCARD', KEYS[2])
local purchased = tonumber(redis.call('HGET', KEYS[1], 'purchased') or '0')
emit('license.retired', {computer = name, code_id = id, reserved = reserved, purchased = purchased}, who)
return {'OK', reserved, purchased, EV}
