// The load generator's reply scanner (tools/bench/load.hpp): what it reads
// of a reply's top level must be what a full decode finds, for replies of
// every MessagePack shape, and it must refuse every truncated body.
#include <gtest/gtest.h>

#include <random>
#include <string>

#include "common/codec.hpp"
#include "common/mdp.hpp"
#include "common/schema.hpp"
#include "tools/bench/load.hpp"

namespace primary::bench {
namespace {

Value random_value(std::mt19937& rng, int depth) {
  switch (rng() % (depth > 2 ? 9 : 11)) {
    case 0: return Value();
    case 1: return Value(rng() % 2 == 0);
    case 2: return Value(static_cast<int64_t>(rng() % 200) - 100);
    case 3: return Value(static_cast<int64_t>(static_cast<uint64_t>(rng()) * rng() - (uint64_t{1} << 40)));
    case 4: return Value(static_cast<unsigned long long>(UINT64_MAX - rng() % 1000));
    case 5: return Value(static_cast<double>(rng()) / 7.0);
    case 6: return Value(std::string(rng() % 40, 'x'));
    case 7: return Value(std::string(rng() % 70000 < 100 ? 70000 : rng() % 300, 'y'));
    case 8: return Value(Bin{std::string(rng() % 300, '\x01')});
    case 9: {
      Value::Array a;
      for (size_t i = rng() % 20; i > 0; --i) a.push_back(random_value(rng, depth + 1));
      return Value(std::move(a));
    }
    default: {
      Value::Map m;
      for (size_t i = rng() % 20; i > 0; --i) m.emplace_back(std::string("k").append(std::to_string(i)), random_value(rng, depth + 1));
      return Value(std::move(m));
    }
  }
}

TEST(ReplyScanner, ReadsWhatAFullDecodeFindsAndRefusesTruncations) {
  std::mt19937 rng(20261130);
  for (int round = 0; round < 3000; ++round) {
    // A map with some of rid / ok / status, of the expected type or not,
    // among other fields of any kind, in random order.
    Value::Map m;
    for (size_t i = rng() % 6; i > 0; --i) m.emplace_back(std::string("f").append(std::to_string(i)), random_value(rng, 0));
    for (const char* key : {"rid", "ok", "status"}) {
      if (rng() % 4 == 0) continue;
      const auto at = m.begin() + static_cast<long>(rng() % (m.size() + 1));
      if (rng() % 3 == 0) {
        m.emplace(at, key, random_value(rng, 0));
      } else if (std::string(key) == "rid") {
        m.emplace(at, key, Value(static_cast<int64_t>(rng() % 300) - (rng() % 5 == 0 ? 150 : 0)));
      } else if (std::string(key) == "ok") {
        m.emplace(at, key, Value(rng() % 2 == 0));
      } else {
        m.emplace(at, key, Value(rng() % 2 ? "licensed" : "unlicensed"));
      }
    }
    const std::string body = pack(Value(m));
    auto full = unpack_map(body);
    ASSERT_TRUE(full) << round;
    TopFields top;
    ASSERT_TRUE(scan_top_fields(body, top)) << round;
    const Value* rid = full->find("rid");
    const Value* ok = full->find("ok");
    const Value* status = full->find("status");
    EXPECT_EQ(top.rid.has_value(), rid && rid->is_int()) << round;
    if (rid && rid->is_int() && top.rid) {
      EXPECT_EQ(*top.rid, rid->as_int()) << round;
    }
    EXPECT_EQ(top.ok.has_value(), ok && ok->is_bool()) << round;
    if (ok && ok->is_bool() && top.ok) {
      EXPECT_EQ(*top.ok, ok->as_bool()) << round;
    }
    EXPECT_EQ(top.status.has_value(), status && status->is_str()) << round;
    if (status && status->is_str() && top.status) {
      EXPECT_EQ(*top.status, status->as_str()) << round;
    }
    // Cut short anywhere (sampled for the long ones), or with a byte more: refused.
    const size_t step = body.size() > 2000 ? body.size() / 500 : 1;
    for (size_t n = 0; n < body.size(); n += step)
      EXPECT_FALSE(scan_top_fields(std::string_view(body).substr(0, n), top)) << round << " cut at " << n;
    EXPECT_FALSE(scan_top_fields(body + '\0', top)) << round;
  }
  TopFields top;
  EXPECT_FALSE(scan_top_fields(pack(Value(Value::Array{Value(1)})), top)) << "not a map";
  EXPECT_FALSE(scan_top_fields(std::string(1, '\xc1'), top)) << "the unused tag";
}

mdp::Frames frames_of(const std::vector<std::string>& parts) {
  mdp::Frames out;
  for (const auto& p : parts) out.push_back(mdp::frame(p));
  return out;
}

std::vector<std::string> strings_of(const mdp::Frames& frames) {
  std::vector<std::string> out;
  for (const auto& f : frames) out.emplace_back(mdp::view(f));
  return out;
}

// The bench's plain RFC 7 echo worker returns a REQUEST's envelope
// unchanged: one client address frame from an RFC 7 broker, or more (as
// our broker sends a worker that asked for its extensions).
TEST(PlainEchoWorker, RepliesInRfc7ShapeWithTheEnvelopeUnchanged) {
  const std::string body = encode_request("echo", {{"payload", Value("abc")}, {"rid", Value(5)}});
  const std::string answer = echo_reply_body(body);
  auto reply = unpack_map(answer);
  ASSERT_TRUE(reply);
  EXPECT_EQ(*reply->find("ok"), Value(true));
  EXPECT_EQ(*reply->find("payload"), Value("abc"));
  EXPECT_EQ(*reply->find("rid"), Value(5));
  EXPECT_EQ(*unpack_map(echo_reply_body("\xc1"))->find("code"), Value("BAD_REQUEST"));

  const std::string req(1, '\x02'), rep(1, '\x03');
  mdp::Frames out;
  auto plain = frames_of({"", "MDPW01", req, "client-1", "", body});
  ASSERT_TRUE(plain_reply(plain, answer, out));
  EXPECT_EQ(strings_of(out), (std::vector<std::string>{"", "MDPW01", rep, "client-1", "", answer}));
  auto extended = frames_of({"", "MDPW01", req, "client-2", "meta", "tag45678", "", body});
  ASSERT_TRUE(plain_reply(extended, answer, out));
  EXPECT_EQ(strings_of(out), (std::vector<std::string>{"", "MDPW01", rep, "client-2", "meta", "tag45678", "", answer}));

  for (const auto& bad : std::vector<std::vector<std::string>>{
           {"", "MDPW01", req, "client", body},                  // no empty frame
           {"", "MDPW01", req, "client", "x", body},             // not empty before the body
           {"", "MDPW02", req, "client", "", body},              // another protocol
           {"x", "MDPW01", req, "client", "", body},             // no leading empty frame
           {"", "MDPW01", std::string(1, '\x04'), "c", "", body},  // not a REQUEST
           {"", "MDPW01", req, ""}}) {
    auto f = frames_of(bad);
    EXPECT_FALSE(plain_reply(f, answer, out)) << bad.size() << " frames";
  }
}

}  // namespace
}  // namespace primary::bench
