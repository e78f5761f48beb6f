// Lease key rotation without an outage (issue 23, part 3), against the
// real primary-server: `primaryctl keys rotate-lease` while a simulated
// fleet (primary-client --simulate, set up with the old key alone) runs and
// a Data Vault verifies leases with the key set it fetched during the
// overlap. Nobody may reject a valid lease at any point.
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "common/client.hpp"
#include "common/crypto.hpp"
#include "common/process.hpp"
#include "common/tokens.hpp"
#include "tests/support/process.hpp"
#include "tests/support/stack.hpp"
#include "tests/support/temp_dir.hpp"
#include "tests/support/util.hpp"

namespace primary::test {
namespace {

using namespace std::chrono_literals;

std::vector<std::string> key_set_of(const Value& setup) {
  std::vector<std::string> out;
  if (const Value* keys = setup.find("lease_keys"); keys && keys->is_array())
    for (const Value& k : keys->as_array())
      if (auto raw = base64url_decode(k.as_str())) out.push_back(*raw);
  return out;
}

int64_t now_s() { return unix_ms() / 1000; }

TEST(LeaseRotation, UnderARunningFleetNoValidLeaseIsEverRejected) {
  constexpr int kFleet = 20;
  constexpr int64_t kOverlapS = 6;  // the servers' check interval (4 s) plus grace (2 s)
  TempDir dir("rot");
  int rc = -1;
  run_capture({bin("primary-vendor"), "keygen", "--out", dir.file("vendor")}, &rc);
  ASSERT_EQ(rc, 0);
  const std::string data = dir.file("data");
  Process server = Process::start(
      {bin("primary-server"), "--web", "127.0.0.1:0", "--data-dir", data, "--front", "tcp://127.0.0.1:*", "--events",
       "tcp://127.0.0.1:*", "--insecure", "--vendor-key", dir.file("vendor/vendor.pub"), "--license-workers", "2",
       "--admin-workers", "0", "--updater-workers", "0", "--heartbeat-ms", "200", "--check-interval-s", "4",
       "--grace-s", "2"},
      {}, dir.file("server.log"));
  ASSERT_TRUE(wait_until([&] { return !front_of(data).empty(); }, 15s)) << read_file(dir.file("server.log"));
  const std::string front = front_of(data);
  zmq::context_t ctx(1);
  ClientOptions co;
  co.endpoints = {front};
  co.timeout_ms = 5000;
  MdpClient admin(ctx, co);
  ASSERT_NO_FATAL_FAILURE(register_and_unlock(admin, dir, "SN-ROT", kFleet));

  std::vector<std::string> names, licenses;
  {
    std::ofstream out(dir.file("licenses.txt"));
    for (int i = 1; i <= kFleet; ++i) {
      char name[32];
      std::snprintf(name, sizeof name, "ROT-%06d", i);
      auto r = admin.call("license.control", "reserve", {{"computer", Value(name)}});
      ASSERT_TRUE(r && ok(*r)) << (r ? to_json(*r) : r.error().message);
      names.push_back(name);
      licenses.push_back(str(*r, "license"));
      out << name << " " << licenses.back() << "\n";
    }
  }
  auto setup = [&] {
    auto r = admin.call("license.control", "setup_info", {{"computer", Value(names[0])}});
    EXPECT_TRUE(r && ok(*r)) << (r ? to_json(*r) : r.error().message);
    return r ? *r : Value();
  };
  const Value before = setup();
  const std::vector<std::string> old_set = key_set_of(before);
  ASSERT_EQ(old_set.size(), 1u) << to_json(before);
  const std::string old_key = old_set[0];
  EXPECT_EQ(str(before, "lease_key"), base64url_encode(old_key));

  // The fleet knows only the old key, as Clients installed before the
  // rotation do: check every second (4 s x 0.25), for the whole test.
  Process fleet = Process::start({bin("primary-client"), "--simulate", std::to_string(kFleet), "--prefix", "rot",
                                  "--licenses", dir.file("licenses.txt"), "--server", front, "--lease-key",
                                  base64url_encode(old_key), "--time-scale", "0.25", "--jitter", "0", "--duration",
                                  "22"},
                                 {}, dir.file("fleet.log"));
  std::this_thread::sleep_for(3s);

  const int64_t rotated_at = now_s();
  const std::string said = run_capture({bin("primaryctl"), "keys", "rotate-lease", "--data-dir", data, "--overlap-s",
                                        std::to_string(kOverlapS)},
                                       &rc);
  ASSERT_EQ(rc, 0) << said;
  EXPECT_NE(said.find("signs from"), std::string::npos) << said;
  // A second rotation while this one publishes is refused, and changes nothing.
  const std::string file_after = read_file(data + "/keys/lease.key");
  run_capture({bin("primaryctl"), "keys", "rotate-lease", "--data-dir", data, "--overlap-s", "6"}, &rc);
  EXPECT_NE(rc, 0);
  EXPECT_EQ(read_file(data + "/keys/lease.key"), file_after);

  // The Data Vault refreshes its key set during the overlap: both keys,
  // the old one still the one that signs.
  std::vector<std::string> vault;
  ASSERT_TRUE(wait_until(
      [&] {
        vault = key_set_of(setup());
        return vault.size() == 2;
      },
      3s, 100ms));
  ASSERT_LT(now_s(), rotated_at + kOverlapS) << "the key set was not published within the overlap";
  EXPECT_EQ(vault[0], old_key);
  const std::string new_key = vault[1];
  EXPECT_EQ(str(setup(), "lease_key"), base64url_encode(old_key));

  // Heartbeats through the switch and past the old key's retirement: every
  // lease verifies with the vault's set, the old key's id before the
  // switch, the new one's after it.
  const std::string old_kid = lease_key_id(old_key), new_kid = lease_key_id(new_key);
  std::set<std::string> kids_seen;
  int verified = 0, rejected = 0, late_old = 0;
  std::string first_rejection;
  for (int i = 0; now_s() < rotated_at + 2 * kOverlapS + 2; ++i) {
    const size_t n = static_cast<size_t>(i) % names.size();
    auto r = admin.call("license", "heartbeat", {{"computer", Value(names[n])}, {"license", Value(licenses[n])}});
    ASSERT_TRUE(r && ok(*r)) << (r ? to_json(*r) : r.error().message);
    ASSERT_EQ(str(*r, "status"), "licensed") << to_json(*r);
    const int64_t server_time = num(*r, "server_time");
    auto lease = verify_lease(str(*r, "lease"), vault, server_time);
    if (!lease) {
      ++rejected;
      if (first_rejection.empty()) first_rejection = lease.error().message + " at " + std::to_string(server_time);
      continue;
    }
    ++verified;
    kids_seen.insert(lease->kid);
    if (server_time >= rotated_at + kOverlapS + 2 && lease->kid == old_kid) ++late_old;
    std::this_thread::sleep_for(100ms);
  }
  std::cout << "[ rotation ] " << verified << " leases verified with the vault's set, " << rejected
            << " rejected\n";
  EXPECT_EQ(rejected, 0) << first_rejection;
  EXPECT_GT(verified, 50);
  EXPECT_TRUE(kids_seen.count(old_kid));
  EXPECT_TRUE(kids_seen.count(new_kid));
  EXPECT_EQ(late_old, 0) << "the old key still signed after the switch";

  // After the second overlap the old key has left the set.
  const Value after = setup();
  EXPECT_EQ(key_set_of(after), std::vector<std::string>{new_key}) << to_json(after);
  EXPECT_EQ(str(after, "lease_key"), base64url_encode(new_key));

  // The fleet, set up with the old key alone, learned the set from the
  // replies: none of its agents refused a lease, all are licensed.
  ASSERT_TRUE(wait_until([&] { return !fleet.alive(); }, 20s));
  const std::string log = read_file(dir.file("fleet.log"));
  EXPECT_EQ(log.find("refused"), std::string::npos) << log;
  for (const auto& name : names) {
    const auto last = log.rfind(" " + name + " ");
    ASSERT_NE(last, std::string::npos) << name << "\n" << log;
    const std::string line = log.substr(last, log.find('\n', last) - last);
    EXPECT_NE(line.find("-> licensed"), std::string::npos) << line;
  }
}

}  // namespace
}  // namespace primary::test
