-- Verifies and records a batch of Client heartbeats, delivers their queued
-- commands and takes their command results.
--
-- One call for a whole batch: the script call itself (argument tables, the
-- Lua call, the reply) cost Redis about 18 us of the 29 us a one-heartbeat
-- script took. Heartbeats run in order, each exactly as if it were alone:
-- verify, record, deliver commands, take results. A delivered command's id
-- goes into the computer's "sent" set; a result is recorded (command.done)
-- only for an id it removes from that set, so a result re-sent after a lost
-- reply, or for an id never sent, is dropped.
--
-- Last seen is written once per bucket of --last-seen-quantum-ms (by default
-- the lease's time grid, 60 s with the default check interval), at the
-- computer's first heartbeat in it, together with the bucket in its meta
-- (`s`). A heartbeat whose license, version and peer are those on record and
-- whose bucket is recorded already changes nothing: it is answered after one
-- HGET and a comparison of the meta's bytes with the fingerprint. That
-- needs, while `s` is the current bucket: the computer is in the active set
-- (the sweep takes `s` away when it marks a computer lost), no command is
-- queued for it (queuing one takes `s` away), and the serial is unlocked
-- (checked once per call). A heartbeat carrying results always takes the
-- full path. With a quantum of 0 there are no buckets: every heartbeat
-- writes last seen.
--
-- Clock skew: the fingerprint of a heartbeat whose Client clock is off by
-- more than the setting carries k (the skew, s); the others carry none. A
-- change of k takes the full path, which records it in the meta and keeps
-- the skewed set (the computers whose last heartbeat was skewed) in step,
-- and emits client.clock_skew at most once per reject window per computer.
-- A heartbeat without k whose meta has one mismatches at k, so it takes the
-- full path and clears it; others pay nothing.
--
-- A refused heartbeat whose license is the one a seat code retired from
-- that name (ps:retired) is answered RETIRED instead of NOT_RESERVED or
-- LICENSE_MISMATCH: one more lookup, on the refusal path only.
--
-- KEYS[1..8]  ps:serial, ps:res, ps:meta, ps:active, ps:lost, ps:stats,
--             ps:skewed (set of the computers whose last heartbeat was skewed),
--             ps:retired (hash: NAME -> the license a seat code retired)
-- KEYS        then per heartbeat: ps:cmd:NAME (list of queued commands),
--             ps:rej:NAME (reject marker), ps:sent:NAME (set of ids sent)
-- KEYS[#KEYS] ps:events (common/lua/events.lua)
-- ARGV[1]     reject window, s: a refused computer logs client.rejected at
--             most once per window
-- ARGV[2]     the current last-seen bucket, '' with a quantum of 0
-- ARGV        then per heartbeat: NAME; the fingerprint, the map entries
--             l, v, p (k when skewed, s with a bucket) packed as pack_meta() packs
--             them (heartbeat_fingerprint()); the results, a MessagePack
--             array of {id, ok, detail}, or ''
-- ARGV        last: the events cap, now (ms)
-- Returns     {out, events, the unlocked serial or ''}; out[i] is 'OK', or
--             {'OK', command...} when queued commands are delivered (each
--             the MessagePack entry queued), or the reason the i-th
--             computer is unlicensed: 'NOT_UNLOCKED', 'NOT_RESERVED',
--             'LICENSE_MISMATCH' or 'RETIRED'.
-- Events      client.licensed, client.returned, client.rejected, command.done,
--             client.clock_skew
-- @include common/lua/events.lua
-- @include licensed/lua/includes/license_of.lua
-- @include licensed/lua/includes/meta.lua
local rejwin, bucket = ARGV[1], ARGV[2]
bucket = bucket ~= '' and tonumber(bucket) or nil
local n = (#ARGV - 4) / 3
local serial = redis.call('HGET', KEYS[1], 'unlocked')
local rejected = 0
local function one(i)
  local a, k = 2 + (i - 1) * 3, 8 + (i - 1) * 3
  local name, pre, results = ARGV[a + 1], ARGV[a + 2], ARGV[a + 3]
  local metaraw = redis.call('HGET', KEYS[3], name)
  if bucket and serial and results == '' and metaraw and string.sub(metaraw, 2, #pre + 1) == pre then
    return 'OK'
  end
  local kv, hb = {cmsgpack.unpack(pre)}, {}
  for j = 1, #kv - 1, 2 do hb[kv[j]] = kv[j + 1] end
  local lic, version, peer, skew = hb.l, hb.v, hb.p, hb.k
  local kcmds, kreject, ksent = KEYS[k + 1], KEYS[k + 2], KEYS[k + 3]
  local reason = nil
  local meta = metaraw and cmsgpack.unpack(metaraw) or {}
  if not serial then
    reason = 'NOT_UNLOCKED'
  else
    local have = meta.l or license_of(KEYS[2], name)
    if not have then reason = 'NOT_RESERVED' elseif have ~= lic then reason = 'LICENSE_MISMATCH' end
    if reason and redis.call('HGET', KEYS[8], name) == lic then reason = 'RETIRED' end
  end
  if reason then
    rejected = rejected + 1
    if redis.call('SET', kreject, '1', 'EX', rejwin, 'NX') then
      emit('client.rejected', {computer = name, reason = reason, peer = peer})
    end
    return reason
  end
  local changed = false
  if not bucket or meta.s ~= bucket then
    if redis.call('ZADD', KEYS[4], EV_NOW, name) == 1 then
      if redis.call('ZREM', KEYS[5], name) == 1 then
        emit('client.returned', {computer = name, peer = peer, version = version})
      elseif not meta.f then
        meta.f = EV_NOW
        emit('client.licensed', {computer = name, peer = peer, version = version})
      end
    end
    if bucket or meta.s ~= nil then meta.s, changed = bucket, true end
  end
  if meta.k ~= skew then
    if skew then
      redis.call('SADD', KEYS[7], name)
      if not meta.kt or EV_NOW - meta.kt >= tonumber(rejwin) * 1000 then
        meta.kt = EV_NOW
        emit('client.clock_skew', {computer = name, skew_s = skew})
      end
    else
      redis.call('SREM', KEYS[7], name)
    end
    meta.k, changed = skew, true
  end
  if meta.l ~= lic or meta.v ~= version or meta.p ~= peer or changed then
    meta.l, meta.v, meta.p = lic, version, peer  -- reservations made before meta kept the license
    redis.call('HSET', KEYS[3], name, pack_meta(meta))
  end
  if results ~= '' then
    for _, r in ipairs(cmsgpack.unpack(results)) do
      if redis.call('SREM', ksent, r.id) == 1 then
        emit('command.done', {computer = name, command_id = r.id, ok = r.ok, detail = r.detail})
      end
    end
  end
  if redis.call('EXISTS', kcmds) == 0 then return 'OK' end
  local cmds = redis.call('LRANGE', kcmds, 0, -1)
  redis.call('DEL', kcmds)
  for _, c in ipairs(cmds) do redis.call('SADD', ksent, cmsgpack.unpack(c).id) end
  redis.call('EXPIRE', ksent, 30 * 86400)
  table.insert(cmds, 1, 'OK')
  return cmds
end
local out = {}
for i = 1, n do out[i] = one(i) end
if rejected > 0 then redis.call('HINCRBY', KEYS[6], 'rejected', rejected) end
return {out, EV, serial or ''}
