#include "common/schema.hpp"

#include <algorithm>
#include <cassert>
#include <cctype>

namespace primary {
namespace {

constexpr int64_t kMiB = 1024 * 1024;
constexpr int64_t kMaxSafeInt = (int64_t{1} << 53);

using F = Field;
using T = FieldType;

// The catalog: PROTOCOL.md section 4, plus the diagnostic `echo` service used
// by tests and benchmarks. Reply field lists name what a success carries.
std::vector<OpSpec> build_catalog() {
  namespace f = field;
  namespace o = opname;
  const F computer{f::kComputer, T::Name, true};
  const F component{f::kComponent, T::Str, true, 1, 64};
  const F version{f::kVersion, T::Str, true, 1, 64};
  const F channel{f::kChannel, T::Str, false, 1, 32};
  const std::vector<F> release_state = {{f::kComponent, T::Str, true}, {f::kVersion, T::Str, true},
                                        {f::kState, T::Str, true}, {f::kRollout, T::Int, true}};
  const std::vector<F> job = {{f::kJob, T::Str, true}, {f::kStarted, T::Bool, true}};
  // Every privileged op that changes something takes it (who_of()).
  const F on_behalf{f::kOnBehalf, T::Str, false, 1, 64};
  return {
      // license (public)
      {Op::Heartbeat, svc::kLicense, o::kHeartbeat,
       {computer, {f::kLicense, T::Str, true, 1, 128}, {f::kVersion, T::Str, false, 0, 64},
        {f::kResults, T::Array, false, 0, 1000}, {f::kClientTime, T::Int, false, -kMaxSafeInt, kMaxSafeInt}},
       {{f::kStatus, T::Str, true, 0, 0, {status::kLicensed, status::kUnlicensed}},
        {f::kNextCheckS, T::Int, true},
        {f::kUpload, T::Bool, true},
        {f::kLease, T::Str},
        {f::kLeaseExpires, T::Int},
        {f::kLeaseKeys, T::StrArray},
        {f::kReason, T::Str},
        {f::kCommands, T::Array},
        {f::kServerTime, T::Int}}},
      // license.control (privileged)
      {Op::Reserve, svc::kLicenseControl, o::kReserve, {computer, on_behalf},
       {{f::kLicense, T::Str, true}, {f::kComputer, T::Str, true}, {f::kCreated, T::Bool, true},
        {f::kReserved, T::Int, true}, {f::kPurchased, T::Int, true}}},
      {Op::SetupInfo, svc::kLicenseControl, o::kSetupInfo, {computer, on_behalf},
       {{f::kComputer, T::Str, true}, {f::kLicense, T::Str, true}, {f::kSerial, T::Str, true},
        {f::kEndpoints, T::StrArray, true}, {f::kServerKey, T::Str}, {f::kLeaseKey, T::Str, true},
        {f::kLeaseKeys, T::StrArray}}},
      {Op::Registration, svc::kLicenseControl, o::kRegistration, {{f::kSerial, T::Str, false, 1, 64}, on_behalf},
       {{f::kSerial, T::Str, true}, {f::kRegistrationCode, T::Str, true}}},
      {Op::Unlock, svc::kLicenseControl, o::kUnlock, {{f::kUnlockCode, T::Str, true, 1, 4096}, on_behalf},
       {{f::kSerial, T::Str, true}, {f::kPurchased, T::Int, true}}},
      {Op::Command, svc::kLicenseControl, o::kCommand,
       {computer, {f::kCommand, T::Str, true, 1, 64}, {f::kArgs, T::Any, false}, on_behalf},
       {{f::kId, T::Str, true}}},
      {Op::Retire, svc::kLicenseControl, o::kRetire, {{f::kCode, T::Str, true, 1, 4096}, on_behalf},
       {{f::kComputer, T::Str, true}, {f::kCodeId, T::Str, true}, {f::kReserved, T::Int, true},
        {f::kPurchased, T::Int, true}}},
      {Op::Transfer, svc::kLicenseControl, o::kTransfer, {{f::kCode, T::Str, true, 1, 4096}, on_behalf},
       {{f::kComputer, T::Str, true}, {f::kTo, T::Str, true}, {f::kLicense, T::Str, true},
        {f::kCodeId, T::Str, true}, {f::kReserved, T::Int, true}, {f::kPurchased, T::Int, true}}},
      // update (public)
      {Op::Check, svc::kUpdate, o::kCheck,
       {component, {f::kVersion, T::Str, true, 1, 64}, channel, {f::kComputer, T::Name, false}},
       {{f::kUpdate, T::Any, true}}},
      {Op::Fetch, svc::kUpdate, o::kFetch,
       {{f::kSha256, T::Str, true, 64, 64}, {f::kOffset, T::Int, true, 0, kMaxSafeInt},
        {f::kLength, T::Int, true, 1, kMiB}},
       {{f::kData, T::Bin, true}, {f::kOffset, T::Int, true}, {f::kSize, T::Int, true}}},
      // update.control (privileged)
      {Op::Releases, svc::kUpdateControl, o::kReleases, {},
       {{f::kItems, T::Array, true}, {f::kFeed, T::Map}, {f::kSync, T::Map}}},
      {Op::Approve, svc::kUpdateControl, o::kApprove, {component, version, {f::kRollout, T::Int, false, 0, 100}, on_behalf},
       release_state},
      {Op::Hold, svc::kUpdateControl, o::kHold, {component, version, on_behalf}, release_state},
      {Op::Sync, svc::kUpdateControl, o::kSync, {on_behalf}, job},
      {Op::Import, svc::kUpdateControl, o::kImport, {{f::kPath, T::Str, true, 1, 4096}, on_behalf}, job},
      // admin (privileged)
      {Op::Status, svc::kAdmin, o::kStatus, {},
       {{f::kSerial, T::Str}, {f::kPurchased, T::Int, true}, {f::kReserved, T::Int, true},
        {f::kActive, T::Int, true}, {f::kLost, T::Int, true}, {f::kNeverSeen, T::Int, true},
        {f::kClockSkewed, T::Int, true}, {f::kVersion, T::Str, true}, {f::kUptimeS, T::Int, true}, {f::kServices, T::Map, true},
        {f::kStale, T::Int, true}}},
      {Op::Computers, svc::kAdmin, o::kComputers,
       {{f::kCursor, T::Str, false, 0, 512}, {f::kLimit, T::Int, false, 1, 1000},
        {f::kState, T::Str, false, 0, 0, {f::kReserved, f::kActive, f::kLost}},
        {f::kSort, T::Str, false, 0, 0, {"name", "last-seen"}}, {f::kStale, T::Bool, false}},
       {{f::kItems, T::Array, true}, {f::kCursor, T::Str}}},
      {Op::Computer, svc::kAdmin, o::kComputer, {computer},
       {{f::kComputer, T::Str, true}, {f::kLicense, T::Str, true}, {f::kState, T::Str, true},
        {f::kReservedAt, T::Int, true}, {f::kFirstSeen, T::Int}, {f::kLastSeen, T::Int},
        {f::kVersion, T::Str}, {f::kPeer, T::Str}, {f::kClockSkewS, T::Int, false, -kMaxSafeInt, kMaxSafeInt}, {f::kCommandsPending, T::Int, true}}},
      {Op::Log, svc::kAdmin, o::kLog,
       {{f::kSince, T::Str, false, 0, 64}, {f::kLimit, T::Int, false, 1, 1000},
        {f::kTypes, T::StrArray, false, 0, 64}, {f::kChain, T::Bool, false},
        {f::kActor, T::Str, false, 1, 128}},
       {{f::kItems, T::Array, true}, {f::kNext, T::Str, true}, {f::kLogKey, T::Str}, {f::kWritten, T::Str}}},
      {Op::Firewall, svc::kAdmin, o::kFirewall, {}, {{f::kPorts, T::Array, true}, {f::kRules, T::Map, true}}},
      {Op::Metrics, svc::kAdmin, o::kMetrics, {},
       {{f::kOps, T::Array, true}, {f::kCounters, T::Map, true}, {f::kLicenses, T::Map, true},
        {f::kEventsWritten, T::Int, true}, {f::kBroker, T::Map}}},
      {Op::History, svc::kAdmin, o::kHistory,
       {{f::kFrom, T::Int, false, 0, kMaxSafeInt}, {f::kTo, T::Int, false, 0, kMaxSafeInt},
        {f::kResolution, T::Str, false, 0, 0, {resolution::kHour, resolution::kDay}},
        {f::kLimit, T::Int, false, 1, 1000}},
       {{f::kResolution, T::Str, true}, {f::kPoints, T::Array, true}, {f::kNext, T::Int}}},
      {Op::Record, svc::kAdmin, o::kRecord,
       {{f::kAction, T::Str, true, 0, 0, {event::kFirewallApplied, event::kWebPasswordSet}},
        {f::kTool, T::Str, false, 1, 32}, {f::kUser, T::Str, false, 1, 64}, on_behalf},
       {{f::kId, T::Str, true}}},
      // broker.control (privileged; answered by the broker itself)
      {Op::Workers, svc::kBrokerControl, o::kWorkers, {}, {{f::kServices, T::Map, true}}},
      {Op::Stats, svc::kBrokerControl, o::kStats, {}, {{f::kServices, T::Map, true}, {f::kTotals, T::Map, true}}},
      {Op::Whoami, svc::kBrokerControl, o::kWhoami, {},
       {{f::kActor, T::Str, true}, {f::kRole, T::Str, true}, {f::kPeer, T::Str, true}}},
      // echo (diagnostic; served only by the test/bench echo worker)
      {Op::Echo, svc::kEcho, o::kEcho, {{f::kPayload, T::Any, false}}, {{f::kPayload, T::Any}}},
      {Op::Sleep, svc::kEcho, o::kSleep, {{f::kMs, T::Int, true, 0, 600000}},
       {{f::kSleptMs, T::Int, true}, {f::kPid, T::Int, true}}},
  };
}

bool valid_utf8(std::string_view s) {
  size_t i = 0;
  const size_t n = s.size();
  while (i < n) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    size_t len;
    uint32_t cp;
    if (c < 0x80) { ++i; continue; }
    if ((c & 0xE0) == 0xC0) { len = 2; cp = c & 0x1F; }
    else if ((c & 0xF0) == 0xE0) { len = 3; cp = c & 0x0F; }
    else if ((c & 0xF8) == 0xF0) { len = 4; cp = c & 0x07; }
    else return false;
    if (i + len > n) return false;
    for (size_t k = 1; k < len; ++k) {
      unsigned char cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
      return false;
    i += len;
  }
  return true;
}

Error field_error(std::string_view name, std::string_view what) {
  return Error{Code::BadRequest, "field '" + std::string(name) + "': " + std::string(what)};
}

std::string range_text(const Field& f) {
  return std::to_string(f.min) + ".." + std::to_string(f.max);
}

Status check_field(const Field& f, Value& v) {
  switch (f.type) {
    case T::Str: {
      if (!v.is_str()) return field_error(f.name, "expected a string");
      const auto& s = v.as_str();
      if (!valid_utf8(s)) return field_error(f.name, "not valid UTF-8");
      if (!f.one_of.empty()) {
        if (std::find(f.one_of.begin(), f.one_of.end(), s) == f.one_of.end()) {
          std::string allowed;
          for (auto a : f.one_of) allowed += (allowed.empty() ? "" : ", ") + std::string(a);
          return field_error(f.name, "expected one of " + allowed);
        }
      } else if (static_cast<int64_t>(s.size()) < f.min || static_cast<int64_t>(s.size()) > f.max) {
        return field_error(f.name, "length must be " + range_text(f) + " bytes");
      }
      return {};
    }
    case T::Name:
      if (!v.is_str() || !valid_computer_name(v.as_str()))
        return field_error(f.name, "expected a computer name (1 to 63 of A-Z a-z 0-9 - _ .)");
      v = Value(normalize_computer_name(v.as_str()));
      return {};
    case T::Int: {
      int64_t x;
      if (v.kind() == Value::Kind::Int) x = v.as_int();
      else if (v.kind() == Value::Kind::UInt) return field_error(f.name, "out of range " + range_text(f));
      else return field_error(f.name, "expected an integer");
      if (x < f.min || x > f.max) return field_error(f.name, "out of range " + range_text(f));
      return {};
    }
    case T::Bool:
      if (!v.is_bool()) return field_error(f.name, "expected a boolean");
      return {};
    case T::Bin:
      if (v.kind() != Value::Kind::Bin) return field_error(f.name, "expected binary data");
      if (static_cast<int64_t>(v.as_bin().bytes.size()) > f.max)
        return field_error(f.name, "too long");
      return {};
    case T::Array:
    case T::StrArray: {
      if (!v.is_array()) return field_error(f.name, "expected an array");
      const auto n = static_cast<int64_t>(v.as_array().size());
      if (n < f.min || n > f.max) return field_error(f.name, "item count must be " + range_text(f));
      if (f.type == T::StrArray)
        for (const auto& e : v.as_array())
          if (!e.is_str() || e.as_str().size() > 256 || !valid_utf8(e.as_str()))
            return field_error(f.name, "expected strings of at most 256 bytes");
      return {};
    }
    case T::Map: {
      if (!v.is_map()) return field_error(f.name, "expected a map");
      const auto n = static_cast<int64_t>(v.as_map().size());
      if (n < f.min || n > f.max) return field_error(f.name, "entry count must be " + range_text(f));
      return {};
    }
    case T::Any: return {};
  }
  return field_error(f.name, "undeclared type");
}

}  // namespace

const std::vector<OpSpec>& catalog() {
  static const std::vector<OpSpec> ops = build_catalog();
  return ops;
}

const OpSpec& spec_of(Op op) {
  // The catalog lists the operations in the enum's order.
  const OpSpec& spec = catalog()[static_cast<size_t>(op)];
  assert(spec.id == op);
  return spec;
}

Status validate_reply(Op op, const Value& reply) {
  if (!reply.is_map()) return Error{Code::BadRequest, "reply is not a map"};
  Value copy = reply;
  return validate_fields(spec_of(op).reply, copy);
}

const OpSpec* find_op(std::string_view service, std::string_view op) {
  for (const auto& spec : catalog())
    if (spec.service == service && spec.op == op) return &spec;
  return nullptr;
}

bool service_declared(std::string_view service) {
  return std::any_of(catalog().begin(), catalog().end(),
                     [&](const OpSpec& s) { return s.service == service; });
}

bool service_privileged(std::string_view service) {
  constexpr std::string_view suffix = ".control";
  return service == svc::kAdmin ||
         (service.size() > suffix.size() && service.ends_with(suffix));
}

bool valid_computer_name(std::string_view name) {
  if (name.empty() || name.size() > 63) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '_' || c == '.';
  });
}

std::string normalize_computer_name(std::string_view name) {
  std::string out(name);
  for (auto& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

std::string encode_peer(const Peer& peer) {
  std::string out = peer.address + (peer.admin ? " admin" : " client");
  if (!peer.actor.empty()) out += " " + peer.actor;
  return out;
}

Peer decode_peer(std::string_view frame) {
  Peer p;
  const auto space = frame.find(' ');
  if (space == std::string_view::npos) return p;
  p.address = std::string(frame.substr(0, space));
  std::string_view rest = frame.substr(space + 1);
  const auto next = rest.find(' ');
  p.admin = rest.substr(0, next) == "admin";
  if (next != std::string_view::npos) p.actor = std::string(rest.substr(next + 1));
  return p;
}

namespace {
// "web:" and an IPv4 or IPv6 address (with an optional zone).
bool valid_web_actor(std::string_view v) {
  if (!v.starts_with(actor::kWebPrefix)) return false;
  const std::string_view addr = v.substr(std::string_view(actor::kWebPrefix).size());
  return !addr.empty() && addr.size() <= 60 && std::all_of(addr.begin(), addr.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == ':' || c == '%';
  });
}
}  // namespace

Who who_of(const Request& req) {
  Who w;
  w.peer = req.peer.address;
  w.actor = req.peer.actor.empty() ? (req.peer.admin ? "admin" : "client") : req.peer.actor;
  if (req.peer.actor == actor::kInternal)
    if (std::string_view on = req.str(field::kOnBehalf); valid_web_actor(on)) {
      w.via = std::move(w.actor);
      w.actor = std::string(on);
    }
  return w;
}

Value::Map who_fields(const Who& who) {
  Value::Map m{{field::kActor, Value(who.actor)}};
  if (!who.peer.empty()) m.emplace_back(field::kPeer, Value(who.peer));
  if (!who.via.empty()) m.emplace_back(field::kVia, Value(who.via));
  return m;
}

std::string pack_who(const Who& who) { return pack(Value(who_fields(who))); }

bool is_loopback(std::string_view a) {
  return a.empty() || a.starts_with("127.") || a == "::1" || a.starts_with("::ffff:127.");
}

const Value* Request::get(std::string_view field) const {
  const Value* v = body.find(field);
  return (v && !v->is_nil()) ? v : nullptr;
}

std::string_view Request::str(std::string_view field, std::string_view def) const {
  const Value* v = get(field);
  return (v && v->is_str()) ? std::string_view(v->as_str()) : def;
}

int64_t Request::integer(std::string_view field, int64_t def) const {
  const Value* v = get(field);
  return (v && v->is_int()) ? v->as_int() : def;
}

bool Request::flag(std::string_view field, bool def) const {
  const Value* v = get(field);
  return (v && v->is_bool()) ? v->as_bool() : def;
}

Reply Reply::success(Value::Map fields) {
  Reply r;
  r.ok = true;
  r.fields = Value(std::move(fields));
  return r;
}

Reply Reply::failure(Code code, std::string message, Value::Map extras) {
  Reply r;
  r.ok = false;
  r.code = code;
  r.message = std::move(message);
  r.fields = Value(std::move(extras));
  return r;
}

Status validate_fields(const std::vector<Field>& fields, Value& body) {
  for (const auto& f : fields) {
    Value* v = nullptr;
    for (auto& [k, e] : body.as_map())
      if (k == f.name) v = &e;
    // A required field of type Any may be nil, but must be there
    // (`update: nil` in a check reply).
    if (!v || (v->is_nil() && !(f.type == T::Any && f.required))) {
      if (f.required) return field_error(f.name, "missing");
      continue;
    }
    if (auto checked = check_field(f, *v); !checked) return checked;
  }
  return {};
}

Result<Request> decode_request(std::string_view service, std::string_view body,
                               const CodecLimits& limits, Value* rid, const OpSpec** spec_out) {
  if (spec_out) *spec_out = nullptr;
  auto decoded = unpack_map(body, limits);
  if (!decoded) return decoded.error();
  Value& map = *decoded;
  if (const Value* r = map.find("rid"); r && rid) *rid = *r;
  const Value* op = map.find("op");
  if (!op || op->is_nil()) return field_error("op", "missing");
  if (!op->is_str()) return field_error("op", "expected a string");
  const OpSpec* spec = find_op(service, op->as_str());
  if (!spec) {
    std::string shown = op->as_str().substr(0, 64);
    if (!valid_utf8(shown)) shown = "(binary)";
    return Error{Code::UnknownOp,
                 "operation '" + shown + "' is not served by '" + std::string(service) + "'"};
  }
  if (spec_out) *spec_out = spec;
  if (auto valid = validate_fields(spec->request, map); !valid) return valid.error();
  Request req;
  req.spec = spec;
  if (rid) req.rid = *rid;
  req.body = std::move(map);
  return req;
}

std::string encode_reply(const Reply& reply, const Value& rid) {
  Value::Map out;
  const size_t extra = reply.fields.is_map() ? reply.fields.as_map().size() : 0;
  out.reserve(extra + 4);
  out.emplace_back("ok", Value(reply.ok));
  if (!rid.is_nil()) out.emplace_back("rid", rid);
  if (!reply.ok) {
    out.emplace_back("code", Value(code_name(reply.code)));
    out.emplace_back("message", Value(reply.message));
  }
  if (extra)
    for (const auto& kv : reply.fields.as_map())
      if (kv.first != "ok" && kv.first != "rid") out.push_back(kv);
  return pack(Value(std::move(out)));
}

std::string encode_error(Code code, std::string_view message, const Value& rid,
                         Value::Map extras) {
  return encode_reply(Reply::failure(code, std::string(message), std::move(extras)), rid);
}

Value::Map log_request(std::string_view since, int64_t limit, const std::vector<std::string>& types,
                       std::string_view actor) {
  Value::Map fields{{field::kLimit, Value(limit)}};
  if (!since.empty()) fields.emplace_back(field::kSince, Value(std::string(since)));
  if (!actor.empty()) fields.emplace_back(field::kActor, Value(std::string(actor)));
  if (!types.empty()) {
    Value::Array list;
    for (const auto& t : types) list.emplace_back(t);
    fields.emplace_back(field::kTypes, Value(std::move(list)));
  }
  return fields;
}

LogPage log_page_of(const Value& reply) {
  LogPage page;
  if (const Value* items = reply.find(field::kItems); items && items->is_array()) page.items = items->as_array();
  page.next = reply_str(reply, field::kNext);
  return page;
}

std::string event_actor(const Value& event, bool parenthesised) {
  std::string out = reply_str(event, field::kActor);
  const std::string via = reply_str(event, field::kVia);
  if (via.empty()) return out;
  const std::string note = "via " + via;
  if (out.empty()) return note;
  return out + (parenthesised ? " (" + note + ")" : " " + note);
}

bool acted_by(const Value& event, std::string_view actor) {
  return reply_str(event, field::kActor) == actor || reply_str(event, field::kVia) == actor;
}

std::string encode_request(std::string_view op, Value::Map fields) {
  Value::Map out;
  out.reserve(fields.size() + 1);
  out.emplace_back("op", Value(op));
  for (auto& kv : fields) out.push_back(std::move(kv));
  return pack(Value(std::move(out)));
}

}  // namespace primary
