-- describe(name, lic): one computer's row, {name, license, state,
--   reserved_at, first_seen, last_seen, version, peer, clock_skew, stale}
--   with '' for unknown; state is 'active' (seen since `cutoff`), 'lost' or
--   'reserved' (never seen); clock_skew is the skew of its last heartbeat,
--   s, while beyond the licensing service's setting; stale is '1' for a
--   computer never seen and reserved before `stale_unseen`, or lost and
--   last seen before `stale_lost`, else ''.
-- license_of(name): the license reserved for NAME, or ''.
--
-- Needs KEYS[1..4] = ps:res, ps:active, ps:lost, ps:meta, and locals
-- `cutoff`, `stale_unseen`, `stale_lost` (ms) declared before it.
local function describe(name, lic)
  local a = redis.call('ZSCORE', KEYS[2], name)
  local l = redis.call('ZSCORE', KEYS[3], name)
  local state, last = 'reserved', ''
  if a then
    last = a
    if tonumber(a) >= cutoff then state = 'active' else state = 'lost' end
  elseif l then
    last, state = l, 'lost'
  end
  local metaraw = redis.call('HGET', KEYS[4], name)
  local m = metaraw and cmsgpack.unpack(metaraw) or {}
  local stale = (state == 'reserved' and (m.r or 0) < stale_unseen) or
                (state == 'lost' and tonumber(last) < stale_lost)
  return {name, lic, state, tostring(m.r or ''), tostring(m.f or ''), last, m.v or '', m.p or '',
          tostring(m.k or ''), stale and '1' or ''}
end

local function license_of(name)
  local m = redis.call('ZRANGEBYLEX', KEYS[1], '[' .. name .. ':', '(' .. name .. ';', 'LIMIT', 0, 1)
  if m[1] then return string.sub(m[1], #name + 2) end
  return ''
end
