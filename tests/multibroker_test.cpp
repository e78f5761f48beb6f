// Two brokers in front of the same licensing workers and one Redis
// (docs/operations.md, "Two brokers"): each worker connects to both brokers
// and publishes its events to both; a client with both front doors in its
// endpoint list fails over when the first broker dies, and keeps its
// licenses and reservations.
#include <gtest/gtest.h>
#include <signal.h>

#include <set>

#include "common/client.hpp"
#include "common/codec.hpp"
#include "common/process.hpp"
#include "common/tokens.hpp"
#include "tests/support/process.hpp"
#include "tests/support/redis_server.hpp"
#include "tests/support/stack.hpp"
#include "tests/support/temp_dir.hpp"
#include "tests/support/util.hpp"

namespace primary::test {
namespace {

struct Broker {
  Process proc;
  std::string front, events, workers, sink;
};

Broker start_broker(const TempDir& dir, const std::string& name) {
  Broker b;
  const std::string eps = dir.file(name + ".endpoints");
  b.proc = Process::start({bin("primary-broker"), "--insecure", "--front", "tcp://127.0.0.1:*", "--events",
                           "tcp://127.0.0.1:*", "--workers-endpoint", "tcp://127.0.0.1:*", "--event-sink",
                           "tcp://127.0.0.1:*", "--endpoints-file", eps, "--heartbeat-ms", "200"},
                          {}, dir.file(name + ".log"));
  if (!wait_until([&] { return endpoints_file_value(eps, "event-sink").has_value(); }, 10s)) return b;
  b.front = endpoints_file_value(eps, "front").value_or("");
  b.events = endpoints_file_value(eps, "events").value_or("");
  b.workers = endpoints_file_value(eps, "workers").value_or("");
  b.sink = endpoints_file_value(eps, "event-sink").value_or("");
  return b;
}

std::unique_ptr<MdpClient> client_of(zmq::context_t& ctx, std::vector<std::string> endpoints) {
  ClientOptions o;
  o.endpoints = std::move(endpoints);
  o.timeout_ms = 1000;
  o.attempts = 2;
  return std::make_unique<MdpClient>(ctx, o);
}

Value call(MdpClient& c, const std::string& service, const std::string& op, Value::Map fields = {}) {
  auto r = c.call(service, op, std::move(fields));
  if (!r) return Value(Value::Map{{"ok", Value(false)}, {"code", Value("CLIENT")}});
  return *r;
}

int64_t license_connections(zmq::context_t& ctx, const std::string& front) {
  auto c = client_of(ctx, {front});
  Value r = call(*c, "broker.control", "workers");
  const Value* services = r.find("services");
  const Value* n = services ? services->find("license") : nullptr;
  return n && n->is_int() ? n->as_int() : 0;
}

// The `computer` of every license.reserved event that arrives within `ms`.
std::set<std::string> reserved_events(zmq::socket_t& sub, int ms) {
  std::set<std::string> out;
  sub.set(zmq::sockopt::rcvtimeo, ms);
  for (;;) {
    std::vector<zmq::message_t> frames;
    zmq::message_t m;
    if (!sub.recv(m)) break;
    frames.push_back(std::move(m));
    while (frames.back().more()) {
      zmq::message_t more;
      if (!sub.recv(more)) break;
      frames.push_back(std::move(more));
    }
    if (frames.size() != 2 || frames[0].to_string() != "license.reserved") continue;
    auto ev = unpack_map(frames[1].to_string_view());
    if (ev) out.insert(str(*ev, "computer"));
  }
  return out;
}

TEST(MultiBroker, ClientFailsOverToTheSecondBrokerAndKeepsItsLicenses) {
  TempDir dir("mb");
  RedisServer redis;
  ASSERT_TRUE(redis.ok());
  int rc = 0;
  run_capture({bin("primary-vendor"), "keygen", "--out", dir.file("vendor")}, &rc);
  ASSERT_EQ(rc, 0);
  ASSERT_TRUE(ensure_signing_key(dir.file("lease.key")).ok());
  zmq::context_t ctx(1);

  Broker b1 = start_broker(dir, "broker1"), b2 = start_broker(dir, "broker2");
  ASSERT_FALSE(b1.sink.empty()) << read_file(dir.file("broker1.log"));
  ASSERT_FALSE(b2.sink.empty()) << read_file(dir.file("broker2.log"));

  const int workers = 2, slots = 4;
  std::vector<Process> licensed;
  for (int i = 0; i < workers; ++i)
    licensed.push_back(Process::start(
        {bin("primary-licensed"), "--broker", b1.workers + "," + b2.workers, "--event-sink",
         b1.sink + "," + b2.sink, "--redis", redis.url(), "--lease-key", dir.file("lease.key"), "--vendor-key",
         dir.file("vendor/vendor.pub"), "--heartbeat-ms", "200", "--slots", std::to_string(slots)},
        {}, dir.file("licensed.log")));
  for (const auto* b : {&b1, &b2})
    ASSERT_TRUE(wait_until([&] { return license_connections(ctx, b->front) >= workers * slots; }, 10s, 100ms))
        << "workers did not register with " << b->front << "\n" << read_file(dir.file("licensed.log"));

  zmq::socket_t sub2(ctx, zmq::socket_type::sub);
  sub2.set(zmq::sockopt::subscribe, "");
  sub2.connect(b2.events);

  auto c = client_of(ctx, {b1.front, b2.front});
  Value reg = call(*c, "license.control", "registration", {{"serial", Value("SN-MB")}});
  ASSERT_FALSE(str(reg, "registration_code").empty()) << to_json(reg);
  const std::string code = run_capture({bin("primary-vendor"), "unlock", "--key", dir.file("vendor/vendor.key"),
                                        "--registration", str(reg, "registration_code"), "--licenses", "100"});
  ASSERT_TRUE(ok(call(*c, "license.control", "unlock", {{"unlock_code", Value(code)}})));

  // Through broker 1; events reach broker 2's subscribers too (once the
  // subscription has reached the publisher: slow joiner).
  std::map<std::string, std::string> licenses;
  std::set<std::string> seen_on_2;
  for (int i = 0; i < 50 && seen_on_2.empty(); ++i) {
    const std::string name = "PC-" + std::to_string(i);
    Value r = call(*c, "license.control", "reserve", {{"computer", Value(name)}});
    ASSERT_TRUE(ok(r)) << to_json(r);
    licenses[name] = str(r, "license");
    seen_on_2 = reserved_events(sub2, 100);
  }
  ASSERT_FALSE(seen_on_2.empty()) << "no event from broker 2 before the failover";
  EXPECT_EQ(c->endpoint(), b1.front);
  for (const auto& [name, license] : licenses) {
    Value hb = call(*c, "license", "heartbeat", {{"computer", Value(name)}, {"license", Value(license)}});
    EXPECT_EQ(str(hb, "status"), "licensed") << to_json(hb);
  }

  b1.proc.kill();

  // The same licenses through broker 2.
  for (const auto& [name, license] : licenses) {
    Value r = call(*c, "license.control", "reserve", {{"computer", Value(name)}});
    ASSERT_TRUE(ok(r)) << to_json(r);
    EXPECT_EQ(str(r, "license"), license);
    EXPECT_FALSE(r.find("created")->as_bool());
    Value hb = call(*c, "license", "heartbeat", {{"computer", Value(name)}, {"license", Value(license)}});
    EXPECT_EQ(str(hb, "status"), "licensed") << to_json(hb);
  }
  EXPECT_EQ(c->endpoint(), b2.front);
  // New reservations go on, and their events reach broker 2's subscribers.
  reserved_events(sub2, 50);  // drain
  std::set<std::string> fresh;
  for (int i = 0; i < 10; ++i) {
    const std::string name = "AFTER-" + std::to_string(i);
    Value r = call(*c, "license.control", "reserve", {{"computer", Value(name)}});
    ASSERT_TRUE(ok(r)) << to_json(r);
    EXPECT_TRUE(r.find("created")->as_bool());
    EXPECT_LE(num(r, "reserved"), 100);
    fresh.insert(name);
    Value hb = call(*c, "license", "heartbeat", {{"computer", Value(name)}, {"license", Value(str(r, "license"))}});
    EXPECT_EQ(str(hb, "status"), "licensed") << to_json(hb);
  }
  EXPECT_EQ(reserved_events(sub2, 500), fresh);
  EXPECT_EQ(c->endpoint(), b2.front);

  for (auto& w : licensed) w.signal(SIGTERM);
  for (auto& w : licensed) EXPECT_EQ(w.wait_exit(5s).value_or(-1), 0);
  b2.proc.signal(SIGTERM);
  EXPECT_EQ(b2.proc.wait_exit(5s).value_or(-1), 0);
}

}  // namespace
}  // namespace primary::test
