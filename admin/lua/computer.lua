-- One computer's row and the number of commands queued for it.
--
-- KEYS[1..4]  ps:res, ps:active, ps:lost, ps:meta (as computers.lua)
-- KEYS[5]     ps:cmd:NAME, list of queued commands
-- ARGV[1]     NAME
-- ARGV[2]     cutoff (ms): active = last seen at or after it
-- ARGV[3..4]  stale cutoffs (ms), as computers.lua's ARGV[7..8]
-- Returns     the row as describe() makes it plus the queue's length, or
--             nil when NAME is not reserved.
local cutoff, stale_unseen, stale_lost = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
-- @include admin/lua/includes/describe.lua
local lic = license_of(ARGV[1])
if lic == '' then return false end
local row = describe(ARGV[1], lic)
row[#row + 1] = redis.call('LLEN', KEYS[5])
return row
