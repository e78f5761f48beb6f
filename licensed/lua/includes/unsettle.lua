-- unsettle(meta_key, name): takes the last-seen bucket (`s`) out of NAME's
-- meta entry, so that its next heartbeat takes the full path: used when a
-- command is queued for it, or when it is marked lost. Include
-- includes/meta.lua before it.
local function unsettle(meta_key, name)
  local raw = redis.call('HGET', meta_key, name)
  if not raw then return end
  local m = cmsgpack.unpack(raw)
  if m.s == nil then return end
  m.s = nil
  redis.call('HSET', meta_key, name, pack_meta(m))
end
