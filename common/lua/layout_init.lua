-- Reads the data's layout version; writes it into an empty database.
--
-- KEYS[1]  ps:layout       string: the layout version
-- KEYS[2]  ps:layout:lock  string with expiry: the migration lock (not data)
-- ARGV[1]  the product's key pattern, 'ps:*'
-- ARGV[2]  this release's layout version
-- Returns  the version found: ps:layout, or 0 when it is absent and other
--          product keys exist (data from before versioning); -1 when there
--          was no product key at all and ARGV[2] has been written.
local v = redis.call('GET', KEYS[1])
if v then return tonumber(v) end
local cursor = '0'
repeat
  local r = redis.call('SCAN', cursor, 'MATCH', ARGV[1], 'COUNT', 1000)
  cursor = r[1]
  for _, k in ipairs(r[2]) do
    if k ~= KEYS[2] then return 0 end
  end
until cursor == '0'
redis.call('SET', KEYS[1], ARGV[2])
return -1
