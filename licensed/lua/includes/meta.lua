-- pack_meta(m): a computer's meta entry (ps:meta) as stored.
--
-- A meta entry is a MessagePack map written with its keys in one fixed
-- order: l (license), v (Client version), p (peer), k (clock skew in s,
-- only while the Client's clock is off by more than the setting), s
-- (last-seen bucket), f (first seen), r (reserved), then any others sorted
-- (kt: when the last client.clock_skew was emitted, ms). Readers see an
-- ordinary map; the heartbeat script also compares the bytes from l to s
-- with the ones the worker sends (heartbeat_fingerprint()), so a computer
-- that changed nothing since its last write this bucket costs one hash
-- lookup and a string comparison. A map of more than 15 keys is left to
-- cmsgpack's own order.
local META_ORDER = {'l', 'v', 'p', 'k', 's', 'f', 'r'}
local META_RANK = {l = 1, v = 2, p = 3, k = 4, s = 5, f = 6, r = 7}
local function pack_meta(m)
  local parts, extra = {}, {}
  for _, key in ipairs(META_ORDER) do
    if m[key] ~= nil then parts[#parts + 1] = cmsgpack.pack(key, m[key]) end
  end
  for key in pairs(m) do
    if not META_RANK[key] then extra[#extra + 1] = tostring(key) end
  end
  if #parts + #extra > 15 then return cmsgpack.pack(m) end
  table.sort(extra)
  for _, key in ipairs(extra) do parts[#parts + 1] = cmsgpack.pack(key, m[key]) end
  return string.char(0x80 + #parts) .. table.concat(parts)
end
