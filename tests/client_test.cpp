// The Client's licensing agent against a fake clock and a fake transport:
// hours of behaviour in milliseconds, no sockets, no sleeping.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <set>
#include <thread>

#include "common/codec.hpp"
#include "common/crypto.hpp"
#include "common/tokens.hpp"
#include "primary/client/agent.hpp"
#include "tests/support/temp_dir.hpp"

namespace primary::client {
namespace {

using namespace std::chrono_literals;
using std::chrono::seconds;
using TimePoint = std::chrono::steady_clock::time_point;

// The network as the fake transport sees it: per endpoint, a server
// function from the decoded request to the reply map, or nullopt for
// silence (the attempt times out and the fake clock moves by the timeout).
struct FakeNet {
  using Server = std::function<std::optional<Value>(const Value& request)>;
  struct Sent {
    std::string endpoint;
    TimePoint at;
    Value request;
  };
  std::shared_ptr<ManualClock> clock;
  std::map<std::string, Server> servers;
  std::vector<Sent> sent;
  int connections = 0;
};

class FakeConnection final : public Connection {
 public:
  FakeConnection(FakeNet& net, std::string endpoint) : net_(net), endpoint_(std::move(endpoint)) {}
  bool send(const std::vector<std::string>& frames) override {
    EXPECT_EQ(frames.size(), 4u);
    if (frames.size() != 4) return false;
    EXPECT_EQ(frames[0], "");
    EXPECT_EQ(frames[1], "MDPC01");
    EXPECT_EQ(frames[2], "license");
    auto request = unpack_map(frames[3]);
    EXPECT_TRUE(request.ok());
    if (!request) return false;
    net_.sent.push_back({endpoint_, net_.clock->now(), *request});
    auto it = net_.servers.find(endpoint_);
    if (it != net_.servers.end())
      if (auto reply = it->second(*request)) pending_ = {"", "MDPC01", "license", pack(*reply)};
    return true;
  }
  std::optional<std::vector<std::string>> receive(std::chrono::milliseconds timeout) override {
    if (pending_) return std::exchange(pending_, std::nullopt);
    net_.clock->advance(timeout);
    return std::nullopt;
  }

 private:
  FakeNet& net_;
  std::string endpoint_;
  std::optional<std::vector<std::string>> pending_;
};

class FakeTransport final : public Transport {
 public:
  explicit FakeTransport(FakeNet& net) : net_(net) {}
  Expected<std::unique_ptr<Connection>> connect(const std::string& endpoint) override {
    ++net_.connections;
    return std::unique_ptr<Connection>(std::make_unique<FakeConnection>(net_, endpoint));
  }

 private:
  FakeNet& net_;
};

std::string str(const Value& v, std::string_view key) {
  const Value* f = v.find(key);
  return f && f->is_str() ? f->as_str() : std::string();
}

constexpr const char* kLive = "tcp://live:16770";
constexpr const char* kDead = "tcp://dead:16770";

class LicenseAgentTest : public ::testing::Test {
 protected:
  LicenseAgentTest() {
    net.clock = clock;
    lease_key = base64url_encode(keys.public_key);
  }

  AgentOptions options() {
    AgentOptions o;
    o.computer = "ws-01";
    o.license = "LIC-1";
    o.endpoints = {kLive};
    o.lease_key = lease_key;
    o.jitter = 0;
    o.timeout = 5s;
    o.seed = 42;
    o.on_state_change = [this](const StateChange& c) { changes.push_back(c); };
    return o;
  }
  std::unique_ptr<LicenseAgent> make(AgentOptions o) {
    return std::make_unique<LicenseAgent>(std::move(o), std::make_shared<FakeTransport>(net), clock);
  }
  // Moves the clock to the agent's next wakeup and lets it contact; returns
  // when the contact started.
  TimePoint contact(LicenseAgent& a) {
    clock->advance_to(a.next_wakeup());
    const TimePoint at = clock->now();
    EXPECT_TRUE(a.step());
    return at;
  }
  int64_t wall_s() const {
    return std::chrono::duration_cast<seconds>(clock->wall().time_since_epoch()).count();
  }
  std::string lease(const std::string& computer, const std::string& license, int64_t expires,
                    const std::string& secret = {}) {
    return make_lease(Lease{computer, license, "SN-1", wall_s(), expires, {}},
                      secret.empty() ? keys.secret_key : secret);
  }
  // What the real server answers a verified Client: a fresh lease valid
  // for next_check_s + 3600 s.
  FakeNet::Server licensed(int64_t next_check_s = 14400) {
    return [this, next_check_s](const Value& req) -> std::optional<Value> {
      const int64_t expires = wall_s() + next_check_s + 3600;
      Value::Map m{{"ok", Value(true)},
                   {"status", Value("licensed")},
                   {"next_check_s", Value(next_check_s)},
                   {"upload", Value(true)},
                   {"lease", Value(lease(str(req, "computer"), str(req, "license"), expires))},
                   {"lease_expires", Value(expires)},
                   {"server_time", Value(wall_s())}};
      return Value(std::move(m));
    };
  }
  static FakeNet::Server unlicensed(const std::string& reason, int64_t next_check_s = 60) {
    return [=](const Value&) -> std::optional<Value> {
      return Value(Value::Map{{"ok", Value(true)},
                              {"status", Value("unlicensed")},
                              {"reason", Value(reason)},
                              {"next_check_s", Value(next_check_s)},
                              {"upload", Value(false)}});
    };
  }
  static FakeNet::Server silent() {
    return [](const Value&) -> std::optional<Value> { return std::nullopt; };
  }

  std::shared_ptr<ManualClock> clock = std::make_shared<ManualClock>();
  FakeNet net;
  SignKeypair keys = sign_keypair();
  std::string lease_key;
  std::vector<StateChange> changes;
};

TEST_F(LicenseAgentTest, UnlicensedContactsEveryMinuteAndDoesNotRecord) {
  net.servers[kLive] = unlicensed("NOT_RESERVED");
  auto a = make(options());
  EXPECT_FALSE(a->can_record());
  std::vector<TimePoint> at;
  for (int i = 0; i < 10; ++i) at.push_back(contact(*a));
  for (size_t i = 1; i < at.size(); ++i) EXPECT_EQ(at[i] - at[i - 1], 60s);
  EXPECT_EQ(a->state(), LicenseState::unlicensed);
  EXPECT_EQ(a->reason(), "NOT_RESERVED");
  EXPECT_FALSE(a->can_record());
  EXPECT_FALSE(a->can_upload());
  EXPECT_EQ(a->upload_off(), "unlicensed");
  EXPECT_TRUE(changes.empty());
  EXPECT_EQ(net.sent.size(), 10u);
  EXPECT_EQ(str(net.sent[0].request, "op"), "heartbeat");
  EXPECT_EQ(str(net.sent[0].request, "computer"), "WS-01");
  EXPECT_EQ(str(net.sent[0].request, "license"), "LIC-1");
}

TEST_F(LicenseAgentTest, StepDoesNothingBeforeItIsDue) {
  net.servers[kLive] = unlicensed("NOT_RESERVED");
  auto a = make(options());
  EXPECT_TRUE(a->step());
  EXPECT_FALSE(a->step());
  clock->advance(59s);
  EXPECT_FALSE(a->step());
  clock->advance(1s);
  EXPECT_TRUE(a->step());
  EXPECT_EQ(net.sent.size(), 2u);
}

TEST_F(LicenseAgentTest, UnreachableBeforeLicensedStillRetriesEveryMinute) {
  auto a = make(options());  // nobody answers at kLive
  std::vector<TimePoint> at;
  for (int i = 0; i < 5; ++i) at.push_back(contact(*a));
  for (size_t i = 1; i < at.size(); ++i) EXPECT_EQ(at[i] - at[i - 1], 60s);
  EXPECT_EQ(a->state(), LicenseState::unlicensed);  // never verified: not lost
  EXPECT_NE(a->reason().find("no reply from tcp://live:16770"), std::string::npos) << a->reason();
  EXPECT_FALSE(a->can_record());
  EXPECT_EQ(net.sent.size(), 5u * 3);  // Lazy Pirate: 3 attempts per contact
  EXPECT_EQ(net.connections, 15);      // each on a fresh connection
}

TEST_F(LicenseAgentTest, LicensedNextContactAfterTheServersInterval) {
  net.servers[kLive] = licensed(7200);  // not the 14400 default: the server wins
  auto a = make(options());
  std::vector<TimePoint> at;
  for (int i = 0; i < 4; ++i) at.push_back(contact(*a));
  for (size_t i = 1; i < at.size(); ++i) EXPECT_EQ(at[i] - at[i - 1], 7200s);
  EXPECT_EQ(a->state(), LicenseState::licensed);
  EXPECT_EQ(a->reason(), "verified");
  EXPECT_TRUE(a->can_record());
  EXPECT_TRUE(a->can_upload());
  ASSERT_TRUE(a->lease());
  EXPECT_EQ(a->lease()->computer, "WS-01");
  EXPECT_EQ(a->lease()->serial, "SN-1");
  EXPECT_TRUE(verify_lease(a->lease()->token, lease_key, wall_s()).ok());  // what an upload presents
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_EQ(changes[0].from, LicenseState::unlicensed);
  EXPECT_EQ(changes[0].to, LicenseState::licensed);
  EXPECT_EQ(changes[0].computer, "WS-01");
}

TEST_F(LicenseAgentTest, DefaultIntervalsWhenTheServerGivesNone) {
  net.servers[kLive] = [this](const Value& req) -> std::optional<Value> {
    Value v = *licensed()(req);
    v.set("next_check_s", Value());  // nil: absent
    return v;
  };
  auto a = make(options());
  const TimePoint t0 = contact(*a);
  EXPECT_EQ(contact(*a) - t0, 14400s);
}

TEST_F(LicenseAgentTest, JitterSpreadsContactsWithinTenPercent) {
  net.servers[kLive] = licensed(7200);
  AgentOptions o = options();
  o.jitter = 0.10;
  auto a = make(o);
  std::vector<TimePoint> at;
  for (int i = 0; i < 60; ++i) at.push_back(contact(*a));
  std::set<int64_t> distinct;
  for (size_t i = 1; i < at.size(); ++i) {
    const auto gap = std::chrono::duration_cast<std::chrono::milliseconds>(at[i] - at[i - 1]).count();
    EXPECT_GE(gap, 6480000);
    EXPECT_LE(gap, 7920000);
    distinct.insert(gap);
  }
  EXPECT_GT(distinct.size(), 50u);  // not constant
  // Two agents seeded differently do not stay in step.
  o.seed = 43;
  auto b = make(o);
  o.seed = 44;
  auto c = make(o);
  const TimePoint tb = contact(*b), tc = contact(*c);
  EXPECT_NE(b->next_wakeup() - tb, c->next_wakeup() - tc);
}

TEST_F(LicenseAgentTest, ServerUnreachableAfterLicensedGoesLostAndKeepsRecording) {
  net.servers[kLive] = licensed();  // lease: issued + 4 h + 1 h
  auto a = make(options());
  contact(*a);
  ASSERT_EQ(a->state(), LicenseState::licensed);
  const int64_t expires = a->lease()->expires;

  net.servers[kLive] = silent();
  const TimePoint lost_at = contact(*a);
  EXPECT_EQ(a->state(), LicenseState::lost);
  EXPECT_NE(a->reason().find("no reply"), std::string::npos);
  EXPECT_TRUE(a->can_record());
  EXPECT_TRUE(a->can_upload());  // the lease is still valid
  ASSERT_EQ(changes.size(), 2u);
  EXPECT_EQ(changes[1].from, LicenseState::licensed);
  EXPECT_EQ(changes[1].to, LicenseState::lost);

  // Uploads go on until the lease expires (4 h + 1 h after it was issued),
  // then stop; recording does not.
  clock->advance(seconds(expires - wall_s() - 1));
  EXPECT_TRUE(a->can_upload());
  clock->advance(1s);
  EXPECT_FALSE(a->can_upload());
  EXPECT_TRUE(a->can_record());
  EXPECT_EQ(a->state(), LicenseState::lost);

  // Retries every hour.
  std::vector<TimePoint> at{lost_at};
  for (int i = 0; i < 3; ++i) at.push_back(contact(*a));
  for (size_t i = 1; i < at.size(); ++i) EXPECT_EQ(at[i] - at[i - 1], 3600s);
  EXPECT_EQ(a->state(), LicenseState::lost);
  EXPECT_TRUE(a->can_record());
  EXPECT_FALSE(a->can_upload());
  EXPECT_EQ(changes.size(), 2u);  // lost -> lost is no change

  // Back to licensed (and uploading) when the server answers again.
  net.servers[kLive] = licensed();
  contact(*a);
  EXPECT_EQ(a->state(), LicenseState::licensed);
  EXPECT_TRUE(a->can_upload());
  ASSERT_EQ(changes.size(), 3u);
  EXPECT_EQ(changes[2].from, LicenseState::lost);
  EXPECT_EQ(changes[2].to, LicenseState::licensed);
}

// The fake clock as a Client whose wall clock is `offset` off the fake
// server's (which reads the inner clock); its steady clock is the same.
class SkewedClock final : public Clock {
 public:
  SkewedClock(std::shared_ptr<ManualClock> inner, std::chrono::seconds offset)
      : inner_(std::move(inner)), offset_(offset) {}
  std::chrono::steady_clock::time_point now() const override { return inner_->now(); }
  std::chrono::system_clock::time_point wall() const override { return inner_->wall() + offset_; }
  void set_offset(std::chrono::seconds offset) { offset_ = offset; }

 private:
  std::shared_ptr<ManualClock> inner_;
  std::chrono::seconds offset_;
};

TEST_F(LicenseAgentTest, AWrongWallClockDecidesNothingLeasesRunInServerTime) {
  for (const auto offset : {6h, -6h}) {
    SCOPED_TRACE(offset.count());
    net.servers[kLive] = licensed();  // lease: server time + 4 h + 1 h
    auto skewed = std::make_shared<SkewedClock>(clock, std::chrono::duration_cast<seconds>(offset));
    LicenseAgent a(options(), std::make_shared<FakeTransport>(net), skewed);
    clock->advance_to(a.next_wakeup());
    ASSERT_TRUE(a.step());
    ASSERT_EQ(a.state(), LicenseState::licensed);
    EXPECT_EQ(a.reason(), "verified");  // not "lease refused: lease expired"
    ASSERT_TRUE(a.lease());
    EXPECT_TRUE(a.can_upload());
    EXPECT_EQ(a.upload_off(), "");
    ASSERT_FALSE(changes.empty());
    EXPECT_TRUE(changes.back().upload);  // what primary-client prints as "upload on"
    ASSERT_TRUE(a.server_time());
    EXPECT_EQ(*a.server_time(), wall_s());
    // The heartbeat told the server the Client's wall clock.
    const Value* client_time = net.sent.back().request.find("client_time");
    ASSERT_TRUE(client_time && client_time->is_int());
    EXPECT_EQ(client_time->as_int(), wall_s() + std::chrono::duration_cast<seconds>(offset).count());
    const int64_t expires = a.lease()->expires;

    // The server goes silent; uploads go on exactly until the lease expires
    // in the server's time, whatever the Client's wall clock says, and even
    // when it jumps.
    net.servers[kLive] = silent();
    clock->advance_to(a.next_wakeup());
    ASSERT_TRUE(a.step());
    ASSERT_EQ(a.state(), LicenseState::lost);
    skewed->set_offset(-std::chrono::duration_cast<seconds>(offset) * 2);
    clock->advance(seconds(expires - wall_s() - 1));
    EXPECT_TRUE(a.can_upload());
    EXPECT_EQ(*a.server_time(), expires - 1);
    clock->advance(1s);
    EXPECT_FALSE(a.can_upload());
    EXPECT_EQ(a.upload_off(), "lease expired");
    EXPECT_TRUE(a.can_record());

    // Back in touch: a fresh lease, valid again in server time.
    net.servers[kLive] = licensed();
    clock->advance_to(a.next_wakeup());
    ASSERT_TRUE(a.step());
    EXPECT_EQ(a.state(), LicenseState::licensed);
    EXPECT_TRUE(a.can_upload());
  }
}

TEST_F(LicenseAgentTest, ServerTimeCountsHalfTheRoundTrip) {
  // The round trip takes 4 s: the agent takes the reply's server_time as
  // read half-way, 2 s before the reply arrived.
  net.servers[kLive] = [this](const Value& req) -> std::optional<Value> {
    Value v = *licensed()(req);
    clock->advance(4s);
    return v;
  };
  auto a = make(options());
  const int64_t at = wall_s();
  contact(*a);
  ASSERT_TRUE(a->server_time());
  EXPECT_EQ(*a->server_time(), at + 2);  // this fake server read its clock at the start
}

TEST_F(LicenseAgentTest, ErrorRepliesCountAsNotAnsweringAndRetryAfterWins) {
  net.servers[kLive] = licensed();
  auto a = make(options());
  contact(*a);
  net.servers[kLive] = [](const Value&) -> std::optional<Value> {
    return Value(Value::Map{{"ok", Value(false)},
                            {"code", Value("BUSY")},
                            {"message", Value("load shed")},
                            {"retry_after_s", Value(30)}});
  };
  const TimePoint t = contact(*a);
  EXPECT_EQ(a->state(), LicenseState::lost);
  EXPECT_EQ(a->reason(), "BUSY from tcp://live:16770: load shed");
  EXPECT_EQ(a->next_wakeup() - t, 30s);
  EXPECT_EQ(net.sent.size(), 2u);  // an answer is not retried
}

TEST_F(LicenseAgentTest, UnlicensedReplyAfterLicensedStopsRecording) {
  net.servers[kLive] = licensed();
  auto a = make(options());
  contact(*a);
  ASSERT_TRUE(a->can_record());
  net.servers[kLive] = unlicensed("LICENSE_MISMATCH");
  const TimePoint t = contact(*a);
  EXPECT_EQ(a->state(), LicenseState::unlicensed);
  EXPECT_EQ(a->reason(), "LICENSE_MISMATCH");
  EXPECT_FALSE(a->can_record());
  EXPECT_FALSE(a->can_upload());
  EXPECT_FALSE(a->lease());
  EXPECT_EQ(a->next_wakeup() - t, 60s);
  ASSERT_EQ(changes.size(), 2u);
  EXPECT_EQ(changes[1].to, LicenseState::unlicensed);
  EXPECT_EQ(changes[1].reason, "LICENSE_MISMATCH");
}

TEST_F(LicenseAgentTest, FailsOverToTheNextEndpointWhenOneTimesOut) {
  net.servers[kLive] = licensed();
  AgentOptions o = options();
  o.endpoints = {kDead, kLive};
  auto a = make(o);
  const TimePoint t = contact(*a);
  EXPECT_EQ(a->state(), LicenseState::licensed);
  ASSERT_EQ(net.sent.size(), 2u);
  EXPECT_EQ(net.sent[0].endpoint, kDead);
  EXPECT_EQ(net.sent[1].endpoint, kLive);
  EXPECT_EQ(net.sent[1].at - net.sent[0].at, 5s);  // one timeout
  EXPECT_EQ(net.connections, 2);                   // the dead one's socket was dropped
  EXPECT_EQ(a->endpoint(), kLive);
  EXPECT_EQ(a->next_wakeup() - t, 14400s);  // counted from the start of the contact

  // The endpoint that answered is tried first next time.
  contact(*a);
  ASSERT_EQ(net.sent.size(), 3u);
  EXPECT_EQ(net.sent[2].endpoint, kLive);

  // Both down: 2 rounds over the list (4 attempts), then lost.
  net.servers[kLive] = silent();
  contact(*a);
  EXPECT_EQ(net.sent.size(), 7u);
  EXPECT_EQ(a->state(), LicenseState::lost);
}

TEST_F(LicenseAgentTest, UnavailableFromOneBrokerTriesTheNext) {
  net.servers[kDead] = [](const Value&) -> std::optional<Value> {
    return Value(Value::Map{{"ok", Value(false)}, {"code", Value("UNAVAILABLE")}, {"message", Value("no worker")}});
  };
  net.servers[kLive] = licensed();
  AgentOptions o = options();
  o.endpoints = {kDead, kLive};
  auto a = make(o);
  contact(*a);
  EXPECT_EQ(a->state(), LicenseState::licensed);
  EXPECT_EQ(net.sent.size(), 2u);
}

TEST_F(LicenseAgentTest, ForgedOrExpiredLeaseIsNoLease) {
  const SignKeypair other = sign_keypair();
  std::string token;
  net.servers[kLive] = [&](const Value& req) -> std::optional<Value> {
    Value v = *licensed()(req);
    v.set("lease", Value(token));
    return v;
  };
  auto a = make(options());
  struct Case {
    const char* what;
    std::function<std::string()> make;
    const char* why;
  };
  const std::vector<Case> cases = {
      {"signed with another key", [&] { return lease("WS-01", "LIC-1", wall_s() + 18000, other.secret_key); },
       "lease refused: lease rejected"},
      {"tampered", [&] {
         std::string t = lease("WS-01", "LIC-1", wall_s() + 18000);
         t[3] = t[3] == 'A' ? 'B' : 'A';
         return t;
       }, "lease refused: lease rejected"},
      {"expired", [&] { return lease("WS-01", "LIC-1", wall_s() - 1); }, "lease refused: lease expired"},
      {"for another computer", [&] { return lease("WS-02", "LIC-1", wall_s() + 18000); },
       "lease refused: it is for WS-02"},
      {"for another license", [&] { return lease("WS-01", "LIC-2", wall_s() + 18000); }, "lease refused"},
      {"garbage", [] { return std::string("not a lease"); }, "lease refused"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.what);
    token = c.make();
    contact(*a);
    EXPECT_EQ(a->state(), LicenseState::licensed);  // the server did verify us
    EXPECT_TRUE(a->can_record());
    EXPECT_FALSE(a->can_upload());
    EXPECT_FALSE(a->lease());
    EXPECT_NE(a->reason().find(c.why), std::string::npos) << a->reason();
  }
  // And a good one restores uploads.
  token = lease("WS-01", "LIC-1", wall_s() + 18000);
  contact(*a);
  EXPECT_TRUE(a->can_upload());
}

TEST_F(LicenseAgentTest, WithoutALeaseKeyTheLeaseIsTakenOnTrust) {
  net.servers[kLive] = licensed();
  AgentOptions o = options();
  o.lease_key.clear();
  auto a = make(o);
  contact(*a);
  EXPECT_TRUE(a->can_upload());
  EXPECT_NE(a->reason().find("not checked"), std::string::npos);
  net.servers[kLive] = silent();
  contact(*a);
  clock->advance(seconds(a->lease()->expires - wall_s()));
  EXPECT_FALSE(a->can_upload());
}

TEST_F(LicenseAgentTest, CommandsGoToTheCallbackAndResultsBackInTheNextHeartbeatOnce) {
  bool with_commands = true;
  bool answer = true;
  net.servers[kLive] = [&](const Value& req) -> std::optional<Value> {
    if (!answer) return std::nullopt;
    Value v = *licensed()(req);
    if (with_commands) {
      v.set("commands", Value(Value::Array{
                            Value(Value::Map{{"id", Value("c1")}, {"command", Value("restart")},
                                             {"args", Value(Value::Map{{"delay", Value(5)}})},
                                             {"queued", Value(1700000000000)}}),
                            Value(Value::Map{{"id", Value("c2")}, {"command", Value("collect-logs")},
                                             {"queued", Value(1700000000001)}}),
                            Value(Value::Map{{"id", Value("c3")}, {"command", Value("later")}})}));
      with_commands = false;
    }
    return v;
  };
  std::vector<Command> got;
  AgentOptions o = options();
  o.on_command = [&](const Command& c) -> std::optional<CommandResult> {
    got.push_back(c);
    if (c.id == "c1") return CommandResult{true, "done"};
    if (c.id == "c2") return CommandResult{false, std::string(2000, 'x') + "\xff"};
    return std::nullopt;  // c3: reported later
  };
  auto a = make(o);
  contact(*a);
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0].id, "c1");
  EXPECT_EQ(got[0].command, "restart");
  EXPECT_EQ(got[0].args_json, "{\"delay\":5}");
  EXPECT_EQ(got[0].queued_ms, 1700000000000);
  EXPECT_EQ(got[1].args_json, "null");
  EXPECT_EQ(net.sent[0].request.find("results"), nullptr);

  // The heartbeat carrying the results gets no answer: they are kept.
  answer = false;
  contact(*a);
  ASSERT_EQ(a->state(), LicenseState::lost);
  a->report("c3", {true, "finished late"});
  answer = true;
  const size_t before = net.sent.size();
  contact(*a);
  ASSERT_EQ(a->state(), LicenseState::licensed);
  const Value& sent = net.sent[before].request;
  const Value* results = sent.find("results");
  ASSERT_TRUE(results && results->is_array());
  ASSERT_EQ(results->as_array().size(), 3u);
  const Value& r1 = results->as_array()[0];
  EXPECT_EQ(str(r1, "id"), "c1");
  EXPECT_TRUE(r1.find("ok")->as_bool());
  EXPECT_EQ(str(r1, "detail"), "done");
  const Value& r2 = results->as_array()[1];
  EXPECT_EQ(str(r2, "id"), "c2");
  EXPECT_FALSE(r2.find("ok")->as_bool());
  EXPECT_EQ(str(r2, "detail").size(), 1024u);  // the server's limit: longer would refuse the heartbeat
  EXPECT_EQ(str(results->as_array()[2], "id"), "c3");
  // The attempt that got no answer carried the same results.
  EXPECT_NE(net.sent[before - 1].request.find("results"), nullptr);

  // Answered: never sent again.
  contact(*a);
  EXPECT_EQ(net.sent.back().request.find("results"), nullptr);
  EXPECT_EQ(got.size(), 3u);  // and no command delivered twice
}

TEST_F(LicenseAgentTest, ResultsWaitForALicensedAnswer) {
  net.servers[kLive] = [&](const Value& req) -> std::optional<Value> {
    Value v = *licensed()(req);
    v.set("commands", Value(Value::Array{Value(Value::Map{{"id", Value("c1")}, {"command", Value("x")}})}));
    return v;
  };
  auto a = make(options());
  contact(*a);  // no handler: answered "no command handler"
  net.servers[kLive] = unlicensed("LICENSE_MISMATCH");
  contact(*a);  // the server drops results of an unlicensed heartbeat
  net.servers[kLive] = licensed();
  contact(*a);
  const Value* r1 = net.sent[1].request.find("results");
  const Value* r2 = net.sent[2].request.find("results");
  ASSERT_TRUE(r1 && r2);
  EXPECT_EQ(*r1, *r2);
  EXPECT_EQ(str(r2->as_array()[0], "detail"), "no command handler");
  contact(*a);
  EXPECT_EQ(net.sent[3].request.find("results"), nullptr);
}

TEST_F(LicenseAgentTest, TimeScaleCompressesEveryInterval) {
  net.servers[kLive] = licensed();
  AgentOptions o = options();
  o.time_scale = 0.001;
  auto a = make(o);
  const TimePoint t0 = contact(*a);
  EXPECT_EQ(a->next_wakeup() - t0, 14400ms);
  net.servers[kLive] = silent();
  const TimePoint t1 = contact(*a);
  EXPECT_EQ(a->next_wakeup() - t1, 3600ms);
}

TEST_F(LicenseAgentTest, FirstContactDelay) {
  AgentOptions o = options();
  o.first_contact_delay = 90s;
  const TimePoint t0 = clock->now();
  auto a = make(o);
  EXPECT_EQ(a->next_wakeup() - t0, 90s);
  EXPECT_FALSE(a->step());
}

// ---- at rest: run() sleeps until it has something to do ----

// The fake clock, counting how often the agent reads it: an agent that
// polled would read it every time it woke.
class CountingClock final : public Clock {
 public:
  explicit CountingClock(std::shared_ptr<ManualClock> inner) : inner_(std::move(inner)) {}
  std::chrono::steady_clock::time_point now() const override {
    ++reads_;
    return inner_->now();
  }
  std::chrono::system_clock::time_point wall() const override { return inner_->wall(); }
  int reads() const { return reads_.load(); }

 private:
  std::shared_ptr<ManualClock> inner_;
  mutable std::atomic<int> reads_{0};
};

// Real-time polling for what another thread does (bounded).
bool eventually(const std::function<bool()>& done) {
  const auto until = std::chrono::steady_clock::now() + 10s;
  while (!done()) {
    if (std::chrono::steady_clock::now() > until) return false;
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

// The clock reads once the agent has finished with its contact (no read for
// 200 ms).
int settled_reads(const CountingClock& clock) {
  int last = clock.reads();
  for (int i = 0; i < 50; ++i) {
    std::this_thread::sleep_for(200ms);
    if (clock.reads() == last) break;
    last = clock.reads();
  }
  return last;
}

TEST_F(LicenseAgentTest, RunSleepsUntilTheNextContactWakesOnRequestAndStopsAtOnce) {
  std::atomic<int> heard{0};
  const auto server = unlicensed("NOT_RESERVED");  // next contact in 60 s (of real time, in run())
  net.servers[kLive] = [&](const Value& req) {
    ++heard;
    return server(req);
  };
  auto counting = std::make_shared<CountingClock>(clock);
  LicenseAgent a(options(), std::make_shared<FakeTransport>(net), counting);
  std::jthread runner([&](std::stop_token stop) { a.run(stop); });
  ASSERT_TRUE(eventually([&] { return heard == 1; }));

  // Between contacts: no step(), not even a look at the clock.
  const int reads = settled_reads(*counting);
  std::this_thread::sleep_for(500ms);
  EXPECT_EQ(counting->reads(), reads);
  EXPECT_EQ(heard, 1);

  // wake(): a contact at once, then asleep again.
  a.wake();
  ASSERT_TRUE(eventually([&] { return heard == 2; }));
  const int after = settled_reads(*counting);
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(counting->reads(), after);

  // A stop request returns at once, 60 s before the next contact.
  const auto t = std::chrono::steady_clock::now();
  runner.request_stop();
  runner.join();
  EXPECT_LT(std::chrono::steady_clock::now() - t, 1s);
  EXPECT_EQ(heard, 2);
  EXPECT_EQ(net.connections, 2);
}

TEST_F(LicenseAgentTest, RunWithAStopFlagReturnsOnWakeWithoutAContact) {
  std::atomic<int> heard{0};
  const auto server = licensed();  // next contact in 4 h
  net.servers[kLive] = [&](const Value& req) {
    ++heard;
    return server(req);
  };
  auto a = make(options());
  std::atomic<bool> stop{false};
  std::thread runner([&] { a->run(stop); });
  EXPECT_TRUE(eventually([&] { return heard == 1; }));
  const auto t = std::chrono::steady_clock::now();
  stop = true;
  a->wake();
  runner.join();
  EXPECT_LT(std::chrono::steady_clock::now() - t, 1s);
  EXPECT_EQ(heard, 1);
  EXPECT_EQ(net.connections, 1);
}

TEST_F(LicenseAgentTest, WakeMakesAContactDueAndTellsTheApplicationsLoop) {
  net.servers[kLive] = licensed();
  int woken = 0;
  AgentOptions o = options();
  o.on_wake = [&] { ++woken; };
  auto a = make(o);
  contact(*a);
  clock->advance(10min);
  EXPECT_FALSE(a->step());
  a->report("c1", {true, "done"});
  a->wake();
  EXPECT_EQ(woken, 1);
  EXPECT_EQ(a->next_wakeup(), clock->now());
  const TimePoint t = clock->now();
  EXPECT_TRUE(a->step());
  ASSERT_EQ(net.sent.size(), 2u);
  EXPECT_NE(net.sent[1].request.find("results"), nullptr);  // the result did not wait 4 h
  EXPECT_EQ(a->next_wakeup() - t, 14400s);                  // and the schedule goes on from there
}

// A connection that never reached its server (refused, no handshake).
class UnreachedNet {
 public:
  struct Conn final : public Connection {
    explicit Conn(UnreachedNet& n) : net(n) {}
    bool send(const std::vector<std::string>&) override { return !net.closed_at_once; }
    std::optional<std::vector<std::string>> receive(std::chrono::milliseconds timeout) override {
      net.clock->advance(timeout);
      return std::nullopt;
    }
    bool reached() override { return false; }
    UnreachedNet& net;
  };
  struct Dialer final : public Transport {
    explicit Dialer(UnreachedNet& n) : net(n) {}
    Expected<std::unique_ptr<Connection>> connect(const std::string& endpoint) override {
      net.connections.push_back(endpoint);
      return std::unique_ptr<Connection>(std::make_unique<Conn>(net));
    }
    UnreachedNet& net;
  };
  std::shared_ptr<ManualClock> clock;
  std::vector<std::string> connections;
  bool closed_at_once = false;  // the connection is gone before anything is sent
};

TEST_F(LicenseAgentTest, AnEndpointNobodyAnswersCostsOneConnectionPerContact) {
  UnreachedNet down{clock, {}};
  AgentOptions o = options();
  o.endpoints = {kDead, kLive};
  o.attempts = 6;
  LicenseAgent a(o, std::make_shared<UnreachedNet::Dialer>(down), clock);
  clock->advance_to(a.next_wakeup());
  const TimePoint t = clock->now();
  ASSERT_TRUE(a.step());
  // One connection attempt per endpoint, each after its timeout, then the
  // contact is over: not 6 attempts.
  EXPECT_EQ(down.connections, (std::vector<std::string>{kDead, kLive}));
  EXPECT_EQ(clock->now() - t, 10s);
  EXPECT_NE(a.reason().find("(no connection)"), std::string::npos) << a.reason();
  EXPECT_NE(a.reason().find("(2 attempts)"), std::string::npos) << a.reason();
  EXPECT_EQ(a.next_wakeup() - t, 60s);  // never licensed: every minute
  clock->advance_to(a.next_wakeup());
  ASSERT_TRUE(a.step());
  EXPECT_EQ(down.connections.size(), 4u);

  // Refused (or closed by the listener) before the request could go out:
  // the same, without waiting.
  down.closed_at_once = true;
  clock->advance_to(a.next_wakeup());
  const TimePoint t2 = clock->now();
  ASSERT_TRUE(a.step());
  EXPECT_EQ(down.connections.size(), 6u);
  EXPECT_EQ(clock->now(), t2);
  EXPECT_NE(a.reason().find("cannot send"), std::string::npos) << a.reason();
}

// ---- verify_lease (the Data Vault's view) ----

TEST(ClientVerifyLease, AcceptsAGoodLeaseWithEitherKeyForm) {
  const SignKeypair k = sign_keypair();
  const std::string token = make_lease(Lease{"WS-01", "LIC", "SN-1", 1000, 5000, {}}, k.secret_key);
  for (const std::string& key : {k.public_key, base64url_encode(k.public_key)}) {
    auto l = verify_lease(token, key, 4999);
    ASSERT_TRUE(l.ok()) << l.error();
    EXPECT_EQ(l->computer, "WS-01");
    EXPECT_EQ(l->license, "LIC");
    EXPECT_EQ(l->serial, "SN-1");
    EXPECT_EQ(l->issued, 1000);
    EXPECT_EQ(l->expires, 5000);
    EXPECT_EQ(l->token, token);
  }
}

TEST(ClientVerifyLease, RefusalsSayWhy) {
  const SignKeypair k = sign_keypair();
  const std::string token = make_lease(Lease{"WS-01", "LIC", "SN-1", 1000, 5000, {}}, k.secret_key);
  auto expired = verify_lease(token, k.public_key, 5000, 0);
  ASSERT_FALSE(expired.ok());
  EXPECT_EQ(expired.error(), "lease expired");
  auto forged = verify_lease(token, sign_keypair().public_key, 2000);
  ASSERT_FALSE(forged.ok());
  EXPECT_NE(forged.error().find("lease rejected"), std::string::npos);
  auto badkey = verify_lease(token, "short", 2000);
  ASSERT_FALSE(badkey.ok());
  EXPECT_NE(badkey.error().find("lease key"), std::string::npos);
  EXPECT_FALSE(verify_lease("", k.public_key, 2000).ok());
}

// A Data Vault's clock may drift: by default a lease is accepted up to
// 300 s past its expiry by the verifier's clock, and not a second more.
TEST(ClientVerifyLease, ToleranceForTheVerifiersClock) {
  const SignKeypair k = sign_keypair();
  const std::string token = make_lease(Lease{"WS-01", "LIC", "SN-1", 1000, 5000, {}}, k.secret_key);
  EXPECT_EQ(kLeaseToleranceS, 300);
  EXPECT_TRUE(verify_lease(token, k.public_key, 5000).ok());
  EXPECT_TRUE(verify_lease(token, k.public_key, 5299).ok());
  EXPECT_EQ(verify_lease(token, k.public_key, 5300).error(), "lease expired");
  EXPECT_TRUE(verify_lease(token, k.public_key, 5599, 600).ok());
  EXPECT_FALSE(verify_lease(token, k.public_key, 5600, 600).ok());
  EXPECT_FALSE(verify_lease(token, k.public_key, 5000, 0).ok());
  EXPECT_FALSE(verify_lease(token, k.public_key, 5000, -100).ok());  // a negative tolerance counts as 0
  EXPECT_FALSE(::primary::verify_lease(token, k.public_key, 5300).ok());
  EXPECT_TRUE(::primary::verify_lease(token, k.public_key, 5299).ok());
}

// Leases signed in a batch (one signature over a hash tree, each token with
// its own path): every token verifies and proves only its own payload.
TEST(ClientVerifyLease, BatchSignedLeasesEachProveOnlyTheirOwn) {
  const SignKeypair k = sign_keypair();
  auto batch = [&](size_t n) {
    std::vector<Lease> leases;
    for (size_t i = 0; i < n; ++i) leases.push_back(Lease{"WS-" + std::to_string(i), "LIC" + std::to_string(i), "SN-1", 1000, 5000, {}});
    return make_leases(leases, k.secret_key);
  };
  auto part = [](const std::string& token, int n) {
    size_t from = 0;
    for (int i = 0; i < n; ++i) from = token.find('.', from) + 1;
    return token.substr(from, token.find('.', from) - from);
  };
  for (size_t n : {1u, 2u, 3u, 5u, 64u, 1025u}) {
    const auto tokens = batch(n);
    ASSERT_EQ(tokens.size(), n);
    std::set<std::string> signatures;
    for (size_t i = 0; i < n; ++i) {
      auto l = verify_lease(tokens[i], k.public_key, 4999);
      ASSERT_TRUE(l.ok()) << "lease " << i << " of " << n << ": " << l.error();
      EXPECT_EQ(l->computer, "WS-" + std::to_string(i));
      EXPECT_EQ(l->license, "LIC" + std::to_string(i));
      signatures.insert(part(tokens[i], 1));
    }
    EXPECT_EQ(signatures.size(), n > 1024 ? 2u : 1u) << "one signature per tree of up to 1,024 leases";
  }
  const auto t = batch(5);
  auto refused = [&](const std::string& token, const char* what) {
    EXPECT_FALSE(verify_lease(token, k.public_key, 4999).ok()) << what;
  };
  // Another lease's payload with this one's signature and path.
  refused(part(t[1], 0) + "." + part(t[0], 1) + "." + part(t[0], 2), "payload swapped");
  const std::string proof = *base64url_decode(part(t[0], 2));
  ASSERT_EQ(proof.size() % 33, 0u);
  ASSERT_GE(proof.size(), 66u);
  auto with_proof = [&](const std::string& p) {
    return part(t[0], 0) + "." + part(t[0], 1) + "." + base64url_encode(p);
  };
  ASSERT_TRUE(verify_lease(with_proof(proof), k.public_key, 4999).ok());
  std::string flipped = proof;
  flipped[0] = flipped[0] == '\x00' ? '\x01' : '\x00';
  refused(with_proof(flipped), "sibling side flipped");
  std::string bad_side = proof;
  bad_side[0] = '\x02';
  refused(with_proof(bad_side), "side byte not 0 or 1");
  std::string bad_hash = proof;
  bad_hash[5] ^= 1;
  refused(with_proof(bad_hash), "a path hash changed");
  refused(with_proof(proof.substr(0, proof.size() - 33)), "a step left out");
  refused(with_proof(proof.substr(0, proof.size() - 1)), "truncated path");
  refused(with_proof(""), "no path");
  refused(part(t[0], 0) + "." + part(t[0], 1), "the path dropped (a plain token)");
  std::string p16;
  for (int i = 0; i < 17; ++i) p16 += proof.substr(0, 33);
  refused(with_proof(p16), "a path longer than any tree");
  // Plain signed tokens of earlier versions still verify.
  const std::string plain = sign_token(Value(Value::Map{{"computer", Value("WS-9")}, {"license", Value("L")},
                                                        {"serial", Value("SN-1")}, {"issued", Value(1000)},
                                                        {"expires", Value(5000)}}),
                                       k.secret_key);
  auto old = verify_lease(plain, k.public_key, 4999);
  ASSERT_TRUE(old.ok()) << old.error();
  EXPECT_EQ(old->computer, "WS-9");
}

// ---- setup files ----

TEST(ClientSetup, ParsesWhatSetupInfoGives) {
  const std::string key = base64url_encode(std::string(32, '\x07'));
  auto s = parse_setup(R"({"computer": "ws-01", "license": "L\u00e9-1", "serial": "SN-1",
      "endpoints": ["tcp://a:16770", "tcp://b:16770"], "lease_key": ")" + key + R"("})");
  ASSERT_TRUE(s.ok()) << s.error();
  EXPECT_EQ(s->computer, "WS-01");
  EXPECT_EQ(s->license, "L\xc3\xa9-1");
  EXPECT_EQ(s->serial, "SN-1");
  EXPECT_EQ(s->endpoints, (std::vector<std::string>{"tcp://a:16770", "tcp://b:16770"}));
  EXPECT_EQ(s->server_key, "");
  EXPECT_EQ(s->lease_key, key);
  AgentOptions o = options_from(*s);
  EXPECT_EQ(o.computer, "WS-01");
  EXPECT_EQ(o.endpoints.size(), 2u);
  EXPECT_EQ(o.lease_key, key);
}

TEST(ClientSetup, RefusesWhatCannotWork) {
  const std::string key = base64url_encode(std::string(32, '\x07'));
  auto refused = [](const std::string& json) {
    auto s = parse_setup(json);
    return s.ok() ? std::string() : s.error();
  };
  const std::string rest = R"("license": "L", "endpoints": ["tcp://a:1"], "lease_key": ")" + key + "\"";
  EXPECT_EQ(refused(R"({"computer": "ws 01", )" + rest + "}").find("'computer'"), 0u);
  EXPECT_NE(refused(R"({"computer": "ws", "license": "L", "endpoints": [], "lease_key": ")" + key + "\"}"), "");
  EXPECT_NE(refused(R"({"computer": "ws", "license": "L", "endpoints": ["tcp://a:1"]})"), "");
  EXPECT_NE(refused(R"({"computer": "ws", "license": "L", "endpoints": ["tcp://a:1"], "lease_key": "abc"})"), "");
  EXPECT_NE(refused(R"({"computer": "ws", "server_key": "nope", )" + rest + "}"), "");
  EXPECT_NE(refused(R"({"computer": "ws", "computer": "ws2", )" + rest + "}").find("duplicate"), std::string::npos);
  EXPECT_NE(refused(R"({"computer": "ws", )" + rest + "} trailing").find("trailing"), std::string::npos);
  EXPECT_NE(refused("[1, 2]"), "");
  EXPECT_NE(refused(""), "");
  // A number beyond a double's range is refused, not thrown (found by fuzz_setup).
  EXPECT_NE(refused("1E999999"), "");
  EXPECT_NE(refused(R"({"computer": 1E999999, )" + rest + "}"), "");
}

TEST(ClientSetup, LoadsAFile) {
  test::TempDir dir("client-setup");
  const std::string path = dir.file("setup.json");
  {
    std::ofstream out(path);
    out << R"({"computer": "WS-09", "license": "L", "serial": "S", "endpoints": ["tcp://x:1"], )"
        << R"("server_key": "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7", "lease_key": ")"
        << base64url_encode(std::string(32, 'k')) << "\"}\n";
  }
  auto s = load_setup(path);
  ASSERT_TRUE(s.ok()) << s.error();
  EXPECT_EQ(s->server_key, "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7");
  auto missing = load_setup(dir.file("nope.json"));
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().find("nope.json"), std::string::npos);
}

}  // namespace
}  // namespace primary::client
