// Licensing against the real processes: broker, licensing workers, Redis.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstring>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "common/codec.hpp"
#include "common/crypto.hpp"
#include "common/events.hpp"
#include "common/redis.hpp"
#include "common/schema.hpp"
#include "common/process.hpp"
#include "common/tokens.hpp"
#include "licensed/license_service.hpp"
#include "licensed/scripts.hpp"
#include "tests/support/raw_dealer.hpp"
#include "tests/support/redis_server.hpp"
#include "tests/support/stack.hpp"
#include "tests/support/util.hpp"

namespace primary::test {
namespace {

using namespace std::chrono_literals;


Value heartbeat(Stack& s, const std::string& computer, const std::string& license,
                Value::Map extra = {}) {
  Value::Map fields{{"computer", Value(computer)}, {"license", Value(license)}};
  for (auto& kv : extra) fields.push_back(std::move(kv));
  return s.call("license", "heartbeat", std::move(fields));
}

int64_t now_s() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The scripts' answers, read through their accessors, straight from Redis.
TEST(LicensingScripts, AnswersAreReadByTheirAccessors) {
  using licensing::ReserveAnswer;
  RedisServer server;
  ASSERT_TRUE(server.ok());
  auto url = parse_redis_url(server.url());
  ASSERT_TRUE(url.ok());
  Redis r(*url);
  ASSERT_TRUE(r.command({"HSET", keys::kSerial, "unlocked", "S1", "purchased", "1"}));

  auto res = r.eval(licensing::reserve_script(), {keys::kSerial, keys::kReservations, keys::kMeta, keys::kEvents},
                    {"3", "PC1", "LIC1", "1", "PC1", "LIC2", "1", "PC2", "LIC3", "2",
                     pack_who({"alice", "10.0.0.1", ""}), pack_who({"web:10.0.0.9", "127.0.0.1", "internal"}),
                     "100", "1000"});
  ASSERT_TRUE(res && res->is_array() && res->elements.size() == 2);
  const auto& out = res->elements[0].elements;
  ASSERT_EQ(out.size(), 3u);
  auto created = licensing::reserve_answer(out[0]), again = licensing::reserve_answer(out[1]),
       refused = licensing::reserve_answer(out[2]);
  ASSERT_TRUE(created && again && refused);
  EXPECT_EQ(created->status, ReserveAnswer::Status::Created);
  EXPECT_EQ(created->license, "LIC1");
  EXPECT_EQ(created->reserved, 1);
  EXPECT_EQ(created->purchased, 1);
  EXPECT_EQ(again->status, ReserveAnswer::Status::Exists);
  EXPECT_EQ(again->license, "LIC1");
  EXPECT_EQ(refused->status, ReserveAnswer::Status::NoLicensesLeft);
  EXPECT_EQ(refused->license, "");
  EXPECT_EQ(refused->reserved, 1);
  EXPECT_FALSE(licensing::reserve_answer(RedisReply{}));
  // Each reservation's events name its own requester.
  const auto& logged = res->elements[1].elements;
  ASSERT_EQ(logged.size(), 2u);
  const auto reserved_ev = event_from_entry(logged[0]), refused_ev = event_from_entry(logged[1]);
  ASSERT_TRUE(reserved_ev && refused_ev);
  EXPECT_EQ(reserved_ev->find(field::kActor)->as_str(), "alice");
  EXPECT_EQ(reserved_ev->find(field::kPeer)->as_str(), "10.0.0.1");
  EXPECT_EQ(reserved_ev->find(field::kVia), nullptr);
  EXPECT_EQ(refused_ev->find(field::kActor)->as_str(), "web:10.0.0.9");
  EXPECT_EQ(refused_ev->find(field::kVia)->as_str(), "internal");

  Value cmd(Value::Map{});
  cmd.set("id", Value(std::string("c1")));
  ASSERT_TRUE(r.command({"RPUSH", keys::command_key("PC1"), pack(cmd)}));
  auto hb = r.eval(licensing::heartbeat_script(),
                   {keys::kSerial, keys::kReservations, keys::kMeta, keys::kActive, keys::kLost, keys::kStats,
                    keys::kSkewed, keys::kRetired, keys::command_key("PC1"), keys::reject_key("PC1"), keys::sent_key("PC1"),
                    keys::command_key("PC9"), keys::reject_key("PC9"), keys::sent_key("PC9"), keys::kEvents},
                   {"60", "", "PC1", heartbeat_fingerprint("LIC1", "3.0", "peer", std::nullopt), "", "PC9",
                    heartbeat_fingerprint("LIC9", "3.0", "peer", std::nullopt), "", "100", "2000"});
  ASSERT_TRUE(hb && hb->is_array() && hb->elements.size() == 3);
  ASSERT_EQ(hb->elements[0].elements.size(), 2u);
  auto licensed = licensing::heartbeat_answer(hb->elements[0].elements[0]);
  auto unlicensed = licensing::heartbeat_answer(hb->elements[0].elements[1]);
  ASSERT_TRUE(licensed && unlicensed);
  EXPECT_TRUE(licensed->licensed);
  ASSERT_EQ(licensed->commands.size(), 1u);
  EXPECT_EQ(licensed->commands[0], pack(cmd));
  EXPECT_FALSE(unlicensed->licensed);
  EXPECT_EQ(unlicensed->reason, "NOT_RESERVED");
  EXPECT_TRUE(unlicensed->commands.empty());
  EXPECT_EQ(hb->elements[2].str, "S1");
}

TEST(Licensing, FullFlow) {
  Stack s;
  ASSERT_TRUE(s.ok());
  Value hb = heartbeat(s, "ws-01", "whatever");
  ASSERT_TRUE(ok(hb)) << to_json(hb);
  EXPECT_EQ(str(hb, "status"), "unlicensed");
  EXPECT_EQ(str(hb, "reason"), "NOT_UNLOCKED");
  EXPECT_EQ(num(hb, "next_check_s"), 60);
  EXPECT_FALSE(hb.find("upload")->as_bool());

  Value refused = s.call("license.control", "reserve", {{"computer", Value("ws-01")}});
  EXPECT_EQ(str(refused, "code"), "NOT_UNLOCKED");

  Value unlocked = s.unlock("SN-1000", 10);
  ASSERT_TRUE(ok(unlocked)) << to_json(unlocked);
  EXPECT_EQ(num(unlocked, "purchased"), 10);
  EXPECT_EQ(str(unlocked, "serial"), "SN-1000");

  Value r = s.call("license.control", "reserve", {{"computer", Value("ws-01")}});
  ASSERT_TRUE(ok(r)) << to_json(r);
  EXPECT_TRUE(r.find("created")->as_bool());
  EXPECT_EQ(str(r, "computer"), "WS-01");
  EXPECT_EQ(num(r, "reserved"), 1);
  EXPECT_EQ(num(r, "purchased"), 10);
  const std::string license = str(r, "license");
  EXPECT_GE(license.size(), 20u);  // 128 random bits

  // One computer, whatever the case.
  Value again = s.call("license.control", "reserve", {{"computer", Value("WS-01")}});
  EXPECT_FALSE(again.find("created")->as_bool());
  EXPECT_EQ(str(again, "license"), license);
  EXPECT_EQ(num(again, "reserved"), 1);

  hb = heartbeat(s, "Ws-01", license, {{"version", Value("2.1.0")}});
  ASSERT_EQ(str(hb, "status"), "licensed") << to_json(hb);
  EXPECT_EQ(num(hb, "next_check_s"), 14400);
  EXPECT_TRUE(hb.find("upload")->as_bool());
  EXPECT_NEAR(num(hb, "server_time"), now_s(), 5);
  auto lease = verify_lease(str(hb, "lease"), s.lease_pub(), now_s());
  ASSERT_TRUE(lease.ok()) << lease.error().message;
  EXPECT_EQ(lease->computer, "WS-01");
  EXPECT_EQ(lease->license, license);
  EXPECT_EQ(lease->serial, "SN-1000");
  EXPECT_EQ(lease->expires, num(hb, "lease_expires"));
  EXPECT_GE(lease->expires - now_s(), 14400 + 3600 - 120);
  EXPECT_FALSE(verify_lease(str(hb, "lease"), s.lease_pub(), lease->expires + kLeaseToleranceS).ok());
  std::string forged = str(hb, "lease");
  forged[5] = forged[5] == 'A' ? 'B' : 'A';
  EXPECT_FALSE(verify_lease(forged, s.lease_pub(), now_s()).ok());

  hb = heartbeat(s, "ws-01", license + "x");
  EXPECT_EQ(str(hb, "reason"), "LICENSE_MISMATCH");
  EXPECT_EQ(num(hb, "next_check_s"), 60);
  hb = heartbeat(s, "ws-99", license);
  EXPECT_EQ(str(hb, "reason"), "NOT_RESERVED");

  Value info = s.call("license.control", "setup_info", {{"computer", Value("ws-01")}});
  ASSERT_TRUE(ok(info)) << to_json(info);
  EXPECT_EQ(str(info, "license"), license);
  EXPECT_EQ(str(info, "serial"), "SN-1000");
  EXPECT_EQ(base64url_decode(str(info, "lease_key")).value_or(""), s.lease_pub());
  EXPECT_EQ(str(s.call("license.control", "setup_info", {{"computer", Value("nobody")}}), "code"),
            "NOT_FOUND");

  Value reg = s.call("license.control", "registration");
  EXPECT_EQ(str(reg, "serial"), "SN-1000");
  // Another serial cannot be registered once one is unlocked.
  EXPECT_EQ(str(s.call("license.control", "registration", {{"serial", Value("SN-2")}}), "code"),
            "BAD_REQUEST");
}

class UnlockCodes : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(s.ok());
    Value reg = s.call("license.control", "registration", {{"serial", Value("SN-77")}});
    registration = str(reg, "registration_code");
    ASSERT_FALSE(registration.empty()) << to_json(reg);
  }
  Value unlock(const std::string& code) {
    return s.call("license.control", "unlock", {{"unlock_code", Value(code)}});
  }
  std::string vendor_secret() {
    return read_key_file(s.vendor_key_file(), 64, true).value();
  }
  Stack s;
  std::string registration;
};

TEST_F(UnlockCodes, EveryKindOfBadCodeIsRefused) {
  const int64_t t0 = 1'700'000'000'000;
  // Signed by another vendor key.
  const SignKeypair other = sign_keypair();
  EXPECT_EQ(str(unlock(make_unlock_code({"SN-77", 5, registration, t0}, other.secret_key)), "code"),
            "INVALID_UNLOCK_CODE");
  // Any character changed.
  const std::string good = s.vendor_code(registration, 5, t0);
  ASSERT_FALSE(good.empty());
  int refused = 0, tried = 0;
  for (size_t i = 0; i < good.size(); ++i) {
    if (good[i] == '.') continue;
    std::string bad = good;
    bad[i] = good[i] == 'A' ? 'B' : 'A';
    ++tried;
    const std::string code = str(unlock(bad), "code");
    refused += (code == "INVALID_UNLOCK_CODE" || code == "BAD_REQUEST");
  }
  EXPECT_EQ(refused, tried);
  // Another server's registration code for the same serial.
  EXPECT_EQ(str(unlock(make_unlock_code({"SN-77", 5, registration_code("SN-77", "another-install"), t0},
                                        vendor_secret())),
                "code"),
            "INVALID_UNLOCK_CODE");
  // Another serial than the one registered.
  EXPECT_EQ(str(unlock(make_unlock_code({"SN-78", 5, registration, t0}, vendor_secret())), "code"),
            "INVALID_UNLOCK_CODE");
  // Not a code at all.
  EXPECT_EQ(str(unlock("hello"), "code"), "INVALID_UNLOCK_CODE");
  // Nothing got through.
  EXPECT_EQ(str(s.call("license.control", "reserve", {{"computer", Value("a")}}), "code"),
            "NOT_UNLOCKED");

  // The good one works once; replaying it, or an older one, is refused.
  Value first = unlock(good);
  ASSERT_TRUE(ok(first)) << to_json(first);
  EXPECT_EQ(num(first, "purchased"), 5);
  EXPECT_EQ(str(unlock(good), "code"), "INVALID_UNLOCK_CODE");
  EXPECT_EQ(str(unlock(s.vendor_code(registration, 50, t0 - 1000)), "code"), "INVALID_UNLOCK_CODE");
}

TEST_F(UnlockCodes, LaterCodeAddsLicenses) {
  const int64_t t0 = 1'700'000'000'000;
  ASSERT_TRUE(ok(unlock(s.vendor_code(registration, 2, t0))));
  for (const char* name : {"a", "b"})
    ASSERT_TRUE(ok(s.call("license.control", "reserve", {{"computer", Value(name)}})));
  EXPECT_EQ(str(s.call("license.control", "reserve", {{"computer", Value("c")}}), "code"),
            "NO_LICENSES_LEFT");
  Value more = unlock(s.vendor_code(registration, 3, t0 + 1));
  ASSERT_TRUE(ok(more)) << to_json(more);
  EXPECT_EQ(num(more, "purchased"), 3);
  Value c = s.call("license.control", "reserve", {{"computer", Value("c")}});
  ASSERT_TRUE(ok(c)) << to_json(c);
  EXPECT_EQ(num(c, "reserved"), 3);
  EXPECT_EQ(str(s.call("license.control", "reserve", {{"computer", Value("d")}}), "code"),
            "NO_LICENSES_LEFT");
}

TEST(Licensing, WithoutVendorKeyUnlockSaysSo) {
  StackOptions o;
  o.vendor_key = false;
  Stack s(o);
  ASSERT_TRUE(s.ok());
  Value reg = s.call("license.control", "registration", {{"serial", Value("SN-1")}});
  Value r = s.call("license.control", "unlock",
                   {{"unlock_code", Value(s.vendor_code(str(reg, "registration_code"), 3))}});
  EXPECT_FALSE(ok(r));
  EXPECT_EQ(str(r, "code"), "UNAVAILABLE");
  EXPECT_NE(str(r, "message").find("vendor-key"), std::string::npos) << str(r, "message");
}

// The cap holds under a race: 4 workers, 8 connections, 2,000 requests over
// 600 names (with repeats) against 500 licenses.
TEST(Licensing, ExactCapUnderRace) {
  StackOptions o;
  o.license_workers = 4;
  Stack s(o);
  ASSERT_TRUE(s.ok());
  ASSERT_TRUE(ok(s.unlock("SN-RACE", 500)));

  std::mutex mu;
  std::map<std::string, std::set<std::string>> licenses_of;  // name -> licenses seen
  std::map<std::string, int> refusals;                       // code -> count
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      auto c = s.client(10000);
      for (int i = 0; i < 250; ++i) {
        const int n = (t * 250 + i) * 7919 % 600;  // spread, with repeats
        const std::string name = "pc-" + std::to_string(n);
        auto r = c->call("license.control", "reserve", {{"computer", Value(name)}});
        std::lock_guard<std::mutex> lock(mu);
        if (!r) {
          ++failures;
          continue;
        }
        if (ok(*r)) licenses_of[normalize_computer_name(name)].insert(str(*r, "license"));
        else ++refusals[str(*r, "code")];
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(licenses_of.size(), 500u);
  std::set<std::string> distinct;
  for (const auto& [name, lics] : licenses_of) {
    EXPECT_EQ(lics.size(), 1u) << name << " got more than one license";
    distinct.insert(*lics.begin());
  }
  EXPECT_EQ(distinct.size(), 500u);
  for (const auto& [code, n] : refusals) EXPECT_EQ(code, "NO_LICENSES_LEFT") << n;
  Value last = s.call("license.control", "reserve", {{"computer", Value("one-more")}});
  EXPECT_EQ(num(last, "reserved"), 500);
  EXPECT_EQ(num(last, "purchased"), 500);
}

TEST(Licensing, SweepMarksLostAndReturned) {
  StackOptions o;
  o.licensed_args = {"--check-interval-s", "1", "--grace-s", "1"};
  Stack s(o);
  ASSERT_TRUE(s.ok());
  ASSERT_TRUE(ok(s.unlock("SN-S", 5)));
  const std::string lic = str(s.call("license.control", "reserve", {{"computer", Value("pc1")}}), "license");
  Value hb = heartbeat(s, "pc1", lic);
  ASSERT_EQ(str(hb, "status"), "licensed");
  EXPECT_EQ(num(hb, "next_check_s"), 1);

  zmq::socket_t sub(s.ctx(), zmq::socket_type::sub);
  sub.set(zmq::sockopt::subscribe, "client.");
  sub.connect(s.events());
  std::vector<std::string> seen;
  auto drain = [&](std::chrono::milliseconds for_how_long) {
    const auto end = std::chrono::steady_clock::now() + for_how_long;
    while (std::chrono::steady_clock::now() < end) {
      zmq::message_t topic, body;
      sub.set(zmq::sockopt::rcvtimeo, 100);
      if (!sub.recv(topic)) continue;
      (void)sub.recv(body);
      auto ev = unpack_map(std::string_view(static_cast<char*>(body.data()), body.size()));
      if (ev) seen.push_back(str(*ev, "type") + ":" + str(*ev, "computer"));
    }
  };
  // Silent for longer than check + grace: lost (the sweep runs every 200 ms).
  drain(3500ms);
  EXPECT_NE(std::find(seen.begin(), seen.end(), "client.lost:PC1"), seen.end());
  hb = heartbeat(s, "pc1", lic);
  EXPECT_EQ(str(hb, "status"), "licensed");
  drain(300ms);
  EXPECT_NE(std::find(seen.begin(), seen.end(), "client.returned:PC1"), seen.end());
}

TEST(Licensing, CommandDeliveredOnceAndResultRecorded) {
  Stack s;
  ASSERT_TRUE(s.ok());
  ASSERT_TRUE(ok(s.unlock("SN-C", 5)));
  const std::string lic = str(s.call("license.control", "reserve", {{"computer", Value("pc1")}}), "license");
  EXPECT_EQ(str(s.call("license.control", "command",
                       {{"computer", Value("ghost")}, {"command", Value("restart")}}),
                "code"),
            "NOT_FOUND");
  Value q = s.call("license.control", "command",
                   {{"computer", Value("PC1")}, {"command", Value("collect-logs")},
                    {"args", Value(Value::Map{{"days", Value(3)}})}});
  ASSERT_TRUE(ok(q)) << to_json(q);
  const std::string id = str(q, "id");

  Value hb = heartbeat(s, "pc1", lic);
  const Value* cmds = hb.find("commands");
  ASSERT_TRUE(cmds && cmds->is_array()) << to_json(hb);
  ASSERT_EQ(cmds->as_array().size(), 1u);
  EXPECT_EQ(str(cmds->as_array()[0], "id"), id);
  EXPECT_EQ(str(cmds->as_array()[0], "command"), "collect-logs");
  EXPECT_EQ(num(*cmds->as_array()[0].find("args"), "days"), 3);
  // Delivered once.
  hb = heartbeat(s, "pc1", lic);
  EXPECT_EQ(hb.find("commands"), nullptr) << to_json(hb);
  // The result comes back in a later heartbeat and lands in the activity log.
  hb = heartbeat(s, "pc1", lic,
                 {{"results", Value(Value::Array{Value(Value::Map{
                                      {"id", Value(id)}, {"ok", Value(true)}, {"detail", Value("12 files")}})})}});
  ASSERT_EQ(str(hb, "status"), "licensed");
  Redis redis(*parse_redis_url(s.redis().url()));
  auto log = redis.command({"XRANGE", "ps:events", "-", "+"});
  ASSERT_TRUE(log.ok());
  bool found = false;
  for (const auto& entry : log->elements)
    for (const auto& f : entry.elements[1].elements)
      if (f.str == "command.done") found = true;
  EXPECT_TRUE(found);
  // The same result again (a retry after a lost reply) and a result for a
  // command never sent are not recorded.
  hb = heartbeat(s, "pc1", lic,
                 {{"results", Value(Value::Array{
                                  Value(Value::Map{{"id", Value(id)}, {"ok", Value(true)}}),
                                  Value(Value::Map{{"id", Value("never-sent")}, {"ok", Value(false)}})})}});
  ASSERT_EQ(str(hb, "status"), "licensed");
  auto again = redis.command({"XRANGE", "ps:events", "-", "+"});
  int done = 0;
  for (const auto& entry : again->elements)
    for (const auto& f : entry.elements[1].elements)
      if (f.str == "command.done") ++done;
  EXPECT_EQ(done, 1);
  // Malformed results are refused, whole.
  hb = heartbeat(s, "pc1", lic, {{"results", Value(Value::Array{Value(Value::Map{{"ok", Value(true)}})})}});
  EXPECT_EQ(str(hb, "code"), "BAD_REQUEST");
  EXPECT_NE(str(hb, "message").find("id"), std::string::npos);
}

TEST(Licensing, RejectedHeartbeatsAreRateLimitedInTheLog) {
  Stack s;
  ASSERT_TRUE(s.ok());
  ASSERT_TRUE(ok(s.unlock("SN-R", 1)));
  for (int i = 0; i < 50; ++i) heartbeat(s, "intruder", "bogus");
  Redis redis(*parse_redis_url(s.redis().url()));
  auto log = redis.command({"XRANGE", "ps:events", "-", "+"});
  ASSERT_TRUE(log.ok());
  int rejected = 0;
  for (const auto& entry : log->elements)
    for (const auto& f : entry.elements[1].elements)
      if (f.str == "client.rejected") ++rejected;
  EXPECT_EQ(rejected, 1);
  auto stats = redis.command({"HGET", "ps:stats", "rejected"});
  EXPECT_EQ(stats->str, "50");
}

// Heartbeats that arrive together go to Redis as one script call; each
// still gets its own answer, in its own right, whatever its neighbours.
TEST(Licensing, HeartbeatsOfOneBatchAreAnsweredEachOnItsOwn) {
  StackOptions o;
  o.license_slots = 64;  // the whole burst fits one connection's credit
  Stack s(o);
  ASSERT_TRUE(s.ok());
  ASSERT_TRUE(ok(s.unlock("SN-BATCH", 10)));
  std::vector<std::string> licenses;
  for (int i = 0; i < 5; ++i) {
    Value r = s.call("license.control", "reserve", {{"computer", Value("batch-" + std::to_string(i))}});
    ASSERT_TRUE(ok(r)) << to_json(r);
    licenses.push_back(str(r, "license"));
  }
  Redis redis(*parse_redis_url(s.redis().url()));
  ASSERT_TRUE(redis.command({"CONFIG", "RESETSTAT"}).ok());

  // 60 heartbeats in one burst on one connection: the good, a wrong
  // license, an unknown computer, and the same good computer again.
  constexpr int kBurst = 60;
  test::RawDealer dealer(s.ctx(), s.front());
  for (int i = 0; i < kBurst; ++i) {
    const int pc = i % 5;
    Value::Map fields{{"rid", Value(int64_t{i})}};
    switch (i % 4) {
      case 0:
      case 3:
        fields.emplace_back("computer", Value("batch-" + std::to_string(pc)));
        fields.emplace_back("license", Value(licenses[pc]));
        break;
      case 1:
        fields.emplace_back("computer", Value("batch-" + std::to_string(pc)));
        fields.emplace_back("license", Value(licenses[(pc + 1) % 5]));
        break;
      default:
        fields.emplace_back("computer", Value("stranger-" + std::to_string(i)));
        fields.emplace_back("license", Value(licenses[pc]));
    }
    dealer.send_frames({"", "MDPC01", "license", encode_request("heartbeat", std::move(fields))});
  }
  std::map<int64_t, Value> by_rid;
  for (int i = 0; i < kBurst; ++i) {
    auto frames = dealer.recv(10s);
    ASSERT_TRUE(frames) << "reply " << i << " of " << kBurst << " missing";
    ASSERT_EQ(frames->size(), 4u);
    auto body = unpack_map((*frames)[3]);
    ASSERT_TRUE(body.ok());
    by_rid[num(*body, "rid")] = *body;
  }
  ASSERT_EQ(by_rid.size(), static_cast<size_t>(kBurst));
  int rejected = 0;
  for (const auto& [rid, hb] : by_rid) {
    ASSERT_TRUE(ok(hb)) << rid << ": " << to_json(hb);
    switch (rid % 4) {
      case 0:
      case 3: {
        EXPECT_EQ(str(hb, "status"), "licensed") << rid << ": " << to_json(hb);
        auto lease = verify_lease(str(hb, "lease"), s.lease_pub(), now_s());
        ASSERT_TRUE(lease.ok()) << rid << ": " << lease.error().message;
        EXPECT_EQ(lease->computer, "BATCH-" + std::to_string(rid % 5));
        EXPECT_EQ(lease->license, licenses[rid % 5]);
        break;
      }
      case 1:
        ++rejected;
        EXPECT_EQ(str(hb, "reason"), "LICENSE_MISMATCH") << rid << ": " << to_json(hb);
        break;
      default:
        ++rejected;
        EXPECT_EQ(str(hb, "reason"), "NOT_RESERVED") << rid << ": " << to_json(hb);
    }
  }
  EXPECT_EQ(redis.command({"HGET", "ps:stats", "rejected"})->str, std::to_string(rejected));
  // Fewer script calls than heartbeats: some arrived together and shared one.
  auto stats = redis.command({"INFO", "commandstats"});
  ASSERT_TRUE(stats.ok());
  const auto at = stats->str.find("cmdstat_evalsha:calls=");
  ASSERT_NE(at, std::string::npos) << stats->str;
  const int64_t calls = std::atoll(stats->str.c_str() + at + std::strlen("cmdstat_evalsha:calls="));
  EXPECT_GT(calls, 0);
  EXPECT_LT(calls, kBurst) << "every heartbeat of the burst had a script call of its own";
}

// A reservation's meta entry carries a copy of its license (`l`), which is
// what heartbeats verify against; reservations stored before that copy
// existed are verified against ps:res and get the copy at their next write.
TEST(Licensing, HeartbeatsVerifyWithOrWithoutTheLicenseCopyInMeta) {
  Stack s;
  ASSERT_TRUE(s.ok());
  ASSERT_TRUE(ok(s.unlock("SN-META", 2)));
  Redis redis(*parse_redis_url(s.redis().url()));
  auto meta = [&](const std::string& name) {
    auto raw = redis.command({"HGET", "ps:meta", name});
    if (!raw.ok() || !raw->is_str()) return Value();
    auto v = unpack_value(raw->str);
    return v ? *v : Value();
  };
  Value r = s.call("license.control", "reserve", {{"computer", Value("new-1")}});
  ASSERT_TRUE(ok(r)) << to_json(r);
  EXPECT_EQ(str(meta("NEW-1"), "l"), str(r, "license")) << "a new reservation's meta has its license";

  r = s.call("license.control", "reserve", {{"computer", Value("old-1")}});
  ASSERT_TRUE(ok(r)) << to_json(r);
  const std::string license = str(r, "license");
  // As stored by an earlier version: no license copy.
  ASSERT_TRUE(redis.command({"HSET", "ps:meta", "OLD-1", pack(Value(Value::Map{{"r", Value(1000)}}))}).ok());
  EXPECT_EQ(str(heartbeat(s, "old-1", license + "x"), "reason"), "LICENSE_MISMATCH");
  EXPECT_EQ(str(heartbeat(s, "old-1", license), "status"), "licensed");
  const Value m = meta("OLD-1");
  EXPECT_EQ(str(m, "l"), license) << "the first write after it adds the copy";
  EXPECT_EQ(num(m, "r"), 1000) << "and keeps what was there";
  EXPECT_EQ(str(heartbeat(s, "old-1", license), "status"), "licensed");
  EXPECT_EQ(str(heartbeat(s, "old-1", license + "x"), "reason"), "LICENSE_MISMATCH");
  EXPECT_EQ(str(heartbeat(s, "nobody", license), "reason"), "NOT_RESERVED");
}

// A worker signs the leases of a batch while Redis runs it, guessing from
// the serial of its last answer and the license each Client sent. The
// service alone, on a real Redis: a guess that turns out wrong (a wrong
// license, an unknown computer) is never handed out, a right one is, and a
// computer answered unlicensed gets no lease signed ahead again.
TEST(Licensing, LeasesSignedAheadAreHandedOutOnlyWhenLicensed) {
  RedisServer rs;
  ASSERT_TRUE(rs.ok());
  Redis redis(*parse_redis_url(rs.url()));
  zmq::context_t ctx(1);
  EventPublisher events(ctx, {});
  const SignKeypair lease_key = sign_keypair();
  LicenseConfig lc;
  lc.lease_keys = LeaseKeySet{{LeaseKey{lease_key.secret_key}}};
  int64_t now_ms = 1'800'000'000'000;
  LicenseService service(redis, lc, events, [&] { return now_ms; });
  std::map<std::string, int64_t> counted;
  service.count_with([&](std::string_view name, int64_t n) { counted[std::string(name)] += n; });
  ASSERT_TRUE(redis.command({"HSET", "ps:serial", "unlocked", "SN-AHEAD", "purchased", "10"}).ok());

  auto request = [](std::string_view service_name, std::string_view op, Value::Map fields) {
    Value rid;
    auto r = decode_request(service_name, encode_request(op, std::move(fields)), CodecLimits{}, &rid);
    EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message);
    return *r;
  };
  std::vector<Request> reserves;
  for (const char* name : {"AHEAD-1", "AHEAD-2"})
    reserves.push_back(request("license.control", "reserve", {{"computer", Value(name)}}));
  auto reserved = service.handle_control(reserves);
  ASSERT_TRUE(reserved[0].ok && reserved[1].ok);
  const std::string lic1 = reserved[0].fields.find("license")->as_str();
  const std::string lic2 = reserved[1].fields.find("license")->as_str();
  auto heartbeats = [&](const std::vector<std::pair<std::string, std::string>>& batch) {
    std::vector<Request> reqs;
    for (const auto& [name, license] : batch)
      reqs.push_back(request("license", "heartbeat", {{"computer", Value(name)}, {"license", Value(license)}}));
    return service.handle_license(reqs);
  };
  auto lease_of = [&](const Reply& r) -> std::string {
    const Value* lease = r.fields.find("lease");
    return lease ? lease->as_str() : std::string();
  };

  // The first batch: no answer yet, so no serial to guess with.
  auto first = heartbeats({{"AHEAD-1", lic1}});
  ASSERT_TRUE(first[0].ok);
  EXPECT_FALSE(lease_of(first[0]).empty());
  EXPECT_EQ(counted["leases_signed_ahead"], 0);

  // A new quantum: every lease is new. AHEAD-1 right, AHEAD-2 with the
  // other's license, a stranger: three guesses, one right.
  now_ms += 60'000;
  auto batch = heartbeats({{"AHEAD-1", lic1}, {"AHEAD-2", lic1}, {"STRANGER", lic2}});
  EXPECT_EQ(counted["leases_signed_ahead"], 3);
  EXPECT_EQ(counted["leases_signed_ahead_used"], 1);
  EXPECT_EQ(str(batch[0].fields, "status"), "licensed");
  auto lease = verify_lease(lease_of(batch[0]), lease_key.public_key, now_ms / 1000);
  ASSERT_TRUE(lease.ok()) << lease.error().message;
  EXPECT_EQ(lease->computer, "AHEAD-1");
  EXPECT_EQ(lease->license, lic1);
  EXPECT_EQ(lease->serial, "SN-AHEAD");
  EXPECT_EQ(lease->issued, now_ms / 1000 - now_ms / 1000 % service.lease_quantum_s());
  EXPECT_EQ(str(batch[1].fields, "reason"), "LICENSE_MISMATCH");
  EXPECT_EQ(batch[1].fields.find("lease"), nullptr);
  EXPECT_EQ(str(batch[2].fields, "reason"), "NOT_RESERVED");
  EXPECT_EQ(batch[2].fields.find("lease"), nullptr);

  // The same quantum: AHEAD-1's lease is cached, and the two answered
  // unlicensed are not guessed again, even with the right license now.
  batch = heartbeats({{"AHEAD-1", lic1}, {"AHEAD-2", lic2}, {"STRANGER", lic2}});
  EXPECT_EQ(counted["leases_signed_ahead"], 3);
  EXPECT_EQ(lease_of(batch[0]), lease_of(heartbeats({{"AHEAD-1", lic1}})[0]));
  ASSERT_EQ(str(batch[1].fields, "status"), "licensed");
  lease = verify_lease(lease_of(batch[1]), lease_key.public_key, now_ms / 1000);
  ASSERT_TRUE(lease.ok()) << lease.error().message;
  EXPECT_EQ(lease->license, lic2);

  // Licensed again, AHEAD-2 is guessed again in the next quantum.
  now_ms += 60'000;
  batch = heartbeats({{"AHEAD-2", lic2}});
  EXPECT_EQ(counted["leases_signed_ahead"], 4);
  EXPECT_EQ(counted["leases_signed_ahead_used"], 2);
  EXPECT_TRUE(verify_lease(lease_of(batch[0]), lease_key.public_key, now_ms / 1000).ok());
}

// The last-seen time is written at a computer's first heartbeat in each
// bucket of the quantum (check interval / 240, at least 1 s): faster
// heartbeats cost no write.
TEST(Licensing, LastSeenIsRewrittenOncePerQuantum) {
  StackOptions o;
  o.licensed_args = {"--check-interval-s", "2", "--grace-s", "60"};  // quantum 1 s
  Stack s(o);
  ASSERT_TRUE(s.ok());
  ASSERT_TRUE(ok(s.unlock("SN-SEEN", 1)));
  Value r = s.call("license.control", "reserve", {{"computer", Value("seen-1")}});
  ASSERT_TRUE(ok(r)) << to_json(r);
  const std::string license = str(r, "license");
  Redis redis(*parse_redis_url(s.redis().url()));
  auto seen = [&] {
    auto score = redis.command({"ZSCORE", "ps:active", "SEEN-1"});
    return score.ok() && score->is_str() ? std::atoll(score->str.c_str()) : int64_t{-1};
  };

  ASSERT_EQ(str(heartbeat(s, "seen-1", license), "status"), "licensed");
  const int64_t t1 = seen();
  ASSERT_GT(t1, 0);
  ASSERT_EQ(str(heartbeat(s, "seen-1", license), "status"), "licensed");
  if (unix_ms() < (t1 / 1000 + 1) * 1000) {  // the second one was in the same 1 s bucket
    EXPECT_EQ(seen(), t1) << "a heartbeat within the quantum rewrote the last-seen time";
  }

  std::this_thread::sleep_for(1100ms);
  ASSERT_EQ(str(heartbeat(s, "seen-1", license), "status"), "licensed");
  const int64_t t2 = seen();
  EXPECT_GE(t2, t1 + 1000);

  // --last-seen-quantum-ms 0: every heartbeat writes.
  for (auto& w : s.license_workers) w.signal(SIGTERM);
  for (auto& w : s.license_workers) ASSERT_TRUE(w.wait_exit(5s).has_value());
  s.license_workers.clear();
  s.start_license_worker({"--check-interval-s", "2", "--grace-s", "60", "--last-seen-quantum-ms", "0"});
  ASSERT_TRUE(s.wait_workers("license", 8));
  std::this_thread::sleep_for(5ms);
  ASSERT_EQ(str(heartbeat(s, "seen-1", license), "status"), "licensed");
  EXPECT_GT(seen(), t2);
}

// A heartbeat that changes nothing (same license, version and peer, last
// seen already written in this bucket) is answered from the computer's meta
// entry alone: its bytes from `l` to `s` are what heartbeat_fingerprint()
// makes. Queuing a command and being marked lost both take the bucket away,
// so the next heartbeat, in the same bucket, still gets its command and
// still returns the computer from the lost set.
TEST(Licensing, UnchangedHeartbeatsAreAnsweredFromTheFingerprint) {
  constexpr int64_t kQuantumMs = 3600000;
  StackOptions o;
  o.licensed_args = {"--check-interval-s", "1", "--grace-s", "0", "--last-seen-quantum-ms",
                     std::to_string(kQuantumMs)};
  Stack s(o);
  ASSERT_TRUE(s.ok());
  ASSERT_TRUE(ok(s.unlock("SN-FP", 2)));
  const std::string lic = str(s.call("license.control", "reserve", {{"computer", Value("fp-1")}}), "license");
  Redis redis(*parse_redis_url(s.redis().url()));
  auto raw_meta = [&] {
    auto raw = redis.command({"HGET", "ps:meta", "FP-1"});
    return raw.ok() && raw->is_str() ? raw->str : std::string();
  };
  auto in = [&](const char* key) {
    auto score = redis.command({"ZSCORE", key, "FP-1"});
    return score.ok() && score->is_str();
  };
  auto events = [&](const std::string& type) {
    int n = 0;
    auto log = redis.command({"XRANGE", "ps:events", "-", "+"});
    for (const auto& entry : log->elements)
      for (const auto& f : entry.elements[1].elements)
        if (f.str == type) ++n;
    return n;
  };
  const Value::Map v3{{"version", Value("3.0")}};

  ASSERT_EQ(str(heartbeat(s, "fp-1", lic, v3), "status"), "licensed");
  std::string raw = raw_meta();
  auto meta = unpack_value(raw);
  ASSERT_TRUE(meta && meta->is_map()) << "no meta entry";
  const int64_t bucket = num(*meta, "s");
  EXPECT_LE(unix_ms() / kQuantumMs - bucket, 1) << "s is the last-seen bucket";
  const std::string fp = heartbeat_fingerprint(lic, "3.0", str(*meta, "p"), bucket);
  ASSERT_GT(raw.size(), fp.size());
  EXPECT_EQ(raw.substr(1, fp.size()), fp) << "the meta entry does not start with the worker's fingerprint";
  EXPECT_EQ(num(*meta, "r") > 0 && num(*meta, "f") > 0, true) << to_json(*meta);

  // Unchanged: nothing is written.
  ASSERT_EQ(str(heartbeat(s, "fp-1", lic, v3), "status"), "licensed");
  EXPECT_EQ(raw_meta(), raw);

  // A command queued now is delivered by the next heartbeat, in this bucket.
  Value q = s.call("license.control", "command", {{"computer", Value("fp-1")}, {"command", Value("ping")}});
  ASSERT_TRUE(ok(q)) << to_json(q);
  Value hb = heartbeat(s, "fp-1", lic, v3);
  const Value* cmds = hb.find("commands");
  ASSERT_TRUE(cmds && cmds->is_array() && cmds->as_array().size() == 1) << to_json(hb);
  EXPECT_EQ(str(cmds->as_array()[0], "id"), str(q, "id"));
  hb = heartbeat(s, "fp-1", lic, v3);
  EXPECT_EQ(hb.find("commands"), nullptr) << to_json(hb);
  EXPECT_EQ(raw_meta().substr(1, fp.size()), fp) << "after delivery the bucket is back";

  // A new version is recorded.
  ASSERT_EQ(str(heartbeat(s, "fp-1", lic, {{"version", Value("3.1")}}), "status"), "licensed");
  meta = unpack_value(raw_meta());
  EXPECT_EQ(str(*meta, "v"), "3.1");
  ASSERT_EQ(str(heartbeat(s, "fp-1", lic, v3), "status"), "licensed");

  // Silent past check + grace: the sweep (every 200 ms) marks it lost, and
  // the next heartbeat, in the same hour-long bucket, brings it back.
  const auto until = std::chrono::steady_clock::now() + 10s;
  while (!in("ps:lost") && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(100ms);
  ASSERT_TRUE(in("ps:lost")) << "the sweep did not mark the computer lost";
  ASSERT_FALSE(in("ps:active"));
  EXPECT_EQ(events("client.returned"), 0);
  ASSERT_EQ(str(heartbeat(s, "fp-1", lic, v3), "status"), "licensed");
  EXPECT_TRUE(in("ps:active"));
  EXPECT_FALSE(in("ps:lost"));
  EXPECT_EQ(events("client.returned"), 1);
  EXPECT_EQ(raw_meta().substr(1, fp.size()), fp);
  EXPECT_EQ(events("client.licensed"), 1) << "first verification is logged once";
}


// The server's wall clock jumps a day forward between two sweeps (the
// clocks given to the service, not the machine's): the sweep skips that
// run, says so once, and no computer is lost because of the jump; one that
// stays silent is lost on time in the new clock.
TEST(Licensing, ASweepAfterAServerClockJumpMarksNobodyLost) {
  RedisServer rs;
  ASSERT_TRUE(rs.ok());
  Redis redis(*parse_redis_url(rs.url()));
  zmq::context_t ctx(1);
  EventPublisher events(ctx, {});
  LicenseConfig lc;
  lc.lease_keys = LeaseKeySet{{LeaseKey{sign_keypair().secret_key}}};
  int64_t wall_ms = 1'800'000'000'000, steady_ms = 5'000;
  auto advance = [&](int64_t ms) { wall_ms += ms, steady_ms += ms; };
  LicenseService service(redis, lc, events, [&] { return wall_ms; }, [&] { return steady_ms; });
  ASSERT_TRUE(redis.command({"HSET", "ps:serial", "unlocked", "SN-JUMP", "purchased", "10"}).ok());
  auto request = [](std::string_view service_name, std::string_view op, Value::Map fields) {
    Value rid;
    auto r = decode_request(service_name, encode_request(op, std::move(fields)), CodecLimits{}, &rid);
    EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message);
    return *r;
  };
  std::vector<Request> reserve{request("license.control", "reserve", {{"computer", Value("JUMP-1")}})};
  auto reserved = service.handle_control(reserve);
  ASSERT_TRUE(reserved[0].ok);
  const std::string lic = reserved[0].fields.find("license")->as_str();
  std::vector<Request> hb{request("license", "heartbeat", {{"computer", Value("JUMP-1")}, {"license", Value(lic)}})};
  ASSERT_EQ(str(service.handle_license(hb)[0].fields, "status"), "licensed");
  auto count = [&](const std::string& type) {
    int n = 0;
    auto log = redis.command({"XRANGE", "ps:events", "-", "+"});
    for (const auto& entry : log->elements)
      for (const auto& f : entry.elements[1].elements)
        if (f.str == type) ++n;
    return n;
  };
  auto sweep = [&] {
    redis.command({"DEL", "ps:sweep:lock"});  // one sweep per call, however close together
    return service.sweep();
  };
  const int64_t interval = service.sweep_interval_ms();

  EXPECT_EQ(sweep(), 0);
  advance(interval);
  wall_ms += 24 * 3600 * 1000;  // the jump
  EXPECT_EQ(sweep(), 0);
  EXPECT_EQ(count("server.clock_jump"), 1);
  auto log = redis.command({"XRANGE", "ps:events", "-", "+"});
  std::optional<Value> jump;
  for (const auto& entry : log->elements) {
    const auto& f = entry.elements[1].elements;
    for (size_t i = 0; i + 1 < f.size(); i += 2)
      if (f[i].str == "data" && f[i + 1].str.find("wall_delta_s") != std::string::npos)
        if (auto v = unpack_value(f[i + 1].str)) jump = *v;
  }
  ASSERT_TRUE(jump && jump->is_map());
  EXPECT_EQ(jump->find("wall_delta_s")->as_int(), (24 * 3600 * 1000 + interval) / 1000);
  EXPECT_EQ(jump->find("steady_delta_s")->as_int(), interval / 1000);
  // The following runs sweep again, against the new clock: the computer,
  // seen a minute before the jump in the old clock, is not lost.
  for (int i = 0; i < 5; ++i) {
    advance(interval);
    EXPECT_EQ(sweep(), 0);
  }
  EXPECT_EQ(count("client.lost"), 0);
  EXPECT_EQ(count("server.clock_jump"), 1);
  // Silent for check + grace in the new clock: lost, as without a jump.
  advance((lc.check_interval_s + lc.grace_s) * 1000 - 6 * interval - 1000);
  EXPECT_EQ(sweep(), 0);
  advance(2000);
  EXPECT_EQ(sweep(), 1);
  EXPECT_EQ(count("client.lost"), 1);
}
}  // namespace
}  // namespace primary::test
