-- What a computer's setup file needs from Redis (its license and the
-- serial), and the log entry that they were handed out.
--
-- KEYS[1]  ps:res      zset of "NAME:LICENSE"
-- KEYS[2]  ps:serial   hash: serial, unlocked
-- KEYS[3]  ps:events   (common/lua/events.lua)
-- ARGV     NAME, the requester (pack_who()), the events cap, now (ms)
-- Returns  {license, serial, events}: license nil when NAME holds no
--          reservation (nothing logged then); serial the unlocked one, else
--          the registered one, else ''.
-- Events   setup_info.issued
-- @include common/lua/events.lua
-- @include licensed/lua/includes/license_of.lua
local license = license_of(KEYS[1], ARGV[1])
if not license then return {false, '', EV} end
local s = redis.call('HMGET', KEYS[2], 'unlocked', 'serial')
emit('setup_info.issued', {computer = ARGV[1]}, cmsgpack.unpack(ARGV[2]))
return {license, s[1] or s[2] or '', EV}
