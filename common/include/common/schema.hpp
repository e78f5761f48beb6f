// Every operation of PROTOCOL.md, declared once. Decoding, validation and
// reply encoding for all services come from the catalog in schema.cpp; a
// handler never walks a raw map.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "common/codec.hpp"
#include "common/errors.hpp"
#include "common/names.hpp"
#include "common/value.hpp"

namespace primary {

enum class FieldType {
  Str,       // UTF-8 string, length in bytes within [min, max]
  Name,      // computer name: 1..63 of A-Z a-z 0-9 - _ . ; stored upper-case
  Int,       // integer within [min, max]
  Bool,
  Bin,       // raw bytes, length within [min, max]
  Array,     // any elements, count within [min, max]
  StrArray,  // strings of at most 256 bytes, count within [min, max]
  Map,       // string-keyed map, count within [min, max]
  Any,
};

struct Field {
  std::string_view name;
  FieldType type;
  bool required = false;
  int64_t min = 0;
  int64_t max = std::numeric_limits<int64_t>::max();
  std::vector<std::string_view> one_of = {};  // allowed values of a Str field
};

struct OpSpec {
  Op id;
  std::string_view service;
  std::string_view op;
  std::vector<Field> request;
  std::vector<Field> reply;  // success fields beyond `ok` (and `rid`)
};

// All operations of all services.
const std::vector<OpSpec>& catalog();
const OpSpec* find_op(std::string_view service, std::string_view op);
// The catalog entry of an operation (every Op has one).
const OpSpec& spec_of(Op op);
bool service_declared(std::string_view service);
// Privileged services answer only the admin role (PROTOCOL.md section 6).
bool service_privileged(std::string_view service);

// Where a request came from, as the broker saw it.
struct Peer {
  std::string address;  // IP address of the peer, "" if unknown
  bool admin = false;   // admin role (CURVE allow-list, or loopback when insecure)
  // Who, for the admin role: the admin key's name from the allow-list (or
  // its fingerprint, key_fingerprint()), "internal" for the server's own
  // key, "local" for a loopback peer in insecure mode; "" for clients.
  std::string actor;
};

// The metadata frame the broker adds to a request's envelope for workers
// that asked for it: "PEER_ADDRESS ROLE[ ACTOR]", ROLE being "admin" or
// "client"; none of the three holds a blank.
std::string encode_peer(const Peer& peer);
Peer decode_peer(std::string_view frame);
// True for loopback addresses (127.0.0.0/8, ::1, ::ffff:127.x) and "" (ipc).
bool is_loopback(std::string_view address);

// A request that passed validation: every declared field present has the
// declared type and range; names are upper-cased.
struct Request {
  const OpSpec* spec = nullptr;
  Value body;
  Value rid;  // nil when absent
  Peer peer;

  Op id() const { return spec->id; }
  std::string_view op() const { return spec->op; }
  const Value* get(std::string_view field) const;  // nullptr when absent or nil
  std::string_view str(std::string_view field, std::string_view def = {}) const;
  int64_t integer(std::string_view field, int64_t def = 0) const;
  bool flag(std::string_view field, bool def = false) const;
};

// Who a privileged request's events name (docs/protocol.md "Who did it"):
// actor is the broker's name for the connection (Peer::actor), except that
// the server's own key may name the browser it acts for in `on_behalf`
// ("web:ADDRESS"): then actor is that and via the key's name. Nothing else
// in a body is ever taken for an identity.
struct Who {
  std::string actor;
  std::string peer;  // the address the broker saw ("" for ipc)
  std::string via;   // "" unless someone acted for another
};
Who who_of(const Request& req);
// The fields an event gets from it: actor, and peer and via when not empty.
Value::Map who_fields(const Who& who);
// who_fields() as MessagePack, the form Lua scripts take it in
// (common/lua/events.lua: emit(type, fields, cmsgpack.unpack(who))).
std::string pack_who(const Who& who);

struct Reply {
  bool ok = true;
  Code code = Code::Internal;
  std::string message;
  Value fields;  // map of the operation's reply fields (success) or extras (failure)

  static Reply success(Value::Map fields = {});
  static Reply failure(Code code, std::string message, Value::Map extras = {});
  static Reply failure(const Error& e) { return failure(e.code, e.message); }
};

// Decodes and validates one request body for `service`. On failure the
// error is BAD_REQUEST (naming the field) or UNKNOWN_OP; `rid` receives the
// request's rid whenever the body was a map, so the error can echo it;
// `spec`, when given, receives the operation whenever it was known (even
// when a field was then refused), else nullptr.
Result<Request> decode_request(std::string_view service, std::string_view body,
                               const CodecLimits& limits, Value* rid, const OpSpec** spec = nullptr);

// Checks a Value against a field list; returns the first violation.
Status validate_fields(const std::vector<Field>& fields, Value& body);

// Encodes a reply body: {ok, rid?, ...fields} or {ok:false, code, message, rid?, ...extras}.
std::string encode_reply(const Reply& reply, const Value& rid = {});

// A ready error body, for the broker and other places without a Request.
std::string encode_error(Code code, std::string_view message, const Value& rid = {},
                         Value::Map extras = {});

// Encodes a request body {op, ...fields}; for clients and tests.
std::string encode_request(std::string_view op, Value::Map fields = {});

// One page of admin.log, for its clients (primaryctl, the console).
struct LogPage {
  std::vector<Value> items;  // oldest first
  std::string next;          // the id to read on from
};
// The fields of an admin.log request: entries strictly after `since` (from
// the oldest when empty), at most `limit`, of `types` when any, by `actor`
// (data.actor or data.via) when not empty.
Value::Map log_request(std::string_view since, int64_t limit, const std::vector<std::string>& types = {},
                       std::string_view actor = {});
// Who caused an event, for people: its `actor`, and when the console acted
// for a browser "web:1.2.3.4 via internal" ("web:1.2.3.4 (via internal)"
// with `parenthesised`); "" when the event names nobody.
std::string event_actor(const Value& event, bool parenthesised = false);
// True when `actor` caused the event or it was done through `actor` (its
// actor or via field): the admin.log filter, also applied to live events.
bool acted_by(const Value& event, std::string_view actor);
// The page in an admin.log success reply.
LogPage log_page_of(const Value& reply);

// Checks a success reply's fields against the operation's declared reply:
// every required field present, every declared field of its type. Extra
// fields are allowed (the contract only grows). For tests and debug checks.
Status validate_reply(Op op, const Value& reply);

// True for a valid computer name (before upper-casing).
bool valid_computer_name(std::string_view name);
std::string normalize_computer_name(std::string_view name);

}  // namespace primary
