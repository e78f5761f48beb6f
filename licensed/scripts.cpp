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

std::string with_events(const char* body) { return lua_with_events(body, kLuaLicenseOf); }

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
// The last-seen time is rewritten only when the one on record is a quantum
// old or more (--last-seen-quantum-ms; by default the lease's time grid,
// 60 s with the default check interval): a computer that heartbeats faster
// than that costs no write, and so no fsync, while its version and address
// stay the same.
// KEYS: serial, reservations, meta, active, lost, stats,
//       then per heartbeat: commands, reject-marker, sent; last: events
// ARGV: reject window s, last-seen quantum ms,
//       then per heartbeat: name, license, version, peer, results (msgpack
//       or ''); last: cap, now
// Returns {{reason or 'OK', serial, commands} per heartbeat, events}.
const Script& heartbeat_script() {
  static const Script s(with_events(R"lua(
local rejwin, quantum = ARGV[1], tonumber(ARGV[2])
local n = (#ARGV - 4) / 5
local serial = redis.call('HGET', KEYS[1], 'unlocked')
local rejected = 0
local function one(i)
  local a, k = 2 + (i - 1) * 5, 6 + (i - 1) * 3
  local name, lic, version, peer, results = ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4], ARGV[a + 5]
  local kcmds, kreject, ksent = KEYS[k + 1], KEYS[k + 2], KEYS[k + 3]
  local reason = nil
  local metaraw = redis.call('HGET', KEYS[3], name)
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
    return {reason, serial or '', {}}
  end
  local changed = false
  local seen = redis.call('ZSCORE', KEYS[4], name)
  if not seen then
    if redis.call('ZREM', KEYS[5], name) == 1 then
      emit('client.returned', {computer = name, peer = peer, version = version})
    elseif not meta.f then
      meta.f = EV_NOW
      changed = true
      emit('client.licensed', {computer = name, peer = peer, version = version})
    end
  end
  if not seen or EV_NOW - tonumber(seen) >= quantum then redis.call('ZADD', KEYS[4], EV_NOW, name) end
  if meta.v ~= version or meta.p ~= peer then
    meta.v, meta.p, changed = version, peer, true
  end
  if changed then meta.l = lic end  -- reservations made before meta kept the license
  if changed then redis.call('HSET', KEYS[3], name, cmsgpack.pack(meta)) end
  if results ~= '' then
    for _, r in ipairs(cmsgpack.unpack(results)) do
      if redis.call('SREM', ksent, r.id) == 1 then
        emit('command.done', {computer = name, command_id = r.id, ok = r.ok, detail = r.detail})
      end
    end
  end
  local cmds = {}
  if redis.call('EXISTS', kcmds) == 1 then
    cmds = redis.call('LRANGE', kcmds, 0, -1)
    redis.call('DEL', kcmds)
    for _, c in ipairs(cmds) do redis.call('SADD', ksent, cmsgpack.unpack(c).id) end
    redis.call('EXPIRE', ksent, 30 * 86400)
  end
  return {'OK', serial, cmds}
end
local out = {}
for i = 1, n do out[i] = one(i) end
if rejected > 0 then redis.call('HINCRBY', KEYS[6], 'rejected', rejected) end
return {out, EV}
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

// KEYS: reservations, commands, events   ARGV: name, id, command (msgpack), limit, command name, cap, now
// Returns {'OK', events} or {'NOT_FOUND'} or {'FULL'}.
const Script& command_script() {
  static const Script s(with_events(R"lua(
if not license_of(KEYS[1], ARGV[1]) then return {'NOT_FOUND'} end
if redis.call('LLEN', KEYS[2]) >= tonumber(ARGV[4]) then return {'FULL'} end
redis.call('RPUSH', KEYS[2], ARGV[3])
emit('command.queued', {computer = ARGV[1], command_id = ARGV[2], command = ARGV[5]})
return {'OK', EV}
)lua"));
  return s;
}

// Marks computers not seen since the cutoff as lost, oldest first, at most
// `limit` per run: the cost is the number that changed, not the fleet size.
// KEYS: active, lost, events   ARGV: cutoff ms, limit, cap, now
// Returns {count, events}.
const Script& sweep_script() {
  static const Script s(with_events(R"lua(
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1], 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[2]))
for i = 1, #due, 2 do
  redis.call('ZREM', KEYS[1], due[i])
  redis.call('ZADD', KEYS[2], due[i + 1], due[i])
  emit('client.lost', {computer = due[i], last_seen = tonumber(due[i + 1])})
end
return {#due / 2, EV}
)lua"));
  return s;
}

const Script& license_of_script() {
  static const Script s(std::string(kLuaLicenseOf) + "return license_of(KEYS[1], ARGV[1])");
  return s;
}

}  // namespace primary::licensing
