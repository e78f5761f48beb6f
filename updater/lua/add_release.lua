-- Adds a release to the catalogue once: a second sync of the same feed
-- changes nothing.
--
-- KEYS[1]  ps:upd:releases   hash: "COMPONENT VERSION" -> record (MessagePack)
-- KEYS[2]  ps:upd:state      hash: "COMPONENT VERSION" -> 'held' | 'approved:P'
-- KEYS[3]  ps:upd:gen        counter: the catalogue's generation
-- KEYS[4]  ps:events         (common/lua/events.lua)
-- ARGV     field ("COMPONENT VERSION"), record, state, component, version,
--          channel, size (bytes), the job and its requester (MessagePack
--          map: job, actor, peer, via), the events cap, now (ms)
-- Returns  {1, events} when added, {0, events} when it was there already.
-- Events   update.available, and update.approved unless the state is 'held'
-- @include common/lua/events.lua
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return {0, EV} end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
redis.call('INCR', KEYS[3])
emit('update.available', {component = ARGV[4], version = ARGV[5], channel = ARGV[6],
                          size = tonumber(ARGV[7])}, cmsgpack.unpack(ARGV[8]))
if ARGV[3] ~= 'held' then
  emit('update.approved', {component = ARGV[4], version = ARGV[5], rollout = 100, auto = true},
       cmsgpack.unpack(ARGV[8]))
end
return {1, EV}
