// A seat's whole life against the real processes: vendor-signed retire and
// transfer codes made by the real primary-vendor, applied by the licensing
// workers over a real Redis; every refusal; the cap under a transfer racing
// reservations; durability across SIGKILL of the whole stack.
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "common/client.hpp"
#include "common/codec.hpp"
#include "common/crypto.hpp"
#include "common/keys.hpp"
#include "common/process.hpp"
#include "common/redis.hpp"
#include "common/redis_url.hpp"
#include "common/schema.hpp"
#include "common/tokens.hpp"
#include "tests/support/process.hpp"
#include "tests/support/procfs.hpp"
#include "tests/support/stack.hpp"
#include "tests/support/temp_dir.hpp"
#include "tests/support/util.hpp"

namespace primary::test {
namespace {

using namespace std::chrono_literals;

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// A seat code from the real vendor tool; extra flags (--issued, --valid-days) at the end.
std::string vendor_seat_code(const std::string& key_file, const std::string& kind, const std::string& registration,
                             const std::string& computer, const std::string& license, const std::string& to = "",
                             std::vector<std::string> extra = {}) {
  std::vector<std::string> argv = {bin("primary-vendor"), kind, "--key", key_file, "--registration", registration,
                                   "--computer", computer, "--license", license};
  if (!to.empty()) argv.insert(argv.end(), {"--to", to});
  argv.insert(argv.end(), extra.begin(), extra.end());
  int rc = 0;
  std::string out = run_capture(argv, &rc);
  return rc == 0 ? out : std::string();
}

// The activity log's entries of one type, their data maps.
std::vector<Value> logged(Redis& r, std::string_view type) {
  std::vector<Value> out;
  auto all = r.command({"XRANGE", keys::kEvents, "-", "+"});
  if (!all || !all->is_array()) return out;
  for (const auto& e : all->elements) {
    const auto& kv = e.elements[1].elements;
    std::string t, data;
    for (size_t i = 0; i + 1 < kv.size(); i += 2) {
      if (kv[i].str == "type") t = kv[i + 1].str;
      if (kv[i].str == "data") data = kv[i + 1].str;
    }
    if (t != type) continue;
    if (auto v = unpack_value(data)) out.push_back(std::move(*v));
  }
  return out;
}

class Seats : public ::testing::Test {
 protected:
  explicit Seats(StackOptions o = {}) : s(std::move(o)) {}
  void SetUp() override {
    ASSERT_TRUE(s.ok());
    auto url = parse_redis_url(s.redis().url());
    ASSERT_TRUE(url.ok());
    redis = std::make_unique<Redis>(*url);
  }
  // Registers and unlocks for `licenses`; remembers the registration code.
  void unlock(int64_t licenses) {
    Value reg = s.call("license.control", "registration", {{"serial", Value("SN-SEAT")}});
    registration = str(reg, "registration_code");
    ASSERT_FALSE(registration.empty()) << to_json(reg);
    Value u = s.call("license.control", "unlock", {{"unlock_code", Value(s.vendor_code(registration, licenses))}});
    ASSERT_TRUE(ok(u)) << to_json(u);
  }
  std::string reserve(const std::string& name) {
    Value r = s.call("license.control", "reserve", {{"computer", Value(name)}});
    EXPECT_TRUE(ok(r)) << name << ": " << to_json(r);
    return str(r, "license");
  }
  Value heartbeat(const std::string& name, const std::string& license) {
    return s.call("license", "heartbeat", {{"computer", Value(name)}, {"license", Value(license)}});
  }
  std::string code(const std::string& kind, const std::string& computer, const std::string& license,
                   const std::string& to = "", std::vector<std::string> extra = {}) {
    return vendor_seat_code(s.vendor_key_file(), kind, registration, computer, license, to, std::move(extra));
  }
  Value apply(const std::string& op, const std::string& c) {
    return s.call("license.control", op, {{"code", Value(c)}});
  }
  int64_t reserved() { return redis->command({"ZCARD", keys::kReservations})->integer; }

  Stack s;
  std::unique_ptr<Redis> redis;
  std::string registration;
};

TEST_F(Seats, RetireFreesTheSeatAndTheOldClientIsToldRetired) {
  unlock(2);
  const std::string a = reserve("pc-a");
  reserve("pc-b");
  EXPECT_EQ(str(s.call("license.control", "reserve", {{"computer", Value("pc-c")}}), "code"), "NO_LICENSES_LEFT");
  // A's Client is licensed and holds a lease (the worker now knows the
  // serial, so it signs leases ahead for A's heartbeats).
  Value hb = heartbeat("pc-a", a);
  ASSERT_EQ(str(hb, "status"), "licensed") << to_json(hb);
  ASSERT_NE(hb.find("lease"), nullptr);

  const std::string c = code("retire", "PC-A", a);
  ASSERT_FALSE(c.empty());
  Value r = apply("retire", c);
  ASSERT_TRUE(ok(r)) << to_json(r);
  EXPECT_EQ(str(r, "computer"), "PC-A");
  EXPECT_EQ(num(r, "reserved"), 1);
  EXPECT_EQ(num(r, "purchased"), 2);
  EXPECT_FALSE(str(r, "code_id").empty());

  // The old Client: RETIRED, no lease, every time.
  for (int i = 0; i < 3; ++i) {
    hb = heartbeat("pc-a", a);
    EXPECT_EQ(str(hb, "status"), "unlicensed") << to_json(hb);
    EXPECT_EQ(str(hb, "reason"), "RETIRED");
    EXPECT_EQ(hb.find("lease"), nullptr);
    EXPECT_EQ(num(hb, "next_check_s"), 60);
  }
  // The seat is free: another computer takes it; then the cap holds again.
  const std::string c_lic = reserve("pc-c");
  EXPECT_EQ(str(s.call("license.control", "reserve", {{"computer", Value("pc-a")}}), "code"), "NO_LICENSES_LEFT");
  EXPECT_EQ(reserved(), 2);
  // Nothing is left of A: the admin's view and the setup info forget it.
  EXPECT_EQ(str(s.call("license.control", "setup_info", {{"computer", Value("pc-a")}}), "code"), "NOT_FOUND");
  EXPECT_EQ(redis->command({"HEXISTS", keys::kMeta, "PC-A"})->integer, 0);

  auto events = logged(*redis, "license.retired");
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(str(events[0], "computer"), "PC-A");
  EXPECT_EQ(str(events[0], "code_id"), str(r, "code_id"));
  EXPECT_FALSE(str(events[0], "actor").empty());
}

TEST_F(Seats, ARetiredNameReservedAgainGetsANewLicense) {
  unlock(1);
  const std::string a = reserve("pc-a");
  ASSERT_TRUE(ok(apply("retire", code("retire", "pc-a", a))));
  const std::string again = reserve("pc-a");
  EXPECT_NE(again, a);
  EXPECT_EQ(str(heartbeat("pc-a", again), "status"), "licensed");
  // The old Client, still holding the retired license, is told so.
  EXPECT_EQ(str(heartbeat("pc-a", a), "reason"), "RETIRED");
  EXPECT_EQ(str(heartbeat("pc-a", "not-a-license"), "reason"), "LICENSE_MISMATCH");
}

TEST_F(Seats, TransferMovesTheSeatToTheNewNameWithANewLicense) {
  unlock(2);
  const std::string old_lic = reserve("old-name");
  reserve("other");
  ASSERT_EQ(str(heartbeat("old-name", old_lic), "status"), "licensed");

  Value t = apply("transfer", code("transfer", "old-name", old_lic, "new-name"));
  ASSERT_TRUE(ok(t)) << to_json(t);
  EXPECT_EQ(str(t, "computer"), "OLD-NAME");
  EXPECT_EQ(str(t, "to"), "NEW-NAME");
  const std::string new_lic = str(t, "license");
  EXPECT_EQ(new_lic.size(), old_lic.size());
  EXPECT_NE(new_lic, old_lic);
  EXPECT_EQ(num(t, "reserved"), 2);
  EXPECT_EQ(reserved(), 2);

  // The new computer's Client, set up with the new license, is licensed.
  Value setup = s.call("license.control", "setup_info", {{"computer", Value("new-name")}});
  EXPECT_EQ(str(setup, "license"), new_lic);
  Value hb = heartbeat("new-name", new_lic);
  ASSERT_EQ(str(hb, "status"), "licensed") << to_json(hb);
  auto lease = verify_lease(str(hb, "lease"), s.lease_pub(), now_ms() / 1000);
  ASSERT_TRUE(lease.ok()) << lease.error().message;
  EXPECT_EQ(lease->computer, "NEW-NAME");
  EXPECT_EQ(lease->license, new_lic);
  // The old Client cannot pose as the new computer, and is told RETIRED.
  EXPECT_EQ(str(heartbeat("new-name", old_lic), "reason"), "LICENSE_MISMATCH");
  hb = heartbeat("old-name", old_lic);
  EXPECT_EQ(str(hb, "reason"), "RETIRED");
  EXPECT_EQ(hb.find("lease"), nullptr);
  // Reserving the new name is idempotent; the cap is still full.
  Value again = s.call("license.control", "reserve", {{"computer", Value("NEW-NAME")}});
  EXPECT_EQ(str(again, "license"), new_lic);
  EXPECT_FALSE(again.find("created")->as_bool());
  EXPECT_EQ(str(s.call("license.control", "reserve", {{"computer", Value("third")}}), "code"), "NO_LICENSES_LEFT");

  auto events = logged(*redis, "license.transferred");
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(str(events[0], "computer"), "OLD-NAME");
  EXPECT_EQ(str(events[0], "to"), "NEW-NAME");
  EXPECT_EQ(num(events[0], "reserved"), 2);
}

TEST_F(Seats, EveryBadCodeIsRefusedWithItsReasonAndChangesNothing) {
  unlock(3);
  const std::string a = reserve("pc-a");
  const std::string b = reserve("pc-b");
  const std::string secret = read_key_file(s.vendor_key_file(), 64, true).value();
  const auto refused = [&](const std::string& op, const std::string& c) {
    Value r = apply(op, c);
    EXPECT_EQ(str(r, "code"), "INVALID_SEAT_CODE") << to_json(r);
    EXPECT_FALSE(str(r, "message").empty());
    return str(r, "reason");
  };
  int refusals = 0;

  // Tampered: any character changed, or signed by another key.
  const std::string good = code("retire", "pc-a", a);
  ASSERT_FALSE(good.empty());
  for (size_t i = 0; i < good.size(); i += 7) {
    if (good[i] == '.') continue;
    std::string bad = good;
    bad[i] = good[i] == 'A' ? 'B' : 'A';
    EXPECT_EQ(refused("retire", bad), "TAMPERED") << i;
    ++refusals;
  }
  SeatCode forged{"retire", registration, "PC-A", a, "", now_ms(), now_ms() + 86400000, "forged"};
  EXPECT_EQ(refused("retire", make_seat_code(forged, sign_keypair().secret_key)), "TAMPERED");
  EXPECT_EQ(refused("retire", "hello"), "TAMPERED");
  // An unlock code is no seat code, though the same key signed it.
  EXPECT_EQ(refused("retire", s.vendor_code(registration, 9)), "TAMPERED");
  refusals += 3;
  // Another server's registration.
  SeatCode other = forged;
  other.registration = registration_code("SN-SEAT", "another-install");
  other.id = "other-reg";
  EXPECT_EQ(refused("retire", make_seat_code(other, secret)), "OTHER_REGISTRATION");
  // Another license than the computer holds (B's license for A).
  EXPECT_EQ(refused("retire", code("retire", "pc-a", b)), "OTHER_LICENSE");
  // Expired: issued 31 days ago with the default validity.
  EXPECT_EQ(refused("retire", code("retire", "pc-a", a, "", {"--issued", std::to_string(now_ms() - 31 * 86400000LL)})),
            "EXPIRED");
  // A computer without a reservation.
  EXPECT_EQ(refused("retire", code("retire", "pc-z", a)), "NOT_RESERVED");
  // The other kind of code for the op.
  EXPECT_EQ(refused("transfer", good), "WRONG_KIND");
  EXPECT_EQ(refused("retire", code("transfer", "pc-a", a, "pc-n")), "WRONG_KIND");
  // A transfer to a name that holds a reservation.
  EXPECT_EQ(refused("transfer", code("transfer", "pc-a", a, "pc-b")), "NAME_TAKEN");
  refusals += 7;
  // Nothing changed so far.
  EXPECT_EQ(reserved(), 2);
  EXPECT_EQ(str(heartbeat("pc-a", a), "status"), "licensed");

  // The good code works once; again it is USED.
  ASSERT_TRUE(ok(apply("retire", good)));
  EXPECT_EQ(refused("retire", good), "USED");
  ++refusals;
  // A transfer code for a seat that has changed since (A was retired,
  // then reserved again with a new license): OTHER_LICENSE.
  const std::string stale = code("transfer", "pc-b", b, "pc-n");
  const std::string a2 = reserve("pc-a");
  EXPECT_EQ(refused("retire", code("retire", "pc-a", a)), "OTHER_LICENSE");
  ASSERT_TRUE(ok(apply("transfer", stale)));
  EXPECT_EQ(refused("transfer", stale), "USED");
  EXPECT_EQ(refused("retire", code("retire", "pc-b", b)), "NOT_RESERVED");
  refusals += 3;
  EXPECT_EQ(reserved(), 2);

  auto events = logged(*redis, "seat_code.refused");
  EXPECT_EQ(events.size(), static_cast<size_t>(refusals));
  std::set<std::string> reasons;
  for (const auto& e : events) {
    reasons.insert(str(e, "reason"));
    EXPECT_FALSE(str(e, "actor").empty());
  }
  EXPECT_EQ(reasons, (std::set<std::string>{"TAMPERED", "OTHER_REGISTRATION", "OTHER_LICENSE", "EXPIRED",
                                            "NOT_RESERVED", "WRONG_KIND", "NAME_TAKEN", "USED"}));
  // A malformed request is BAD_REQUEST, as for any op.
  EXPECT_EQ(str(s.call("license.control", "retire", {}), "code"), "BAD_REQUEST");
  EXPECT_EQ(str(s.call("license.control", "transfer", {{"code", Value(int64_t{5})}}), "code"), "BAD_REQUEST");
}

TEST(SeatsVendorTool, RefusesWhatCannotBeACode) {
  TempDir dir("vendor");
  int rc = 0;
  run_capture({bin("primary-vendor"), "keygen", "--out", dir.file("v")}, &rc);
  ASSERT_EQ(rc, 0);
  const std::string reg = registration_code("SN-1", "install");
  EXPECT_FALSE(vendor_seat_code(dir.file("v/vendor.key"), "retire", reg, "PC-1", "LIC").empty());
  EXPECT_TRUE(vendor_seat_code(dir.file("v/vendor.key"), "retire", "not-a-registration", "PC-1", "LIC").empty());
  EXPECT_TRUE(vendor_seat_code(dir.file("v/vendor.key"), "retire", reg, "bad name!", "LIC").empty());
  EXPECT_TRUE(vendor_seat_code(dir.file("v/vendor.key"), "transfer", reg, "PC-1", "LIC", "pc-1").empty());
  EXPECT_TRUE(vendor_seat_code(dir.file("v/vendor.key"), "transfer", reg, "PC-1", "LIC").empty());
  // What it prints verifies with the public key and says what was asked.
  const std::string c = vendor_seat_code(dir.file("v/vendor.key"), "transfer", reg, "pc-1", "LIC", "pc-2",
                                         {"--issued", "1000", "--valid-days", "2"});
  auto pub = read_key_file(dir.file("v/vendor.pub"), 32, false);
  ASSERT_TRUE(pub.ok());
  auto parsed = parse_seat_code(c, *pub);
  ASSERT_TRUE(parsed.ok()) << parsed.error().message;
  EXPECT_EQ(parsed->kind, "transfer");
  EXPECT_EQ(parsed->registration, reg);
  EXPECT_EQ(parsed->computer, "PC-1");
  EXPECT_EQ(parsed->license, "LIC");
  EXPECT_EQ(parsed->to, "PC-2");
  EXPECT_EQ(parsed->issued, 1000);
  EXPECT_EQ(parsed->expires, 1000 + 2 * 86400000LL);
  EXPECT_GE(parsed->id.size(), 16u);
  // Two codes for the same seat are two codes (each usable once).
  EXPECT_NE(parse_seat_code(vendor_seat_code(dir.file("v/vendor.key"), "retire", reg, "PC-1", "LIC"), *pub)->id,
            parse_seat_code(vendor_seat_code(dir.file("v/vendor.key"), "retire", reg, "PC-1", "LIC"), *pub)->id);
}

StackOptions four_workers() {
  StackOptions o;
  o.license_workers = 4;
  return o;
}

class SeatsRace : public Seats {
 protected:
  SeatsRace() : Seats(four_workers()) {}
};

// Transfers racing 8 clients that reserve other names (as ExactCapUnderRace
// does): the cap is never exceeded, at any reply or any sample of Redis,
// every transfer goes through, and the seats end exactly full.
TEST_F(SeatsRace, TransfersRacingReservationsNeverExceedTheCap) {
  constexpr int kPurchased = 300, kMoved = 40;
  unlock(kPurchased);
  std::vector<std::string> codes;
  for (int i = 0; i < kMoved; ++i) {
    const std::string lic = reserve("old-" + std::to_string(i));
    codes.push_back(code("transfer", "old-" + std::to_string(i), lic, "new-" + std::to_string(i)));
    ASSERT_FALSE(codes.back().empty());
  }
  std::atomic<int64_t> max_seen{0};
  std::atomic<int> failures{0}, transferred{0};
  std::atomic<bool> stop{false};
  std::mutex mu;
  std::map<std::string, int> refusals;
  const auto seen = [&](int64_t n) {
    for (int64_t m = max_seen.load(); n > m && !max_seen.compare_exchange_weak(m, n);) {
    }
  };
  std::thread sampler([&] {
    auto url = parse_redis_url(s.redis().url());
    Redis r(*url);
    while (!stop) {
      if (auto n = r.command({"ZCARD", keys::kReservations}); n && n->is_int()) seen(n->integer);
    }
  });
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      auto c = s.client(10000);
      for (int i = 0; i < 60; ++i) {
        const std::string name = "pc-" + std::to_string((t * 60 + i) * 7919 % 400);
        auto r = c->call("license.control", "reserve", {{"computer", Value(name)}});
        if (!r) {
          ++failures;
          continue;
        }
        if (ok(*r)) {
          seen(num(*r, "reserved"));
        } else {
          std::lock_guard<std::mutex> lock(mu);
          ++refusals[str(*r, "code")];
        }
      }
    });
  }
  threads.emplace_back([&] {
    auto c = s.client(10000);
    for (const auto& code : codes) {
      auto r = c->call("license.control", "transfer", {{"code", Value(code)}});
      if (r && ok(*r)) {
        ++transferred;
        seen(num(*r, "reserved"));
      } else {
        ++failures;
        ADD_FAILURE() << (r ? to_json(*r) : r.error().message);
      }
    }
  });
  for (auto& th : threads) th.join();
  stop = true;
  sampler.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(transferred.load(), kMoved);
  EXPECT_LE(max_seen.load(), kPurchased);
  EXPECT_EQ(reserved(), kPurchased);
  for (const auto& [code, n] : refusals) EXPECT_EQ(code, "NO_LICENSES_LEFT") << n;
  for (int i = 0; i < kMoved; ++i) {
    EXPECT_EQ(str(s.call("license.control", "setup_info", {{"computer", Value("old-" + std::to_string(i))}}), "code"),
              "NOT_FOUND");
    EXPECT_TRUE(ok(s.call("license.control", "setup_info", {{"computer", Value("new-" + std::to_string(i))}})));
  }
}

// ---- durability: the whole product under primary-server, SIGKILLed ----

std::string front_of(const std::string& data) {
  return endpoints_file_value(data + "/run/endpoints", "front").value_or("");
}

struct Server {
  Server(const TempDir& dir, const std::string& vendor_pub) {
    ::unlink((dir.file("data") + "/run/endpoints").c_str());
    proc = Process::start({bin("primary-server"), "--web", "127.0.0.1:0", "--data-dir", dir.file("data"), "--front",
                           "tcp://127.0.0.1:*", "--events", "tcp://127.0.0.1:*", "--insecure", "--vendor-key",
                           vendor_pub, "--license-workers", "2", "--heartbeat-ms", "200"},
                          {}, dir.file("server.log"));
    front = wait_until([&] { return !front_of(dir.file("data")).empty(); }, 15s) ? front_of(dir.file("data"))
                                                                                   : std::string();
  }
  Process proc;
  std::string front;
};

std::unique_ptr<MdpClient> connect(zmq::context_t& ctx, const std::string& front) {
  ClientOptions o;
  o.endpoints = {front};
  o.timeout_ms = 5000;
  return std::make_unique<MdpClient>(ctx, o);
}

// A call retried until a worker answers (workers register after a restart).
Value call(MdpClient& c, const std::string& op, Value::Map fields) {
  Value out;
  wait_until([&] {
    auto r = c.call("license.control", op, fields);
    if (r && (ok(*r) || str(*r, "code") != "UNAVAILABLE")) out = *r;
    return r && (ok(*r) || str(*r, "code") != "UNAVAILABLE");
  }, 10s, 100ms);
  return out;
}

TEST(SeatsDurability, RetireAndTransferSurviveSigkillOfTheWholeStack) {
  TempDir dir("seatdur");
  zmq::context_t ctx(1);
  int rc = 0;
  run_capture({bin("primary-vendor"), "keygen", "--out", dir.file("vendor")}, &rc);
  ASSERT_EQ(rc, 0);
  const std::string key = dir.file("vendor/vendor.key");
  std::string lic_a, lic_b, lic_c, retire_code, transfer_code;
  {
    Server server(dir, dir.file("vendor/vendor.pub"));
    ASSERT_FALSE(server.front.empty()) << read_file(dir.file("server.log"));
    auto c = connect(ctx, server.front);
    const std::string reg = str(call(*c, "registration", {{"serial", Value("SN-DUR")}}), "registration_code");
    ASSERT_FALSE(reg.empty());
    const std::string unlock_code = run_capture(
        {bin("primary-vendor"), "unlock", "--key", key, "--registration", reg, "--licenses", "2"});
    ASSERT_TRUE(ok(call(*c, "unlock", {{"unlock_code", Value(unlock_code)}})));
    lic_a = str(call(*c, "reserve", {{"computer", Value("pc-a")}}), "license");
    lic_b = str(call(*c, "reserve", {{"computer", Value("pc-b")}}), "license");
    retire_code = vendor_seat_code(key, "retire", reg, "pc-a", lic_a);
    transfer_code = vendor_seat_code(key, "transfer", reg, "pc-b", lic_b, "pc-c");
    ASSERT_TRUE(ok(call(*c, "retire", {{"code", Value(retire_code)}})));
    Value t = call(*c, "transfer", {{"code", Value(transfer_code)}});
    ASSERT_TRUE(ok(t)) << to_json(t);
    lic_c = str(t, "license");
    // Acknowledged: now nothing is shut down gracefully.
    const pid_t sup = server.proc.pid();
    for (pid_t p : children_named(sup, "redis-server")) ::kill(p, SIGKILL);
    for (pid_t p : children_named(sup, "primary-licensed")) ::kill(p, SIGKILL);
    server.proc.kill();
  }
  std::this_thread::sleep_for(500ms);

  Server again(dir, dir.file("vendor/vendor.pub"));
  ASSERT_FALSE(again.front.empty()) << read_file(dir.file("server.log"));
  auto c = connect(ctx, again.front);
  Value hb;
  ASSERT_TRUE(wait_until([&] {
    auto r = c->call("license", "heartbeat", {{"computer", Value("pc-a")}, {"license", Value(lic_a)}});
    if (r) hb = *r;
    return r && !str(*r, "status").empty();
  }, 10s, 100ms));
  EXPECT_EQ(str(hb, "reason"), "RETIRED");
  auto b = c->call("license", "heartbeat", {{"computer", Value("pc-b")}, {"license", Value(lic_b)}});
  ASSERT_TRUE(b);
  EXPECT_EQ(str(*b, "reason"), "RETIRED");
  auto hc = c->call("license", "heartbeat", {{"computer", Value("pc-c")}, {"license", Value(lic_c)}});
  ASSERT_TRUE(hc);
  EXPECT_EQ(str(*hc, "status"), "licensed");
  // The codes stay used.
  EXPECT_EQ(str(call(*c, "retire", {{"code", Value(retire_code)}}), "reason"), "USED");
  EXPECT_EQ(str(call(*c, "transfer", {{"code", Value(transfer_code)}}), "reason"), "USED");
  // One seat is free (A's), and only one.
  Value d = call(*c, "reserve", {{"computer", Value("pc-d")}});
  EXPECT_TRUE(ok(d)) << to_json(d);
  EXPECT_EQ(num(d, "reserved"), 2);
  EXPECT_EQ(str(call(*c, "reserve", {{"computer", Value("pc-e")}}), "code"), "NO_LICENSES_LEFT");
  again.proc.kill();
}

}  // namespace
}  // namespace primary::test
