-- Records a jump of the server's wall clock, once: the silence the sweep
-- forgives (the jump, in ms) for one check + grace, and the event.
--
-- KEYS[1]     ps:clock_jump (string with expiry: the forgiven ms)
-- KEYS[2]     ps:events (common/lua/events.lua)
-- ARGV[1]     forgiven ms
-- ARGV[2]     for how long, ms
-- ARGV[3]     event type (server.clock_jump)
-- ARGV[4]     wall clock delta, s
-- ARGV[5]     steady clock delta, s
-- ARGV[6..7]  the events cap, now (ms)
-- Returns     {1, events} when recorded, {0, events} when a jump is on record
--             already.
-- Events      server.clock_jump
-- @include common/lua/events.lua
if not redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2], 'NX') then return {0, EV} end
emit(ARGV[3], {wall_delta_s = tonumber(ARGV[4]), steady_delta_s = tonumber(ARGV[5])})
return {1, EV}
