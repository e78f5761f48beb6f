-- Included first by every script that appends to the activity log
-- (`-- @include common/lua/events.lua`; common/events.hpp).
--
-- KEYS[#KEYS]      ps:events, the activity log stream
-- ARGV[#ARGV - 1]  the stream's cap (XADD MAXLEN ~)
-- ARGV[#ARGV]      now, ms
--
-- Defines for the script after it:
--   EV_NOW                the time, a number (ms)
--   EV                    the entries appended so far, each
--                         {id, type, ts, data, seq, prev}
--   emit(type, fields[, who])
--                         appends one entry: data is cmsgpack.pack(fields),
--                         without any field called `type`, plus the fields of
--                         `who` (actor, peer, via: who made the request, as
--                         the worker passed it, pack_who() in common/schema);
--                         the script returns EV in its reply so that the
--                         worker publishes them
--
-- The log is a hash chain (docs/protocol.md "Activity log chain"): each
-- entry also carries `seq`, its position (1, 2, ...), and `prev`, the SHA-1
-- of the previous entry's canonical bytes
--   id "\n" type "\n" ts "\n" seq "\n" prev "\n" data
-- (40 zeros before the first). The chain head is the stream's newest entry,
-- read once per script (XREVRANGE COUNT 1): trimming never removes it, so the
-- chain goes on across trimming and restarts without any other key. A newest
-- entry without `seq` (written before the chain existed) starts it at 1.
local EV_STREAM = KEYS[#KEYS]
local EV_CAP = ARGV[#ARGV - 1]
local EV_NOW = tonumber(ARGV[#ARGV])
local EV_TS = string.format('%.0f', EV_NOW)
local EV = {}
local EV_SEQ, EV_PREV        -- the last entry's seq and, once needed, its hash
local EV_LAST                -- this script's last entry, hashed lazily

local function ev_hash(id, etype, ts, seq, prev, data)
  return redis.sha1hex(id .. '\n' .. etype .. '\n' .. ts .. '\n' .. seq .. '\n' .. prev .. '\n' .. data)
end

local function ev_head()
  local last = redis.call('XREVRANGE', EV_STREAM, '+', '-', 'COUNT', 1)[1]
  if last then
    local f, t = last[2], {}
    for i = 1, #f, 2 do t[f[i]] = f[i + 1] end
    if t.seq and t.prev and t.type and t.ts and t.data then
      return tonumber(t.seq), ev_hash(last[1], t.type, t.ts, t.seq, t.prev, t.data)
    end
  end
  return 0, string.rep('0', 40)
end

local function emit(etype, fields, who)
  if who then
    for k, v in pairs(who) do fields[k] = v end
  end
  fields['type'] = nil
  local data = cmsgpack.pack(fields)
  if EV_LAST then
    EV_PREV = ev_hash(EV_LAST[1], EV_LAST[2], EV_TS, EV_LAST[3], EV_LAST[4], EV_LAST[5])
  elseif not EV_SEQ then
    EV_SEQ, EV_PREV = ev_head()
  end
  EV_SEQ = EV_SEQ + 1
  local seq = string.format('%d', EV_SEQ)
  local id = redis.call('XADD', EV_STREAM, 'MAXLEN', '~', EV_CAP, '*',
                        'type', etype, 'ts', EV_TS, 'data', data, 'seq', seq, 'prev', EV_PREV)
  EV[#EV + 1] = {id, etype, EV_NOW, data, EV_SEQ, EV_PREV}
  EV_LAST = {id, etype, seq, EV_PREV, data}
end
