-- Reserves a license for each computer of a batch.
--
-- This is where "never more reservations than purchased, under any
-- concurrency, across any number of worker processes" is kept. Redis runs a
-- script alone, so the check (is this computer already reserved? is there a
-- license left?) and the write happen with nothing in between: two workers
-- racing for the last license are serialised by Redis, and the second sees
-- the first one's reservation. The worker passes in a fresh random license
-- key; it is used only if this call creates the reservation, so a repeat of
-- the same computer (names are upper-cased before they get here) always gets
-- the license it already holds, with status EXISTS. Nothing else ever
-- deletes or rewrites a member of ps:res: a reservation is permanent.
--
-- A worker sends all the reservations of a batch in one call (as for
-- heartbeats, the call itself was about half of Redis's cost per
-- reservation); they run one after the other, each as described above,
-- with nothing of anyone else's in between. The license is also copied into
-- the computer's meta entry (`l`), written once with the reservation and
-- never changed, so a heartbeat verifies with the one hash lookup it makes
-- anyway instead of a search of ps:res (O(log n) string comparisons, the
-- largest cost of a heartbeat in Redis at 1,000,000 computers).
--
-- KEYS[1]  ps:serial   hash: unlocked, purchased
-- KEYS[2]  ps:res      zset of "NAME:LICENSE"
-- KEYS[3]  ps:meta     hash: NAME -> meta (includes/meta.lua)
-- KEYS[4]  ps:events   (common/lua/events.lua)
-- ARGV     the number of reservations N; per reservation: NAME (upper
--          case), a new random license, the index of its requester among
--          the requesters; the requesters (each pack_who(), common/schema);
--          then the events cap, now (ms)
-- Returns  {out, events}; out[i] = {status, license, reserved, purchased}
--          for the i-th reservation, status one of
--            'CREATED'           license is the new one
--            'EXISTS'            license is the one NAME already holds
--            'NOT_UNLOCKED'      license is ''
--            'NO_LICENSES_LEFT'  license is ''
--          and reserved, purchased the counts after it.
-- Events   license.reserved, license.refused
-- @include common/lua/events.lua
-- @include licensed/lua/includes/license_of.lua
local n = tonumber(ARGV[1])
local who = {}
for j = 3 * n + 2, #ARGV - 2 do who[#who + 1] = cmsgpack.unpack(ARGV[j]) end
local purchased = tonumber(redis.call('HGET', KEYS[1], 'purchased') or '0')
local unlocked = redis.call('HGET', KEYS[1], 'unlocked')
local reserved = redis.call('ZCARD', KEYS[2])
local out = {}
for i = 1, n do
  local name, newlic, by = ARGV[3 * i - 1], ARGV[3 * i], who[tonumber(ARGV[3 * i + 1])]
  local have = license_of(KEYS[2], name)
  if have then
    out[i] = {'EXISTS', have, reserved, purchased}
  elseif not unlocked then
    emit('license.refused', {computer = name, reason = 'NOT_UNLOCKED'}, by)
    out[i] = {'NOT_UNLOCKED', '', reserved, purchased}
  elseif reserved >= purchased then
    emit('license.refused', {computer = name, reason = 'NO_LICENSES_LEFT',
                             reserved = reserved, purchased = purchased}, by)
    out[i] = {'NO_LICENSES_LEFT', '', reserved, purchased}
  else
    redis.call('ZADD', KEYS[2], 0, name .. ':' .. newlic)
    redis.call('HSET', KEYS[3], name, cmsgpack.pack({r = EV_NOW, l = newlic}))
    reserved = reserved + 1
    emit('license.reserved', {computer = name, reserved = reserved, purchased = purchased}, by)
    out[i] = {'CREATED', newlic, reserved, purchased}
  end
end
return {out, EV}
