-- Applies a vendor-signed transfer code (the worker has checked its
-- signature and expiry): the computer's seat moves to a new name. The old
-- name is retired exactly as retire.lua does, and the new name gets a NEW
-- license (the worker's fresh random one), never the old: the old Client
-- must not be able to pose as the new computer. One script, so the number
-- of reservations is the same before and after and never exceeds purchased
-- in between, whatever reservations run beside it.
--
-- KEYS[1..10]  as in includes/retire_seat.lua (NAME the old name)
-- KEYS[11]     ps:events (common/lua/events.lua)
-- ARGV         registration code, NAME, license, TO (the new name), the new
--              license, code id, the requester (pack_who()), the events cap, now (ms)
-- Returns      {'OK', reserved, purchased, events} or
--              {'REFUSED', reason, events}: the reasons of
--              includes/retire_seat.lua, or NAME_TAKEN when TO holds a
--              reservation already
-- Events       license.transferred, seat_code.refused
-- @include common/lua/events.lua
-- @include licensed/lua/includes/license_of.lua
-- @include licensed/lua/includes/retire_seat.lua
local reg, name, license, to, newlic = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local id, who = ARGV[6], cmsgpack.unpack(ARGV[7])
local why = check_seat(reg, name, license, id)
if not why and license_of(KEYS[2], to) then why = 'NAME_TAKEN' end
if why then
  emit('seat_code.refused', {kind = 'transfer', reason = why, computer = name, to = to, code_id = id}, who)
  return {'REFUSED', why, EV}
end
retire_seat(name, license)
redis.call('ZADD', KEYS[2], 0, to .. ':' .. newlic)
redis.call('HSET', KEYS[3], to, cmsgpack.pack({r = EV_NOW, l = newlic}))
redis.call('SADD', KEYS[8], id)
local reserved = redis.call('ZCARD', KEYS[2])
local purchased = tonumber(redis.call('HGET', KEYS[1], 'purchased') or '0')
emit('license.transferred', {computer = name, to = to, code_id = id,
                             reserved = reserved, purchased = purchased}, who)
return {'OK', reserved, purchased, EV}
