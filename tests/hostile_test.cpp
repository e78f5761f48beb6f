// Hostile input against the whole server: broker, licensing and admin workers
// and Redis as real processes. Every bad request is generated from the
// catalog (common/schema.cpp), field by field, for the services license,
// license.control and admin: wrong types, missing fields, oversize strings and
// arrays, deep nesting, invalid UTF-8, bad computer names, extreme integers,
// duplicate keys, ext types, unknown ops, truncated bodies and extra frames.
// Each must be answered with its documented code (PROTOCOL.md section 3) and
// a message, while a well-behaved client keeps being served, and must leave
// the server's state in Redis exactly as it was.
#include <gtest/gtest.h>
#include <zmq.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <iostream>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/codec.hpp"
#include "common/keys.hpp"
#include "common/redis.hpp"
#include "common/schema.hpp"
#include "tests/support/raw_dealer.hpp"
#include "tests/support/stack.hpp"
#include "tests/support/util.hpp"

namespace primary::test {
namespace {

// The services with a worker today; update and update.control have none yet.
const std::vector<std::string_view> kServices = {"license", "license.control", "admin"};

// Computers of the well-behaved client: their entries are its own doing and
// are left out of the state comparison.
constexpr std::string_view kGoodPrefix = "GOOD-";

std::string packed(const Value& v) { return pack(v); }

// A MessagePack map built from already-encoded keys and values, so a test can
// write what pack() never would: duplicate keys, non-string keys, ext types.
std::string raw_map(const std::vector<std::pair<std::string, std::string>>& entries) {
  std::string out;
  const auto n = entries.size();
  if (n < 16) {
    out.push_back(static_cast<char>(0x80 | n));
  } else {
    out.push_back(static_cast<char>(0xde));
    out.push_back(static_cast<char>(n >> 8));
    out.push_back(static_cast<char>(n & 0xff));
  }
  for (const auto& [k, v] : entries) out += k + v;
  return out;
}

// A MessagePack float64.
std::string float64(double d) {
  uint64_t bits;
  std::memcpy(&bits, &d, sizeof bits);
  std::string out(1, '\xcb');
  for (int shift = 56; shift >= 0; shift -= 8) out.push_back(static_cast<char>(bits >> shift));
  return out;
}

// `depth` nested one-element arrays around a nil.
std::string deep_array(size_t depth) { return std::string(depth, '\x91') + '\xc0'; }

const std::string kExt = std::string("\xd4\x01\x00", 3);                 // fixext 1, type 1
const std::string kTimestampExt = std::string("\xd6\xff\x00\x00\x00\x01", 6);  // ext -1
const std::string kInvalidUtf8 = "PC\xff\xfe\xc0\xaf";

// A valid value for a field (the other fields of a mutated request stay valid).
std::optional<Value> valid_value(const Field& f) {
  switch (f.type) {
    case FieldType::Str:
      if (!f.one_of.empty()) return Value(f.one_of.front());
      return Value(std::string(static_cast<size_t>(std::clamp<int64_t>(1, f.min, f.max)), 'a'));
    case FieldType::Name: return Value("HOSTILE-PC");
    case FieldType::Int: return Value(std::max<int64_t>(f.min, 1));
    case FieldType::Bool: return Value(true);
    case FieldType::Bin: return Value(Bin{});
    case FieldType::Array:
    case FieldType::StrArray: return Value(Value::Array{});
    case FieldType::Map: return Value(Value::Map{});
    case FieldType::Any: return std::nullopt;
  }
  return std::nullopt;
}

struct Case {
  std::string label;
  std::string service;
  std::vector<std::string> frames;  // the whole DEALER message
  std::string code;                 // expected error code
  std::string field;                // the message must name it ("" = not checked)
  bool rid = false;                 // the reply must echo rid 4242
};

Case body_case(std::string label, std::string_view service, std::string body, std::string code,
               std::string field = {}, bool rid = false) {
  return Case{std::move(label), std::string(service),
              {"", "MDPC01", std::string(service), std::move(body)}, std::move(code),
              std::move(field), rid};
}

// Bad values for one field: (label, encoded value). Only values the catalog
// must refuse: no nil for an optional field (that is "absent"), no type
// mutations for Any fields (every type is valid there).
std::vector<std::pair<std::string, std::string>> bad_values(const Field& f) {
  std::vector<std::pair<std::string, std::string>> out;
  const double nan = std::numeric_limits<double>::quiet_NaN();
  // Codec-level refusals, whatever the field's type.
  out.emplace_back("depth 1000", deep_array(1000));
  out.emplace_back("ext type", kExt);
  out.emplace_back("timestamp ext", kTimestampExt);
  out.emplace_back("nested duplicate keys", raw_map({{packed(Value("a")), packed(Value(1))},
                                                     {packed(Value("a")), packed(Value(2))}}));
  out.emplace_back("nested integer key", raw_map({{packed(Value(1)), packed(Value(1))}}));
  if (f.type == FieldType::Any) return out;

  if (f.required) out.emplace_back("nil", packed(Value()));
  const std::vector<std::pair<std::string, Value>> kinds = {
      {"int", Value(7)},
      {"str", Value("text")},
      {"bool", Value(false)},
      {"array", Value(Value::Array{Value("a")})},
      {"map", Value(Value::Map{{"a", Value(1)}})},
      {"bin", Value(Bin{"bytes"})},
  };
  auto type_matches = [&](const std::string& kind) {
    switch (f.type) {
      case FieldType::Str:
      case FieldType::Name: return kind == "str";
      case FieldType::Int: return kind == "int";
      case FieldType::Bool: return kind == "bool";
      case FieldType::Bin: return kind == "bin";
      case FieldType::Array:
      case FieldType::StrArray: return kind == "array";
      case FieldType::Map: return kind == "map";
      case FieldType::Any: return true;
    }
    return true;
  };
  for (const auto& [kind, v] : kinds)
    if (!type_matches(kind))
      out.emplace_back("wrong type " + kind, packed(v));
  // Floats as raw float64: pack() writes an integral double as an integer.
  out.emplace_back("wrong type float NaN", float64(nan));
  out.emplace_back("wrong type float 1.0", float64(1.0));
  out.emplace_back("wrong type float32 1.0", std::string("\xca\x3f\x80\x00\x00", 5));

  const std::string mib(1 << 20, 'A');
  switch (f.type) {
    case FieldType::Str:
      out.emplace_back("1 MiB string", packed(Value(mib)));
      out.emplace_back("invalid UTF-8", packed(Value(kInvalidUtf8)));
      if (f.min > 0 || !f.one_of.empty()) out.emplace_back("empty string", packed(Value("")));
      if (f.one_of.empty() && f.max < (1 << 20))
        out.emplace_back("one byte too long",
                         packed(Value(std::string(static_cast<size_t>(f.max) + 1, 'a'))));
      if (!f.one_of.empty()) out.emplace_back("not one of", packed(Value("bogus")));
      break;
    case FieldType::Name:
      out.emplace_back("1 MiB name", packed(Value(mib)));
      out.emplace_back("64 chars", packed(Value(std::string(64, 'N'))));
      out.emplace_back("200 chars", packed(Value(std::string(200, 'N'))));
      out.emplace_back("empty", packed(Value("")));
      out.emplace_back("space", packed(Value("PC 01")));
      out.emplace_back("slash", packed(Value("PC/01")));
      out.emplace_back("colon", packed(Value("PC:01")));
      out.emplace_back("star", packed(Value("PC*")));
      out.emplace_back("NUL", packed(Value(std::string("PC\0X", 4))));
      out.emplace_back("newline", packed(Value("PC\n01")));
      out.emplace_back("non-ASCII", packed(Value("PC-\xc3\x87")));
      out.emplace_back("invalid UTF-8", packed(Value(kInvalidUtf8)));
      break;
    case FieldType::Int:
      out.emplace_back("INT64_MIN", packed(Value(std::numeric_limits<int64_t>::min())));
      out.emplace_back("UINT64_MAX", packed(Value(std::numeric_limits<uint64_t>::max())));
      if (f.min >= 0) out.emplace_back("-1", packed(Value(-1)));  // a bad value only where negatives are
      if (f.min > std::numeric_limits<int64_t>::min())
        out.emplace_back("min - 1", packed(Value(f.min - 1)));
      if (f.max < std::numeric_limits<int64_t>::max()) {
        out.emplace_back("max + 1", packed(Value(f.max + 1)));
        out.emplace_back("INT64_MAX", packed(Value(std::numeric_limits<int64_t>::max())));
      }
      break;
    case FieldType::Array:
    case FieldType::StrArray:
      out.emplace_back("100k items", packed(Value(Value::Array(100000, Value(1)))));
      if (f.max < 100000)
        out.emplace_back("max + 1 items",
                         packed(Value(Value::Array(static_cast<size_t>(f.max) + 1, Value("x")))));
      if (f.type == FieldType::StrArray) {
        out.emplace_back("int element", packed(Value(Value::Array{Value(1)})));
        out.emplace_back("invalid UTF-8 element", packed(Value(Value::Array{Value(kInvalidUtf8)})));
        out.emplace_back("257-byte element",
                         packed(Value(Value::Array{Value(std::string(257, 'x'))})));
        out.emplace_back("1 MiB element", packed(Value(Value::Array{Value(mib)})));
      }
      break;
    default: break;
  }
  return out;
}

// Every hostile request for the served services, from the catalog.
std::vector<Case> catalogue() {
  std::vector<Case> cases;
  const std::string rid_key = packed(Value("rid")), rid_val = packed(Value(4242));
  for (const auto& spec : catalog()) {
    if (std::find(kServices.begin(), kServices.end(), spec.service) == kServices.end()) continue;
    const std::string where = std::string(spec.service) + "." + std::string(spec.op) + " ";
    // The op's valid fields, encoded.
    std::vector<std::pair<std::string, std::string>> base = {{packed(Value("op")),
                                                              packed(Value(spec.op))}};
    std::vector<std::string> names;
    for (const auto& f : spec.request)
      if (auto v = valid_value(f)) {
        base.emplace_back(packed(Value(f.name)), packed(*v));
        names.emplace_back(f.name);
      }

    for (const auto& f : spec.request) {
      const std::string key = packed(Value(f.name));
      auto with = [&](const std::string& value) {
        auto entries = base;
        auto it = std::find_if(entries.begin(), entries.end(),
                               [&](const auto& kv) { return kv.first == key; });
        if (it != entries.end()) it->second = value;
        else entries.emplace_back(key, value);
        entries.emplace_back(rid_key, rid_val);
        return raw_map(entries);
      };
      for (const auto& [label, value] : bad_values(f)) {
        // Codec-level refusals happen before the map exists: no field name, no rid.
        const bool codec_level = label == "depth 1000" || label.find("ext") != std::string::npos ||
                                 label.starts_with("nested");
        cases.push_back(body_case(where + std::string(f.name) + ": " + label, spec.service, with(value),
                                  "BAD_REQUEST", codec_level ? "" : std::string(f.name),
                                  !codec_level));
      }
      if (f.required) {
        auto entries = base;
        std::erase_if(entries, [&](const auto& kv) { return kv.first == key; });
        entries.emplace_back(rid_key, rid_val);
        cases.push_back(body_case(where + std::string(f.name) + ": missing", spec.service, raw_map(entries),
                                  "BAD_REQUEST", std::string(f.name), true));
      }
      // The field twice, both times valid.
      if (auto v = valid_value(f)) {
        auto entries = base;
        entries.emplace_back(key, packed(*v));
        cases.push_back(body_case(where + std::string(f.name) + ": duplicate key", spec.service,
                                  raw_map(entries), "BAD_REQUEST"));
      }
    }

    // Whole-body damage around an otherwise valid request.
    const std::string valid = raw_map(base);
    cases.push_back(body_case(where + "duplicate op", spec.service,
                              raw_map([&] { auto e = base; e.push_back(base[0]); return e; }()),
                              "BAD_REQUEST"));
    cases.push_back(body_case(where + "integer key", spec.service,
                              raw_map([&] {
                                auto e = base;
                                e.emplace_back(packed(Value(1)), packed(Value(1)));
                                return e;
                              }()),
                              "BAD_REQUEST"));
    cases.push_back(body_case(where + "ext value of an unknown field", spec.service,
                              raw_map([&] { auto e = base; e.emplace_back(packed(Value("x")), kExt); return e; }()),
                              "BAD_REQUEST"));
    cases.push_back(body_case(where + "truncated by one byte", spec.service,
                              valid.substr(0, valid.size() - 1), "BAD_REQUEST"));
    cases.push_back(body_case(where + "truncated by half", spec.service,
                              valid.substr(0, valid.size() / 2), "BAD_REQUEST"));
    cases.push_back(body_case(where + "trailing byte", spec.service, valid + '\xc0', "BAD_REQUEST"));
    cases.push_back(body_case(where + "op is an int", spec.service,
                              raw_map([&] { auto e = base; e[0].second = packed(Value(1)); return e; }()),
                              "BAD_REQUEST", "op"));
    cases.push_back(body_case(where + "op is nil", spec.service,
                              raw_map([&] { auto e = base; e[0].second = packed(Value()); return e; }()),
                              "BAD_REQUEST", "op"));
    cases.push_back(body_case(where + "no op", spec.service,
                              raw_map([&] { auto e = base; e.erase(e.begin()); return e; }()),
                              "BAD_REQUEST", "op"));
    // Raw DEALER frames around a valid body: extra, missing, empty.
    const std::string svc(spec.service);
    cases.push_back({where + "extra frame", svc, {"", "MDPC01", svc, valid, "extra"}, "BAD_REQUEST", "", false});
    cases.push_back({where + "two empty extra frames", svc, {"", "MDPC01", svc, valid, "", ""},
                     "BAD_REQUEST", "", false});
    cases.push_back({where + "no body frame", svc, {"", "MDPC01", svc}, "BAD_REQUEST", "", false});
  }

  for (auto service : kServices) {
    const std::string where = std::string(service) + " ";
    auto op_body = [&](const Value& op) {
      return raw_map({{packed(Value("op")), packed(op)}, {packed(Value("rid")), packed(Value(4242))}});
    };
    cases.push_back(body_case(where + "unknown op", service, op_body(Value("nope")), "UNKNOWN_OP", "", true));
    cases.push_back(body_case(where + "empty op", service, op_body(Value("")), "UNKNOWN_OP", "", true));
    cases.push_back(body_case(where + "upper-case op", service, op_body(Value("STATUS")), "UNKNOWN_OP", "", true));
    cases.push_back(body_case(where + "another service's op", service,
                              op_body(Value(service == "admin" ? "reserve" : "computers")),
                              "UNKNOWN_OP", "", true));
    cases.push_back(body_case(where + "1 MiB op", service, op_body(Value(std::string(1 << 20, 'o'))),
                              "UNKNOWN_OP", "", true));
    cases.push_back(body_case(where + "invalid UTF-8 op", service, op_body(Value(kInvalidUtf8)),
                              "UNKNOWN_OP", "", true));
    cases.push_back(body_case(where + "op is an array", service, op_body(Value(Value::Array{Value("status")})),
                              "BAD_REQUEST", "op", true));
    cases.push_back(body_case(where + "empty body", service, "", "BAD_REQUEST"));
    cases.push_back(body_case(where + "reserved byte 0xc1", service, "\xc1", "BAD_REQUEST"));
    cases.push_back(body_case(where + "garbage", service, "GET / HTTP/1.1\r\n\r\n", "BAD_REQUEST"));
    cases.push_back(body_case(where + "array body", service, packed(Value(Value::Array{Value("op")})), "BAD_REQUEST"));
    cases.push_back(body_case(where + "int body", service, packed(Value(5)), "BAD_REQUEST"));
    cases.push_back(body_case(where + "string body", service, packed(Value("status")), "BAD_REQUEST"));
    cases.push_back(body_case(where + "nil body", service, packed(Value()), "BAD_REQUEST"));
    cases.push_back(body_case(where + "ext body", service, kExt, "BAD_REQUEST"));
    cases.push_back(body_case(where + "depth 1000 body", service, deep_array(1000), "BAD_REQUEST"));
    cases.push_back(body_case(where + "map32 header claiming 4G entries", service,
                              std::string("\xdf\xff\xff\xff\xff", 5), "BAD_REQUEST"));
    cases.push_back(body_case(where + "str32 header claiming 4 GiB", service,
                              raw_map({{packed(Value("op")), std::string("\xdb\xff\xff\xff\xff", 5)}}),
                              "BAD_REQUEST"));
    cases.push_back(body_case(where + "100001-item array", service,
                              raw_map({{packed(Value("op")), packed(Value("status"))},
                                       {packed(Value("x")), packed(Value(Value::Array(100001, Value(0))))}}),
                              "BAD_REQUEST"));
  }
  return cases;
}

// Every ps:* key except the activity log, the counters and the rate-limit
// keys, rendered per type; hash fields, zset members and keys that name a
// GOOD- computer are left out. Lock and cursor keys that timers rewrite
// (ps:sweep:lock, ps:logfile:*) are left out too, and so are the workers' op
// counters (ps:metrics:ops), which count these requests by design, whenever
// a worker's flush timer happens to fall within the test, the fleet's
// history (ps:hist:*, sampled by a timer and after the good client's
// events), the last log checkpoint (ps:logchk) and the stale recount
// (ps:stale).
std::map<std::string, std::string> snapshot(Redis& redis) {
  std::map<std::string, std::string> out;
  auto good = [](std::string_view s) { return s.find(kGoodPrefix) != std::string_view::npos; };
  std::string cursor = "0";
  std::vector<std::string> keys;
  do {
    auto r = redis.command({"SCAN", cursor, "MATCH", "ps:*", "COUNT", "1000"});
    EXPECT_TRUE(r && r->is_array() && r->elements.size() == 2);
    if (!r || r->elements.size() != 2) return out;
    cursor = r->elements[0].str;
    for (const auto& k : r->elements[1].elements) keys.push_back(k.str);
  } while (cursor != "0");
  for (const auto& key : keys) {
    if (key == "ps:events" || key == "ps:stats" || key.starts_with("ps:rej:") ||
        key == "ps:sweep:lock" || key.starts_with("ps:logfile:") || key == keys::kMetricsOps ||
        key.starts_with("ps:hist:") || key == keys::kLogCheckpoint || key == keys::kStaleCount || good(key))
      continue;
    auto type = redis.command({"TYPE", key});
    if (!type) continue;
    std::string text = type->str + ":";
    auto pairs = [&](const RedisReply& r, bool sort) {
      std::vector<std::string> items;
      for (size_t i = 0; i + 1 < r.elements.size(); i += 2)
        if (!good(r.elements[i].str)) items.push_back(r.elements[i].str + "=" + r.elements[i + 1].str);
      if (sort) std::sort(items.begin(), items.end());
      for (const auto& s : items) text += s + "\n";
    };
    if (type->str == "string") {
      text += redis.command({"GET", key})->str;
    } else if (type->str == "hash") {
      pairs(*redis.command({"HGETALL", key}), true);
    } else if (type->str == "zset") {
      pairs(*redis.command({"ZRANGE", key, "0", "-1", "WITHSCORES"}), false);
    } else {
      auto dump = redis.command({"DUMP", key});
      text += dump ? dump->str : "?";
    }
    out[key] = text;
  }
  return out;
}

TEST(Hostile, CatalogueOfBadRequestsGetsDocumentedErrorsAndChangesNothing) {
  StackOptions o;
  o.admin_workers = 1;
  Stack s(o);
  ASSERT_TRUE(s.ok());
  ASSERT_TRUE(ok(s.unlock("SN-HOSTILE", 100)));
  for (const char* pc : {"PC-1", "PC-2", "PC-3"})
    ASSERT_TRUE(ok(s.call("license.control", "reserve", {{"computer", Value(pc)}})));
  Value res = s.call("license.control", "reserve", {{"computer", Value("PC-1")}});
  ASSERT_TRUE(ok(s.call("license", "heartbeat",
                        {{"computer", Value("PC-1")}, {"license", Value(str(res, "license"))},
                         {"version", Value("1.0")}})));
  ASSERT_TRUE(ok(s.call("license.control", "command",
                        {{"computer", Value("PC-2")}, {"command", Value("restart")}})));

  auto url = parse_redis_url(s.redis().url());
  ASSERT_TRUE(url);
  Redis redis(*url);
  const auto before = snapshot(redis);
  ASSERT_TRUE(before.count("ps:res") && before.count("ps:serial")) << before.size() << " keys";

  // The well-behaved client: reserves fresh computers and heartbeats them.
  std::atomic<bool> stop{false};
  std::atomic<int> good_ok{0}, good_failed{0};
  std::string good_error;
  std::thread good([&] {
    auto c = s.client(10000);
    std::vector<std::pair<std::string, std::string>> mine;
    for (int i = 0; !stop; ++i) {
      if (i % 2 == 0 && mine.size() < 40) {
        const std::string name = std::string(kGoodPrefix) + std::to_string(i);
        auto r = c->call("license.control", "reserve", {{"computer", Value(name)}});
        if (r && ok(*r)) {
          ++good_ok;
          mine.emplace_back(name, str(*r, "license"));
        } else {
          ++good_failed;
          good_error = r ? to_json(*r) : r.error().message;
        }
      } else if (!mine.empty()) {
        const auto& [name, license] = mine[static_cast<size_t>(i) % mine.size()];
        auto r = c->call("license", "heartbeat", {{"computer", Value(name)}, {"license", Value(license)}});
        if (r && ok(*r) && str(*r, "status") == "licensed") {
          ++good_ok;
        } else {
          ++good_failed;
          good_error = r ? to_json(*r) : r.error().message;
        }
      }
      std::this_thread::sleep_for(5ms);
    }
  });

  const auto cases = catalogue();
  std::cerr << cases.size() << " hostile requests\n";
  RawDealer raw(s.ctx(), s.front());
  int failures = 0;
  for (const auto& c : cases) {
    raw.send_frames(c.frames);
    auto frames = raw.recv(10s);
    std::string problem;
    Value reply;
    if (!frames) {
      problem = "no reply";
    } else if (frames->size() != 4 || (*frames)[0] != "" || (*frames)[1] != "MDPC01" ||
               (*frames)[2] != c.service) {
      problem = "malformed reply envelope of " + std::to_string(frames->size()) + " frames";
    } else if (auto v = unpack_map((*frames)[3]); !v) {
      problem = "reply body is not a map";
    } else {
      reply = *v;
      const Value* okf = reply.find("ok");
      const std::string message = str(reply, "message");
      if (!okf || !okf->is_bool() || okf->as_bool()) problem = "not ok:false";
      else if (str(reply, "code") != c.code) problem = "code " + str(reply, "code") + ", expected " + c.code;
      else if (message.empty()) problem = "no message";
      else if (message.find('\n') != std::string::npos) problem = "message of several lines";
      else if (!c.field.empty() && message.find("'" + c.field + "'") == std::string::npos)
        problem = "message does not name '" + c.field + "'";
      else if (c.rid && num(reply, "rid") != 4242) problem = "rid not echoed";
    }
    if (!problem.empty()) {
      ADD_FAILURE() << c.label << ": " << problem << " " << to_json(reply).substr(0, 300);
      if (++failures > 20) break;
    }
  }

  // Let the good client run a little past the last hostile request.
  std::this_thread::sleep_for(300ms);
  stop = true;
  good.join();
  EXPECT_EQ(good_failed, 0) << good_error;
  EXPECT_GE(good_ok, 20);

  EXPECT_TRUE(s.broker.alive());
  for (auto& w : s.license_workers) EXPECT_TRUE(w.alive());
  for (auto& w : s.admin_workers) EXPECT_TRUE(w.alive());
  EXPECT_TRUE(ok(s.call("admin", "status")));

  const auto after = snapshot(redis);
  EXPECT_EQ(after.size(), before.size());
  for (const auto& [key, text] : before) {
    auto it = after.find(key);
    if (it == after.end()) ADD_FAILURE() << key << " disappeared";
    else EXPECT_EQ(it->second, text) << key << " changed";
  }
  for (const auto& [key, text] : after)
    if (!before.count(key)) ADD_FAILURE() << key << " appeared: " << text.substr(0, 200);
}

}  // namespace
}  // namespace primary::test
