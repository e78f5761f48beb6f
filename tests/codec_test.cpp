// The codec and the operation catalog: every declared operation round-trips
// through encode_request / decode_request, every declared constraint is
// enforced with an error naming the field, and hostile MessagePack is
// refused as BAD_REQUEST.
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "common/codec.hpp"
#include "common/mdp.hpp"
#include "common/schema.hpp"

namespace primary {
namespace {

using T = FieldType;

std::string label(const OpSpec& spec) {
  return std::string(spec.service) + "." + std::string(spec.op);
}

int64_t clamp_to(int64_t want, const Field& f) { return std::max(f.min, std::min(want, f.max)); }

// A value of field type `f.type` that satisfies the field's declaration.
Value sample(const Field& f) {
  switch (f.type) {
    case T::Str:
      if (!f.one_of.empty()) return Value(f.one_of.back());
      return Value(std::string(static_cast<size_t>(clamp_to(5, f)), 's'));
    case T::Name: return Value("pc-07.lab_x");
    case T::Int: return Value(clamp_to(7, f));
    case T::Bool: return Value(true);
    case T::Bin: return Value(Bin{std::string(static_cast<size_t>(clamp_to(3, f)), '\x01')});
    case T::Array: return Value(Value::Array(static_cast<size_t>(clamp_to(2, f)), Value(1)));
    case T::StrArray: return Value(Value::Array(static_cast<size_t>(clamp_to(2, f)), Value("a")));
    case T::Map: {
      Value::Map m;
      for (int64_t i = 0; i < clamp_to(1, f); ++i) m.emplace_back("k" + std::to_string(i), Value(i));
      return Value(std::move(m));
    }
    case T::Any: return Value(Value::Map{{"any", Value(Value::Array{Value(1), Value("x")})}});
  }
  return {};
}

// What decode_request should hand back for a sample value.
Value normalized(const Field& f, const Value& v) {
  return f.type == T::Name ? Value(normalize_computer_name(v.as_str())) : v;
}

// Every declared request field with a valid sample value.
Value::Map sample_fields(const OpSpec& spec) {
  Value::Map m;
  for (const auto& f : spec.request) m.emplace_back(std::string(f.name), sample(f));
  return m;
}

Value::Map with(Value::Map m, std::string_view name, Value v) {
  for (auto& [k, e] : m)
    if (k == name) {
      e = std::move(v);
      return m;
    }
  m.emplace_back(std::string(name), std::move(v));
  return m;
}

Value::Map without(Value::Map m, std::string_view name) {
  std::erase_if(m, [&](const auto& kv) { return kv.first == name; });
  return m;
}

Result<Request> decode(std::string_view service, const std::string& body, Value* rid = nullptr) {
  return decode_request(service, body, CodecLimits{}, rid);
}

// Asserts that `body` for spec is refused as BAD_REQUEST naming `field`.
void expect_bad(const OpSpec& spec, const std::string& body, std::string_view field,
                const std::string& what) {
  auto r = decode(spec.service, body);
  ASSERT_FALSE(r.ok()) << label(spec) << " accepted " << what;
  EXPECT_EQ(r.error().code, Code::BadRequest) << label(spec) << " " << what;
  EXPECT_NE(r.error().message.find(std::string(field)), std::string::npos)
      << label(spec) << " " << what << ": message does not name the field: " << r.error().message;
}

// A value of a type other than the field's.
Value wrong_type(const Field& f) {
  switch (f.type) {
    case T::Str:
    case T::Name:
    case T::Bin: return Value(12345);
    case T::Int: return Value("12");
    case T::Bool: return Value(1);
    case T::Array:
    case T::StrArray: return Value("not an array");
    case T::Map: return Value(Value::Array{});
    case T::Any: return {};
  }
  return {};
}

// Values just outside the field's declared range (none when unbounded).
std::vector<std::pair<std::string, Value>> out_of_range(const Field& f) {
  std::vector<std::pair<std::string, Value>> out;
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  constexpr int64_t kHuge = 1 << 20;  // larger lengths are not worth building
  switch (f.type) {
    case T::Str:
      if (!f.one_of.empty()) {
        out.emplace_back("a value not in the allowed list", Value("no-such-choice"));
        break;
      }
      if (f.max < kHuge)
        out.emplace_back("too long", Value(std::string(static_cast<size_t>(f.max + 1), 's')));
      if (f.min > 0)
        out.emplace_back("too short", Value(std::string(static_cast<size_t>(f.min - 1), 's')));
      break;
    case T::Name:
      out.emplace_back("64 characters", Value(std::string(64, 'a')));
      out.emplace_back("a space", Value("pc 07"));
      out.emplace_back("empty", Value(""));
      out.emplace_back("a slash", Value("pc/07"));
      break;
    case T::Int:
      if (f.min > std::numeric_limits<int64_t>::min()) out.emplace_back("below min", Value(f.min - 1));
      if (f.max < kMax) out.emplace_back("above max", Value(f.max + 1));
      break;
    case T::Bin:
      if (f.max < kHuge)
        out.emplace_back("too long", Value(Bin{std::string(static_cast<size_t>(f.max + 1), 'b')}));
      break;
    case T::Array:
    case T::StrArray:
      if (f.max < kHuge)
        out.emplace_back("too many items",
                         Value(Value::Array(static_cast<size_t>(f.max + 1), Value("a"))));
      if (f.type == T::StrArray) {
        out.emplace_back("a non-string item", Value(Value::Array{Value(1)}));
        out.emplace_back("an item over 256 bytes", Value(Value::Array{Value(std::string(257, 'a'))}));
      }
      break;
    case T::Map:
      if (f.max < kHuge) {
        Value::Map m;
        for (int64_t i = 0; i <= f.max; ++i) m.emplace_back("k" + std::to_string(i), Value(i));
        out.emplace_back("too many entries", Value(std::move(m)));
      }
      break;
    case T::Bool:
    case T::Any: break;
  }
  return out;
}

// A float of 2^64 (fuzz_codec's find: float 32 0x5f800000) packs without
// undefined behaviour and comes back as the same float; whole-numbered
// floats in range still pack as integers, as msgpack-c packs them.
TEST(CodecTest, FloatOfTwoToTheSixtyFourRoundTrips) {
  const std::string in("\xca\x5f\x80\x00\x00", 5);
  auto v = unpack_value(in);
  ASSERT_TRUE(v.ok()) << v.error().message;
  ASSERT_EQ(v->kind(), Value::Kind::Float);
  const std::string packed = pack(*v);
  EXPECT_EQ(packed, std::string("\xcb\x43\xf0\x00\x00\x00\x00\x00\x00", 9));
  auto again = unpack_value(packed);
  ASSERT_TRUE(again.ok());
  ASSERT_EQ(again->kind(), Value::Kind::Float);
  EXPECT_EQ(again->as_float(), 18446744073709551616.0);
  EXPECT_EQ(pack(Value(4096.0)), std::string("\xcd\x10\x00", 3));
}

TEST(CatalogTest, EveryOperationRoundTrips) {
  ASSERT_FALSE(catalog().empty());
  for (const auto& spec : catalog()) {
    SCOPED_TRACE(label(spec));
    Value::Map fields = sample_fields(spec);
    fields.emplace_back("rid", Value(Value::Array{Value("r"), Value(1)}));
    Value rid;
    auto r = decode(spec.service, encode_request(spec.op, fields), &rid);
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(r->spec, &spec);
    EXPECT_EQ(r->op(), spec.op);
    EXPECT_EQ(rid, (Value(Value::Array{Value("r"), Value(1)})));
    EXPECT_EQ(r->rid, rid);
    for (const auto& f : spec.request) {
      const Value* got = r->body.find(f.name);
      ASSERT_NE(got, nullptr) << "field " << f.name << " lost";
      EXPECT_EQ(*got, normalized(f, sample(f))) << "field " << f.name << ": " << to_json(*got);
    }
  }
}

TEST(CatalogTest, OnlyRequiredFieldsAreEnough) {
  for (const auto& spec : catalog()) {
    Value::Map fields;
    for (const auto& f : spec.request)
      if (f.required) fields.emplace_back(std::string(f.name), sample(f));
    auto r = decode(spec.service, encode_request(spec.op, fields));
    EXPECT_TRUE(r.ok()) << label(spec) << ": " << (r.ok() ? "" : r.error().message);
  }
}

TEST(CatalogTest, ComputerNamesComeBackUpperCase) {
  auto r = decode("license.control", encode_request("reserve", {{"computer", Value("Pc-07.Lab_x")}}));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->str("computer"), "PC-07.LAB_X");
  r = decode("license.control", encode_request("reserve", {{"computer", Value(std::string(63, 'z'))}}));
  EXPECT_TRUE(r.ok()) << "a 63-character name is valid";
}

TEST(CatalogTest, MissingRequiredFieldIsNamed) {
  for (const auto& spec : catalog())
    for (const auto& f : spec.request) {
      if (!f.required) continue;
      expect_bad(spec, encode_request(spec.op, without(sample_fields(spec), f.name)), f.name,
                 "without " + std::string(f.name));
      expect_bad(spec, encode_request(spec.op, with(sample_fields(spec), f.name, Value())), f.name,
                 std::string(f.name) + " = nil");
    }
}

TEST(CatalogTest, WrongTypeIsNamed) {
  for (const auto& spec : catalog())
    for (const auto& f : spec.request) {
      if (f.type == T::Any) continue;
      expect_bad(spec, encode_request(spec.op, with(sample_fields(spec), f.name, wrong_type(f))),
                 f.name, std::string(f.name) + " of the wrong type");
    }
}

TEST(CatalogTest, OutOfRangeIsNamed) {
  int checked = 0;
  for (const auto& spec : catalog())
    for (const auto& f : spec.request)
      for (auto& [what, v] : out_of_range(f)) {
        expect_bad(spec, encode_request(spec.op, with(sample_fields(spec), f.name, v)), f.name,
                   std::string(f.name) + " " + what);
        ++checked;
      }
  EXPECT_GT(checked, 20) << "the generator found almost no bounded fields";
}

TEST(CatalogTest, InvalidUtf8InStringIsRefused) {
  for (const auto& spec : catalog())
    for (const auto& f : spec.request) {
      if (f.type != T::Str || !f.one_of.empty() || f.max < 2) continue;
      const std::string bad = f.min > 2 ? std::string("\xff\xfe") + std::string(f.min - 2, 's')
                                         : std::string("\xff\xfe");
      expect_bad(spec, encode_request(spec.op, with(sample_fields(spec), f.name, Value(bad))),
                 f.name, std::string(f.name) + " with invalid UTF-8");
    }
  // Overlong encoding and a lone surrogate.
  for (const std::string& bad : {std::string("\xc0\xaf"), std::string("\xed\xa0\x80")}) {
    auto r = decode("license", encode_request("heartbeat", {{"computer", Value("pc")},
                                                            {"license", Value(bad)}}));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, Code::BadRequest);
  }
}

TEST(CatalogTest, UnknownFieldsAreIgnored) {
  auto r = decode("echo", encode_request("sleep", {{"ms", Value(1)}, {"extra", Value("x")}}));
  EXPECT_TRUE(r.ok()) << r.error().message;
}

TEST(CatalogTest, UnknownOpAndMissingOp) {
  Value rid;
  auto r = decode("echo", encode_request("nope", {{"rid", Value(5)}}), &rid);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Code::UnknownOp);
  EXPECT_NE(r.error().message.find("nope"), std::string::npos) << r.error().message;
  EXPECT_EQ(rid, Value(5)) << "rid of a refused request must still reach the error reply";

  // An op of another service is unknown here.
  r = decode("echo", encode_request("reserve", {{"computer", Value("pc")}}));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Code::UnknownOp);

  r = decode("echo", pack(Value(Value::Map{{"payload", Value(1)}})));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Code::BadRequest);
  EXPECT_NE(r.error().message.find("op"), std::string::npos);

  r = decode("echo", pack(Value(Value::Map{{"op", Value(3)}})));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Code::BadRequest);
}

// Hand-made MessagePack for what Value/pack cannot produce.
std::string map_header(uint8_t n) { return std::string(1, static_cast<char>(0x80 | n)); }
std::string str(std::string_view s) {
  return std::string(1, static_cast<char>(0xa0 | s.size())) + std::string(s);
}

void expect_bad_body(const std::string& body, const std::string& what,
                     std::string_view in_message = {}) {
  auto r = decode("echo", body);
  ASSERT_FALSE(r.ok()) << what << " accepted";
  EXPECT_EQ(r.error().code, Code::BadRequest) << what;
  if (!in_message.empty()) {
    EXPECT_NE(r.error().message.find(in_message), std::string::npos)
        << what << ": " << r.error().message;
  }
}

TEST(CodecTest, HostileBodiesAreBadRequest) {
  const std::string good = encode_request("echo", {{"payload", Value("x")}});
  ASSERT_TRUE(decode("echo", good).ok());

  expect_bad_body(pack(Value(5)), "an integer body", "map");
  expect_bad_body(pack(Value(Value::Array{Value("op"), Value("echo")})), "an array body", "map");
  expect_bad_body("", "an empty body");
  expect_bad_body(good.substr(0, good.size() - 1), "a truncated body", "truncated");
  expect_bad_body(encode_request("echo", {{"payload", Value(std::string(5 << 20, 'x'))}}),
                  "a 5 MiB body", "exceeds");
  expect_bad_body(good + "\xc0", "trailing bytes", "trailing");
  expect_bad_body(good + good, "two maps", "trailing");
  expect_bad_body("\xc1", "the reserved byte 0xc1");
  expect_bad_body(map_header(2) + str("op") + str("echo") + str("op") + str("echo"),
                  "duplicate keys", "duplicate");
  const std::string fixext1("\xd4\x01\x00", 3);
  expect_bad_body(map_header(2) + str("op") + str("echo") + str("payload") + fixext1,
                  "an ext value", "ext");
  expect_bad_body(map_header(2) + str("op") + str("echo") + "\x01" + str("x"), "an integer key");

  // Nesting 100 deep.
  std::string deep = map_header(2) + str("op") + str("echo") + str("payload");
  deep += std::string(100, '\x91') + '\x01';
  expect_bad_body(deep, "nesting depth 100", "deep");

  // A declared count far beyond the bytes present.
  expect_bad_body(map_header(1) + str("op") + "\xdd\xff\xff\xff\xff", "an array claiming 4G items");
  expect_bad_body("\xdf\xff\xff\xff\xff", "a map claiming 4G entries");
}

TEST(CodecTest, LimitsAreConfigurable) {
  CodecLimits lim;
  lim.max_body = 16;
  EXPECT_FALSE(unpack_map(pack(Value(Value::Map{{"k", Value(std::string(32, 'x'))}})), lim).ok());
  lim = {};
  lim.max_items = 3;
  EXPECT_FALSE(unpack_map(pack(Value(Value::Map{{"k", Value(Value::Array(4, Value(1)))}})), lim).ok());
  EXPECT_TRUE(unpack_map(pack(Value(Value::Map{{"k", Value(Value::Array(3, Value(1)))}})), lim).ok());
}

TEST(CodecTest, RidIsEchoedByEncodeReply) {
  const Value rid(Value::Map{{"n", Value(42)}, {"s", Value("x")}});
  auto ok = unpack_map(encode_reply(Reply::success({{"payload", Value("p")}}), rid));
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(*ok->find("ok"), Value(true));
  ASSERT_NE(ok->find("rid"), nullptr);
  EXPECT_EQ(*ok->find("rid"), rid);
  EXPECT_EQ(*ok->find("payload"), Value("p"));

  auto err = unpack_map(encode_reply(Reply::failure(Code::NotFound, "no such computer"), Value(7)));
  ASSERT_TRUE(err.ok());
  EXPECT_EQ(*err->find("ok"), Value(false));
  EXPECT_EQ(*err->find("rid"), Value(7));
  EXPECT_EQ(*err->find("code"), Value("NOT_FOUND"));
  EXPECT_EQ(*err->find("message"), Value("no such computer"));

  auto busy = unpack_map(encode_error(Code::Busy, "full", Value("r"), {{"retry_after_s", Value(1)}}));
  ASSERT_TRUE(busy.ok());
  EXPECT_EQ(*busy->find("code"), Value("BUSY"));
  EXPECT_EQ(*busy->find("rid"), Value("r"));
  EXPECT_EQ(*busy->find("retry_after_s"), Value(1));

  // Without a rid there is no rid key.
  auto plain = unpack_map(encode_reply(Reply::success()));
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(plain->find("rid"), nullptr);

  // The reply's own fields cannot overwrite ok or rid.
  auto sneaky = unpack_map(encode_reply(Reply::success({{"ok", Value(false)}, {"rid", Value(0)}}), Value(1)));
  ASSERT_TRUE(sneaky.ok()) << sneaky.error().message;
  EXPECT_EQ(*sneaky->find("ok"), Value(true));
  EXPECT_EQ(*sneaky->find("rid"), Value(1));
}

TEST(CodecTest, EveryErrorCodeHasAWireName) {
  for (Code c : {Code::BadRequest, Code::UnknownOp, Code::Unauthorized, Code::NotUnlocked,
                 Code::NoLicensesLeft, Code::InvalidUnlockCode, Code::NotFound, Code::Unavailable,
                 Code::Busy, Code::Internal, Code::InvalidSeatCode}) {
    const auto name = code_name(c);
    EXPECT_FALSE(name.empty());
    EXPECT_EQ(code_from_name(name), c) << name;
  }
  EXPECT_EQ(code_from_name("NO_SUCH_CODE"), std::nullopt);
}

TEST(ValueTest, PackUnpackRoundTripsEveryKind) {
  const std::vector<Value> values = {
      Value(),
      Value(true),
      Value(false),
      Value(0),
      Value(-1),
      Value(127),
      Value(-33),
      Value(int64_t{1} << 40),
      Value(std::numeric_limits<int64_t>::min()),
      Value(std::numeric_limits<int64_t>::max()),
      Value(std::numeric_limits<uint64_t>::max()),
      Value(1.5),
      Value(-0.25),
      Value(""),
      Value("h\xc3\xa9llo"),
      Value(std::string(70000, 'l')),
      Value(Bin{std::string("\x00\xff\x01", 3)}),
      Value(Bin{}),
      Value(Value::Array{}),
      Value(Value::Array{Value(1), Value("two"), Value(Value::Array{Value()})}),
      Value(Value::Map{}),
      Value(Value::Map{{"b", Value(1)}, {"a", Value(Value::Map{{"x", Value(Bin{"y"})}})}}),
  };
  for (const auto& v : values) {
    auto back = unpack_value(pack(v));
    ASSERT_TRUE(back.ok()) << to_json(v) << ": " << back.error().message;
    EXPECT_EQ(*back, v) << to_json(v) << " came back as " << to_json(*back);
    EXPECT_EQ(back->kind(), v.kind()) << to_json(v);
  }
  // Map order is kept.
  auto m = unpack_map(pack(Value(Value::Map{{"z", Value(1)}, {"a", Value(2)}})));
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->as_map()[0].first, "z");
  EXPECT_EQ(m->as_map()[1].first, "a");
}

TEST(ValueTest, UnsignedBeyondInt64StaysUnsigned) {
  EXPECT_EQ(Value(uint64_t{5}).kind(), Value::Kind::Int);
  EXPECT_EQ(Value(std::numeric_limits<uint64_t>::max()).kind(), Value::Kind::UInt);
  // An Int field refuses it as out of range rather than wrapping.
  auto r = decode("echo", encode_request("sleep", {{"ms", Value(std::numeric_limits<uint64_t>::max())}}));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("ms"), std::string::npos);
}

TEST(ValueTest, ToJson) {
  EXPECT_EQ(to_json(Value(Value::Map{{"a", Value(1)}, {"b", Value(Value::Array{Value(true), Value()})},
                                     {"c", Value("q\"\n")}})),
            R"({"a":1,"b":[true,null],"c":"q\"\n"})");
}

}  // namespace
}  // namespace primary

// The batch frames of docs/protocol.md "Worker batches": entries round-trip,
// with and without meta, and every truncation or extension is refused.
namespace primary {
TEST(MdpBatch, EntriesRoundTripAndEveryTruncationIsRefused) {
  for (const bool with_meta : {true, false}) {
    std::string frame;
    const std::string c255(255, 'c'), t255(255, 't'), big(70000, 'b'), binary("\x00\x01", 2);
    const std::vector<mdp::BatchEntry> in = {{"client-1", with_meta ? "127.0.0.1 client" : "", "12345678", "body"},
                                             {c255, "", "t", ""},
                                             {binary, with_meta ? "m" : "", t255, big}};
    for (const auto& e : in) {
      const size_t before = frame.size();
      mdp::append_entry(frame, e, with_meta);
      EXPECT_EQ(frame.size() - before, mdp::entry_size(e, with_meta));
    }
    std::vector<mdp::BatchEntry> out;
    ASSERT_TRUE(mdp::parse_batch(frame, with_meta, out));
    ASSERT_EQ(out.size(), in.size());
    for (size_t i = 0; i < in.size(); ++i) {
      EXPECT_EQ(out[i].client, in[i].client);
      EXPECT_EQ(out[i].meta, with_meta ? in[i].meta : "");
      EXPECT_EQ(out[i].tag, in[i].tag);
      EXPECT_EQ(out[i].body, in[i].body);
    }
    // The first entry alone, cut anywhere short of its end: refused.
    std::string one;
    mdp::append_entry(one, in[0], with_meta);
    for (size_t n = 0; n < one.size(); ++n)
      EXPECT_FALSE(mdp::parse_batch(std::string_view(one).substr(0, n), with_meta, out)) << n;
    EXPECT_FALSE(mdp::parse_batch(one + "x", with_meta, out));
    // Read with the other layout, the lengths no longer add up.
    EXPECT_FALSE(mdp::parse_batch(one, !with_meta, out));
  }
  std::vector<mdp::BatchEntry> out;
  std::string empty_client, empty_tag, long_client;
  const std::string c256(256, 'c');
  mdp::append_entry(empty_client, {"", "", "tag", "b"}, false);
  mdp::append_entry(empty_tag, {"c", "", "", "b"}, false);
  mdp::append_entry(long_client, {c256, "", "tag", "b"}, false);
  EXPECT_FALSE(mdp::parse_batch(empty_client, false, out));
  EXPECT_FALSE(mdp::parse_batch(empty_tag, false, out));
  EXPECT_FALSE(mdp::parse_batch(long_client, false, out));
}
}  // namespace primary

TEST(MdpEnvelope, RequestFramesAndReplyBodyAgreeAndEveryOtherShapeIsRefused) {
  namespace mdp = primary::mdp;
  const auto frames = mdp::request_frames("license", "BODY");
  ASSERT_EQ(frames.size(), 4u);
  EXPECT_EQ(frames[0], "");
  EXPECT_EQ(frames[1], "MDPC01");
  EXPECT_EQ(frames[2], "license");
  auto body = mdp::reply_body(frames, "license");
  ASSERT_TRUE(body.has_value());
  EXPECT_EQ(*body, "BODY");
  EXPECT_FALSE(mdp::reply_body(frames, "update").has_value());
  auto bad = frames;
  bad[1] = "MDPW01";
  EXPECT_FALSE(mdp::reply_body(bad, "license").has_value());
  bad = frames;
  bad[0] = "x";
  EXPECT_FALSE(mdp::reply_body(bad, "license").has_value());
  bad = frames;
  bad.push_back("extra");
  EXPECT_FALSE(mdp::reply_body(bad, "license").has_value());

  // The same envelope over a real DEALER/ROUTER pair.
  zmq::context_t ctx;
  zmq::socket_t router(ctx, zmq::socket_type::router);
  router.set(zmq::sockopt::linger, 0);
  router.bind("inproc://envelope");
  zmq::socket_t dealer(ctx, zmq::socket_type::dealer);
  dealer.set(zmq::sockopt::linger, 0);
  dealer.connect("inproc://envelope");
  ASSERT_TRUE(mdp::send_request(dealer, "admin", "PING"));
  mdp::Frames in;
  ASSERT_TRUE(mdp::recv_frames(router, in));
  ASSERT_EQ(in.size(), 5u);  // routing id first
  EXPECT_EQ(mdp::view(in[3]), "admin");
  EXPECT_EQ(mdp::view(in[4]), "PING");
  // The router answers with the same envelope: [id, "", MDPC01, service, body].
  mdp::Frames out;
  out.push_back(std::move(in[0]));
  out.push_back(mdp::frame(""));
  out.push_back(mdp::frame(mdp::kClient));
  out.push_back(mdp::frame("admin"));
  out.push_back(mdp::frame("PONG"));
  ASSERT_TRUE(mdp::send_frames(router, out));
  mdp::Frames got;
  ASSERT_TRUE(mdp::recv_frames(dealer, got));
  auto reply = mdp::reply_body(got, "admin");
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(*reply, "PONG");
  EXPECT_FALSE(mdp::reply_body(got, "license").has_value());
}
