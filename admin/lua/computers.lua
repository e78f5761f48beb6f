-- One page of computers, by name or by last seen. A page costs
-- O(log n + budget) whatever the fleet size.
--
-- By name: walk the reservations set (members "NAME:LICENSE", scores 0) in
-- lexicographic order from just after the cursor name. A state filter can
-- skip entries, so each page examines at most `budget` reservations and
-- returns a cursor to continue from even when it found fewer matches.
--
-- By last seen (newest first): merge the two disjoint last-seen sets, active
-- and lost, from just below the cursor (score, name); ties on the score are
-- ordered by name, descending. Then, in a second phase, the never-seen
-- computers by name. Cursors: "S|<score>|<name>" and "N|<name>".
--
-- KEYS[1]  ps:res      zset of "NAME:LICENSE"
-- KEYS[2]  ps:active   zset: NAME -> last seen (ms)
-- KEYS[3]  ps:lost     zset: NAME -> last seen (ms)
-- KEYS[4]  ps:meta     hash: NAME -> meta (licensed/lua/includes/meta.lua)
-- ARGV[1]  sort: 'name' or 'last-seen'
-- ARGV[2]  cursor, '' for the first page
-- ARGV[3]  limit: the most rows returned
-- ARGV[4]  state filter: 'active', 'lost', 'reserved' or '' for all
-- ARGV[5]  cutoff (ms): active = last seen at or after it
-- ARGV[6]  budget: the most reservations examined
-- ARGV[7]  stale cutoffs (ms): never seen and reserved before it
-- ARGV[8]  ... lost and last seen before it
-- ARGV[9]  '1': only stale computers; '' all
-- Returns  {rows, next cursor or ''}, each row as describe() makes it.
-- Errors   'bad cursor'
local sort, cursor, limit, want = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local cutoff, budget = tonumber(ARGV[5]), tonumber(ARGV[6])
local stale_unseen, stale_lost, only_stale = tonumber(ARGV[7]), tonumber(ARGV[8]), ARGV[9] == '1'
local items = {}
-- @include admin/lua/includes/describe.lua

-- Walks reservations by name after `after`; stops at limit matches or budget.
local function by_name(after, phase_prefix, only_unseen)
  local start = after == '' and '-' or ('(' .. after .. ';')
  local examined, last = 0, nil
  while #items < limit and examined < budget do
    local batch = math.min(budget - examined, 200)
    local members = redis.call('ZRANGEBYLEX', KEYS[1], start, '+', 'LIMIT', 0, batch)
    if #members == 0 then return '' end
    for _, m in ipairs(members) do
      examined = examined + 1
      local sep = string.find(m, ':', 1, true)
      local name, lic = string.sub(m, 1, sep - 1), string.sub(m, sep + 1)
      last = name
      local d = describe(name, lic)
      if (not only_unseen or d[6] == '') and (want == '' or d[3] == want) and (not only_stale or d[10] == '1') then
        items[#items + 1] = d
        if #items >= limit then break end
      end
    end
    start = '(' .. last .. ';'
    if #members < batch then
      if #items >= limit then break end
      return ''
    end
  end
  -- Anything left after `last`?
  local more = redis.call('ZRANGEBYLEX', KEYS[1], '(' .. last .. ';', '+', 'LIMIT', 0, 1)
  if #more == 0 then return '' end
  return phase_prefix .. last
end

if sort == 'name' then
  return {items, by_name(cursor, '', false)}
end

-- sort == 'last-seen'
if want == 'reserved' then
  -- Never seen: no last-seen time; by name.
  return {items, by_name(cursor, '', true)}
end
if string.sub(cursor, 1, 2) ~= 'N|' then
  local s0, n0 = nil, nil
  if cursor ~= '' then
    s0, n0 = string.match(cursor, '^S|(%d+)|(.+)$')
    if not s0 then return redis.error_reply('bad cursor') end
  end
  -- Up to `limit` candidates from each set, strictly after (s0, n0).
  local cands = {}
  for _, key in ipairs({KEYS[2], KEYS[3]}) do
    local rows
    if s0 then
      local ties = redis.call('ZREVRANGEBYSCORE', key, s0, s0)
      for _, name in ipairs(ties) do
        if name < n0 then cands[#cands + 1] = {name, tonumber(s0)} end
      end
      rows = redis.call('ZREVRANGEBYSCORE', key, '(' .. s0, '-inf', 'WITHSCORES', 'LIMIT', 0, limit)
    else
      rows = redis.call('ZREVRANGEBYSCORE', key, '+inf', '-inf', 'WITHSCORES', 'LIMIT', 0, limit)
    end
    for i = 1, #rows, 2 do cands[#cands + 1] = {rows[i], tonumber(rows[i + 1])} end
  end
  table.sort(cands, function(x, y)
    if x[2] ~= y[2] then return x[2] > y[2] end
    return x[1] > y[1]
  end)
  -- Consuming at most `limit` candidates keeps the merge exact.
  local used = math.min(#cands, limit)
  for i = 1, used do
    local d = describe(cands[i][1], license_of(cands[i][1]))
    if (want == '' or d[3] == want) and (not only_stale or d[10] == '1') then items[#items + 1] = d end
  end
  if used == limit and used > 0 then
    local c = cands[used]
    return {items, 'S|' .. string.format('%d', c[2]) .. '|' .. c[1]}
  end
  if want ~= '' then return {items, ''} end
  cursor = 'N|'
end
-- Second phase: never-seen computers by name.
return {items, by_name(string.sub(cursor, 3), 'N|', true)}
