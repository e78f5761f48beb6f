-- Approves or holds a release.
--
-- KEYS[1]  ps:upd:releases   hash: "COMPONENT VERSION" -> record
-- KEYS[2]  ps:upd:state      hash: "COMPONENT VERSION" -> 'held' | 'approved:P'
-- KEYS[3]  ps:upd:gen        counter: the catalogue's generation
-- KEYS[4]  ps:events         (common/lua/events.lua)
-- ARGV     field ("COMPONENT VERSION"), new state, event type
--          ('update.approved' or 'update.held'), component, version,
--          rollout (percent), the requester (pack_who()), the events cap,
--          now (ms)
-- Returns  {-1, events} for an unknown release, {0, events} when the state
--          was already that, {1, events} after the change.
-- Events   the type given
-- @include common/lua/events.lua
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return {-1, EV} end
if redis.call('HGET', KEYS[2], ARGV[1]) == ARGV[2] then return {0, EV} end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('INCR', KEYS[3])
local fields = {component = ARGV[4], version = ARGV[5]}
if ARGV[3] == 'update.approved' then fields['rollout'] = tonumber(ARGV[6]) end
emit(ARGV[3], fields, cmsgpack.unpack(ARGV[7]))
return {1, EV}
