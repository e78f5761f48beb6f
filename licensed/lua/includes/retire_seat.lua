-- check_seat(reg, name, license, id) and retire_seat(name, license): the
-- checks a seat code passes and the retirement both seat-code scripts
-- (retire.lua, transfer.lua) make. Include license_of.lua before it. The
-- scripts' KEYS[1..10] are, in this order:
--   ps:serial, ps:res, ps:meta, ps:active, ps:lost, ps:skewed, ps:retired,
--   ps:seat_codes, ps:cmd:NAME, ps:sent:NAME
--
-- check_seat returns nil when the code may be applied, else the reason it is
-- refused: OTHER_REGISTRATION, USED, NOT_RESERVED or OTHER_LICENSE.
local function check_seat(reg, name, license, id)
  if redis.call('HGET', KEYS[1], 'registration') ~= reg then return 'OTHER_REGISTRATION' end
  if redis.call('SISMEMBER', KEYS[8], id) == 1 then return 'USED' end
  local have = license_of(KEYS[2], name)
  if not have then return 'NOT_RESERVED' end
  if have ~= license then return 'OTHER_LICENSE' end
  return nil
end

-- Frees NAME's reservation and everything kept about the computer, and
-- remembers the license retired, so that the old Client's heartbeats are
-- answered RETIRED (heartbeat.lua) rather than NOT_RESERVED. Its meta entry
-- goes, so no heartbeat of it can take the fingerprint path again.
local function retire_seat(name, license)
  redis.call('ZREM', KEYS[2], name .. ':' .. license)
  redis.call('HDEL', KEYS[3], name)
  redis.call('ZREM', KEYS[4], name)
  redis.call('ZREM', KEYS[5], name)
  redis.call('SREM', KEYS[6], name)
  redis.call('HSET', KEYS[7], name, license)
  redis.call('DEL', KEYS[9], KEYS[10])
end
