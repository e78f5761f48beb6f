-- Migrates the data from layout 0 (before versioning) to layout 1, if the
-- caller still holds the migration lock. Layout 1 is layout 0 with its
-- version recorded: the step changes no other key.
--
-- KEYS[1]     ps:layout       string: the layout version
-- KEYS[2]     ps:layout:lock  string with expiry: the migration lock
-- KEYS[3]     ps:events (common/lua/events.lua)
-- ARGV[1]     the lock's token
-- ARGV[2]     event type (data.migrated)
-- ARGV[3..4]  the events cap, now (ms)
-- Returns     {1, events} when migrated, {0, events} when the data is not
--             in layout 0 (any more), {-1, events} when the lock is lost.
-- Events      data.migrated {from, to}
-- @include common/lua/events.lua
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return {-1, EV} end
if redis.call('EXISTS', KEYS[1]) == 1 then return {0, EV} end
redis.call('SET', KEYS[1], '1')
emit(ARGV[2], {from = 0, to = 1})
return {1, EV}
