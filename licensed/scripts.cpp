#include "licensed/scripts.hpp"

#include <string>

#include "common/events.hpp"

namespace primary::licensing {
namespace {

// Reservations live in one sorted set, all scores 0, members "NAME:LICENSE"
// (':' cannot occur in a name). Lexicographic order gives paging by name
// for free and a lookup costs O(log n), in about 145 bytes per computer.
const char* const kLuaLicenseOf = R"lua(
local function license_of(key, name)
  local m = redis.call('ZRANGEBYLEX', key, '[' .. name .. ':', '(' .. name .. ';', 'LIMIT', 0, 1)
  if m[1] then return string.sub(m[1], #name + 2) end
  return nil
end
)lua";

// A computer's meta entry (ps:meta) is a MessagePack map written with its
// keys in one fixed order: l (license), v (Client version), p (peer), k
// (clock skew in s, only while the Client's clock is off by more than the
// setting), s (last-seen bucket), f (first seen), r (reserved), then any
// others sorted (kt: when the last client.clock_skew was emitted, ms).
// Readers see an ordinary map; the heartbeat script also compares the bytes
// from l to s with the ones the worker sends (heartbeat_fingerprint()), so a
// computer that changed nothing since its last write this bucket costs one
// hash lookup and a string comparison.
const char* const kLuaMeta = R"lua(
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
-- Takes the last-seen bucket out of a computer's meta, so that its next
-- heartbeat takes the full path (a command is queued, or it was marked lost).
local function unsettle(meta_key, name)
  local raw = redis.call('HGET', meta_key, name)
  if not raw then return end
  local m = cmsgpack.unpack(raw)
  if m.s == nil then return end
  m.s = nil
  redis.call('HSET', meta_key, name, pack_meta(m))
end
)lua";

std::string with_events(const char* body) {
  return lua_with_events(body, (std::string(kLuaLicenseOf) + kLuaMeta).c_str());
}

}  // namespace

// The reservation script.
//
// This is where "never more reservations than purchased, under any
// concurrency, across any number of worker processes" is kept. Redis runs a
// script alone, so the check (is this computer already reserved? is there a
// license left?) and the write happen with nothing in between: two workers
// racing for the last license are serialised by Redis, and the second sees
// the first one's reservation. The worker passes in a fresh random license
// key; it is used only if this call creates the reservation, so a repeat of
// the same computer (names are upper-cased before they get here) always gets
// the license it already holds, with created = 0. Nothing else ever deletes
// or rewrites a member of ps:res: a reservation is permanent.
//
// A worker sends all the reservations of a batch in one call (as for
// heartbeats, the call itself was about half of Redis's cost per
// reservation); they run one after the other, each as described above,
// with nothing of anyone else's in between. The license is also copied into
// the computer's meta entry (`l`), written once with the reservation and
// never changed, so a heartbeat verifies with the one hash lookup it makes
// anyway instead of a search of ps:res (O(log n) string comparisons, the
// largest cost of a heartbeat in Redis at 1,000,000 computers).
//
// KEYS: serial, reservations, meta, events
// ARGV: per reservation: name, new license; last: cap, now
// Returns {{status, license, reserved, purchased} per reservation, events}.
const Script& reserve_script() {
  static const Script s(with_events(R"lua(
local n = (#ARGV - 2) / 2
local purchased = tonumber(redis.call('HGET', KEYS[1], 'purchased') or '0')
local unlocked = redis.call('HGET', KEYS[1], 'unlocked')
local reserved = redis.call('ZCARD', KEYS[2])
local out = {}
for i = 1, n do
  local name, newlic = ARGV[2 * i - 1], ARGV[2 * i]
  local have = license_of(KEYS[2], name)
  if have then
    out[i] = {'EXISTS', have, reserved, purchased}
  elseif not unlocked then
    emit('license.refused', {computer = name, reason = 'NOT_UNLOCKED'})
    out[i] = {'NOT_UNLOCKED', '', reserved, purchased}
  elseif reserved >= purchased then
    emit('license.refused', {computer = name, reason = 'NO_LICENSES_LEFT',
                             reserved = reserved, purchased = purchased})
    out[i] = {'NO_LICENSES_LEFT', '', reserved, purchased}
  else
    redis.call('ZADD', KEYS[2], 0, name .. ':' .. newlic)
    redis.call('HSET', KEYS[3], name, cmsgpack.pack({r = EV_NOW, l = newlic}))
    reserved = reserved + 1
    emit('license.reserved', {computer = name, reserved = reserved, purchased = purchased})
    out[i] = {'CREATED', newlic, reserved, purchased}
  end
end
return {out, EV}
)lua"));
  return s;
}

// A batch of Client heartbeats, one EVALSHA for all of them: the script
// call itself (argument tables, the Lua call, the reply) cost Redis about
// 18 us of the 29 us a one-heartbeat script took, so a worker sends each
// batch it holds as one call. Heartbeats run in order, each exactly as if it
// were alone: verify, record, deliver commands, take results. A delivered
// command's id goes into the computer's "sent" set; a result is recorded
// (command.done) only for an id it removes from that set, so a result
// re-sent after a lost reply, or for an id never sent, is dropped.
//
// Last seen is written once per bucket of --last-seen-quantum-ms (by default
// the lease's time grid, 60 s with the default check interval), at the
// computer's first heartbeat in it, together with the bucket in its meta
// (`s`). A heartbeat whose license, version and peer are those on record and
// whose bucket is recorded already changes nothing: it is answered after one
// HGET and a comparison of the meta's bytes with the fingerprint the worker
// sends (l, v, p and s, packed as pack_meta() packs them). That needs, while
// `s` is the current bucket: the computer is in the active set (the sweep
// takes `s` away when it marks a computer lost), no command is queued for it
// (queuing one takes `s` away), and the serial is unlocked (checked once per
// call). A heartbeat carrying results always takes the full path. With a
// quantum of 0 there are no buckets: every heartbeat writes last seen.
//
// Clock skew: the fingerprint of a heartbeat whose Client clock is off by
// more than the setting carries k (the skew, s); the others carry none. A
// change of k takes the full path, which records it in the meta and keeps
// the skewed set (the computers whose last heartbeat was skewed) in step,
// and emits client.clock_skew at most once per reject window per computer.
// A heartbeat without k whose meta has one mismatches at k, so it takes the
// full path and clears it; others pay nothing.
// KEYS: serial, reservations, meta, active, lost, stats, skewed,
//       then per heartbeat: commands, reject-marker, sent; last: events
// ARGV: reject window s, bucket ('' with quantum 0),
//       then per heartbeat: name, fingerprint, results (msgpack or '');
//       last: cap, now
// Returns {out, events, serial or ''}; out[i] is 'OK' or the reason it is
// unlicensed, or {'OK', command...} when commands are delivered.
const Script& heartbeat_script() {
  static const Script s(with_events(R"lua(
local rejwin, bucket = ARGV[1], ARGV[2]
bucket = bucket ~= '' and tonumber(bucket) or nil
local n = (#ARGV - 4) / 3
local serial = redis.call('HGET', KEYS[1], 'unlocked')
local rejected = 0
local function one(i)
  local a, k = 2 + (i - 1) * 3, 7 + (i - 1) * 3
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
)lua"));
  return s;
}

// KEYS: serial, events   ARGV: serial, registration, licenses, issued, code, cap, now
// Returns {'OK', purchased, events} or {'INVALID', reason}.
const Script& unlock_script() {
  static const Script s(with_events(R"lua(
local serial, reg, licenses, issued = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local cur = redis.call('HMGET', KEYS[1], 'serial', 'registration', 'issued')
if not cur[1] then return {'INVALID', 'no serial is registered on this server; register first'} end
if cur[1] ~= serial then return {'INVALID', 'the code is for another serial number'} end
if cur[2] ~= reg then return {'INVALID', "the code is for another server's registration code"} end
if cur[3] and issued <= tonumber(cur[3]) then
  return {'INVALID', 'the code is not later than the unlock code in force'}
end
redis.call('HSET', KEYS[1], 'unlocked', serial, 'purchased', licenses, 'issued', issued, 'code', ARGV[5])
emit('serial.unlocked', {serial = serial, purchased = licenses})
return {'OK', licenses, EV}
)lua"));
  return s;
}

// KEYS: serial   ARGV: serial ('' = query), registration code for it
// Returns {'OK', serial, registration} or {'LOCKED', unlocked serial} or {'NONE'}.
const Script& registration_script() {
  static const Script s(R"lua(
local cur = redis.call('HMGET', KEYS[1], 'serial', 'registration', 'unlocked')
if ARGV[1] == '' then
  if not cur[1] then return {'NONE'} end
  return {'OK', cur[1], cur[2]}
end
if cur[3] and cur[3] ~= ARGV[1] then return {'LOCKED', cur[3]} end
redis.call('HSET', KEYS[1], 'serial', ARGV[1], 'registration', ARGV[2])
return {'OK', ARGV[1], ARGV[2]}
)lua");
  return s;
}

// The computer's next heartbeat must see the queue, so its meta loses the
// last-seen bucket (heartbeat_script).
// KEYS: reservations, commands, meta, events
// ARGV: name, id, command (msgpack), limit, command name, cap, now
// Returns {'OK', events} or {'NOT_FOUND'} or {'FULL'}.
const Script& command_script() {
  static const Script s(with_events(R"lua(
if not license_of(KEYS[1], ARGV[1]) then return {'NOT_FOUND'} end
if redis.call('LLEN', KEYS[2]) >= tonumber(ARGV[4]) then return {'FULL'} end
redis.call('RPUSH', KEYS[2], ARGV[3])
unsettle(KEYS[3], ARGV[1])
emit('command.queued', {computer = ARGV[1], command_id = ARGV[2], command = ARGV[5]})
return {'OK', EV}
)lua"));
  return s;
}

// Marks computers not seen since the cutoff as lost, oldest first, at most
// `limit` per run: the cost is the number that changed, not the fleet size.
// A computer marked lost loses its last-seen bucket, so its next heartbeat
// takes the full path and finds itself in the lost set, whatever the clocks.
// KEYS: active, lost, meta, events   ARGV: cutoff ms, limit, cap, now
// Returns {count, events}.
const Script& sweep_script() {
  static const Script s(with_events(R"lua(
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1], 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[2]))
for i = 1, #due, 2 do
  redis.call('ZREM', KEYS[1], due[i])
  redis.call('ZADD', KEYS[2], due[i + 1], due[i])
  unsettle(KEYS[3], due[i])
  emit('client.lost', {computer = due[i], last_seen = tonumber(due[i + 1])})
end
return {#due / 2, EV}
)lua"));
  return s;
}

// Records a jump of the server's wall clock, once: the silence the sweep
// forgives (the jump, in ms) for one check + grace, and the event.
// KEYS: clock-jump, events
// ARGV: forgiven ms, for how long (ms), event type, wall delta s, steady delta s, cap, now
// Returns {1, EV} when recorded, {0, EV} when a jump is on record already.
const Script& clock_jump_script() {
  static const Script s(lua_with_events(R"lua(
if not redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2], 'NX') then return {0, EV} end
emit(ARGV[3], {wall_delta_s = tonumber(ARGV[4]), steady_delta_s = tonumber(ARGV[5])})
return {1, EV}
)lua"));
  return s;
}

const Script& license_of_script() {
  static const Script s(std::string(kLuaLicenseOf) + "return license_of(KEYS[1], ARGV[1])");
  return s;
}

}  // namespace primary::licensing
