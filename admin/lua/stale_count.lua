-- Advances the rolling count of stale never-seen computers by one batch
-- (admin/include/admin/admin_service.hpp, AdminService::count_stale()).
--
-- Never-seen computers have no index by reservation time, so a pass walks
-- the reservations by name, `batch` of them per call, and adds up those
-- never seen and reserved before the cutoff (describe.lua's rule). The walk
-- lives in ps:stale, so any number of admin workers share one pass: each
-- call moves it on, none counts a batch twice. When the walk reaches the
-- end, the pass's total becomes the count and its finish time is recorded;
-- the next pass starts on the first call at least `gap` ms after that.
-- A call costs O(batch log n), whatever the fleet size.
--
-- KEYS[1]  ps:stale    hash: n (count of the last complete pass), at (ms it
--                      completed), cur (last name of the pass in progress,
--                      absent between passes), part (its count so far)
-- KEYS[2]  ps:res      zset of "NAME:LICENSE"
-- KEYS[3]  ps:active   zset: NAME -> last seen (ms)
-- KEYS[4]  ps:lost     zset: NAME -> last seen (ms)
-- KEYS[5]  ps:meta     hash: NAME -> meta (licensed/lua/includes/meta.lua)
-- ARGV[1]  now (ms)
-- ARGV[2]  cutoff (ms): stale when never seen and reserved before it
-- ARGV[3]  batch: the most reservations examined by this call
-- ARGV[4]  gap (ms): the least time from a pass's end to the next's start
-- Returns  {n or -1 before any complete pass, at or 0, 1 while a pass is in
--          progress after this call else 0}
local now, cutoff, batch, gap = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local h = redis.call('HMGET', KEYS[1], 'n', 'at', 'cur', 'part')
local n, at, cur, part = tonumber(h[1]) or -1, tonumber(h[2]) or 0, h[3], tonumber(h[4]) or 0
if not cur then
  if n >= 0 and now - at < gap then return {n, at, 0} end
  cur, part = '', 0
end

local start = cur == '' and '-' or ('(' .. cur .. ';')
local members = redis.call('ZRANGEBYLEX', KEYS[2], start, '+', 'LIMIT', 0, batch)
for _, m in ipairs(members) do
  local name = string.sub(m, 1, string.find(m, ':', 1, true) - 1)
  cur = name
  if not redis.call('ZSCORE', KEYS[3], name) and not redis.call('ZSCORE', KEYS[4], name) then
    local raw = redis.call('HGET', KEYS[5], name)
    local r = raw and cmsgpack.unpack(raw).r or 0
    if r < cutoff then part = part + 1 end
  end
end
if #members < batch then
  redis.call('HSET', KEYS[1], 'n', part, 'at', now)
  redis.call('HDEL', KEYS[1], 'cur', 'part')
  return {part, now, 0}
end
redis.call('HSET', KEYS[1], 'cur', cur, 'part', part)
return {n, at, 1}
