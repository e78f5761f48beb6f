-- license_of(key, name): the license reserved for NAME, or nil.
--
-- Reservations live in one sorted set (ps:res), all scores 0, members
-- "NAME:LICENSE" (':' cannot occur in a name). Lexicographic order gives
-- paging by name for free and a lookup costs O(log n), in about 145 bytes
-- per computer.
local function license_of(key, name)
  local m = redis.call('ZRANGEBYLEX', key, '[' .. name .. ':', '(' .. name .. ';', 'LIMIT', 0, 1)
  if m[1] then return string.sub(m[1], #name + 2) end
  return nil
end
