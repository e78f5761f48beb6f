// Fault injection against the whole product as primary-server runs it: while
// threads reserve (new and repeated names), 50 simulated Clients heartbeat,
// an admin polls status and a Client downloads an update over and over, a
// random child of the supervisor (the broker, a licensing worker, the
// updater, the admin worker or the private Redis) is SIGKILLed every 1 to
// 2 s and restarted by the supervisor. Afterwards no acknowledged
// reservation is lost or changed, the license cap held in every reply, every
// Client is licensed again within its retry interval, every download that
// completed has the right hash, every kill recovered, and SIGTERM leaves no
// process behind. Requests may fail meanwhile; their number is printed. The
// harness (tools/chaos) is shared with `primary-bench chaos`.
//
// PRIMARY_FAULT_SECONDS (default 20) sets how long faults go on.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>
#include <random>

#include "common/client.hpp"
#include "common/crypto.hpp"
#include "common/process.hpp"
#include "tests/support/process.hpp"
#include "tests/support/stack.hpp"
#include "tests/support/temp_dir.hpp"
#include "tests/support/util.hpp"
#include "tools/chaos/chaos.hpp"

namespace primary::test {
namespace {

int fault_seconds() {
  const char* env = std::getenv("PRIMARY_FAULT_SECONDS");
  const int s = env ? std::atoi(env) : 0;
  return s > 0 ? s : 20;
}

// 2000 for the default 20 s: enough that new names are acknowledged for a
// good part of the faults, few enough that the cap is reached under them.
int64_t purchased() { return int64_t{100} * fault_seconds(); }

std::string code_of(const Result<Value>& r) {
  if (!r) return "NO_REPLY";
  return ok(*r) ? "OK" : str(*r, "code");
}

TEST(Fault, RandomSigkillsLoseNoAcknowledgedReservation) {
  TempDir dir("flt");
  zmq::context_t ctx(1);
  int rc = 0;
  run_capture({bin("primary-vendor"), "keygen", "--out", dir.file("vendor")}, &rc);
  ASSERT_EQ(rc, 0);
  const std::string front = "tcp://127.0.0.1:" + std::to_string(chaos::free_port());
  const std::string events = "tcp://127.0.0.1:" + std::to_string(chaos::free_port());
  const std::string data = dir.file("data");
  // One release on a file:// feed, for the download under faults.
  const std::string releases = dir.file("releases");
  ::mkdir(releases.c_str(), 0755);
  {
    std::mt19937_64 gen(5);
    std::string blob(static_cast<size_t>(3 << 20) + 333, '\0');
    for (auto& ch : blob) ch = static_cast<char>(gen());
    ASSERT_TRUE(write_file_atomic(releases + "/client.bin", blob, 0644));
    ASSERT_TRUE(write_file_atomic(releases + "/releases.toml",
                                  "[[release]]\ncomponent = \"client\"\nversion = \"2.0.0\"\nfile = \"client.bin\"\n", 0644));
  }
  run_capture({bin("primary-vendor"), "sign-feed", "--key", dir.file("vendor/vendor.key"), "--dir", releases, "--out",
               releases + "/feed"},
              &rc);
  ASSERT_EQ(rc, 0);
  const std::string release_sha = *sha256_file_hex(releases + "/client.bin");
  Process server = Process::start(
      {bin("primary-server"), "--data-dir", data, "--front", front, "--events", events, "--insecure", "--no-web",
       "--update-feed", "file://" + releases + "/feed", "--sync-interval-s", "0", "--updater-workers", "1",
       "--vendor-key", dir.file("vendor/vendor.pub"), "--license-workers", "2", "--heartbeat-ms", "200",
       "--restart-max-ms", "1000", "--check-interval-s", "3", "--grace-s", "2", "--unlicensed-interval-s",
       "1"},
      {}, dir.file("server.log"));
  const pid_t sup = server.pid();
  const int64_t kPurchased = purchased();
  ASSERT_TRUE(wait_until([&] { return endpoints_file_value(data + "/run/endpoints", "front").has_value(); }, 15s))
      << read_file(dir.file("server.log"));

  // Register and unlock (the workers may still be registering).
  ClientOptions admin_options;
  admin_options.endpoints = {front};
  admin_options.timeout_ms = 2000;
  auto admin = std::make_unique<MdpClient>(ctx, admin_options);
  Value reg;
  ASSERT_TRUE(wait_until([&] {
    auto r = admin->call("license.control", "registration", {{"serial", Value("SN-FAULT")}});
    if (r && r->find("registration_code")) reg = *r;
    return r && r->find("registration_code");
  }, 10s, 100ms));
  const std::string code = run_capture({bin("primary-vendor"), "unlock", "--key", dir.file("vendor/vendor.key"),
                                        "--registration", str(reg, "registration_code"), "--licenses",
                                        std::to_string(kPurchased)});
  ASSERT_EQ(code_of(admin->call("license.control", "unlock", {{"unlock_code", Value(code)}})), "OK");
  ASSERT_TRUE(wait_until([&] { return code_of(admin->call("admin", "status")) == "OK"; }, 10s, 100ms));
  // The release: synced, approved, offered.
  ASSERT_TRUE(wait_until([&] { return code_of(admin->call("update.control", "sync")) == "OK"; }, 10s, 100ms));
  ASSERT_TRUE(wait_until([&] {
    return code_of(admin->call("update.control", "approve",
                               {{"component", Value("client")}, {"version", Value("2.0.0")}})) == "OK";
  }, 20s, 100ms)) << read_file(dir.file("server.log"));
  // The faults and the checks after them.
  chaos::Target target;
  target.supervisor = sup;
  target.front = front;
  target.purchased = kPurchased;
  target.component = "client";
  target.sha256 = release_sha;
  target.vendor_key = read_file(dir.file("vendor/vendor.pub"));
  target.scratch_dir = dir.path();
  chaos::Options options;
  options.faults = std::chrono::seconds(fault_seconds());
  chaos::Run run(ctx, target, options);
  const chaos::Report& r = run.report();
  ASSERT_TRUE(run.start()) << r.start_error;
  EXPECT_TRUE(r.licensed_first);
  run.faults();
  run.settle();
  EXPECT_TRUE(r.restored) << read_file(dir.file("server.log"));
  EXPECT_EQ(r.unrecovered(), 0);
  run.verify();
  EXPECT_TRUE(r.final_download) << r.final_download_error;
  EXPECT_EQ(r.bad_hash, 0);
  EXPECT_TRUE(r.relicensed) << r.not_licensed;
  EXPECT_EQ(r.withdrawn, 0) << r.first_withdrawn;
  EXPECT_EQ(r.present, r.acked) << "first lost or changed: " << r.first_wrong;
  EXPECT_EQ(r.mismatches, 0);
  EXPECT_EQ(r.over_cap, 0);
  EXPECT_LE(r.max_reserved, kPurchased);
  EXPECT_LE(r.final_reserved, kPurchased);
  EXPECT_GE(r.status_reserved, 0);
  EXPECT_LE(r.status_reserved, kPurchased);
  EXPECT_EQ(r.status_purchased, kPurchased);

  // SIGTERM: exit 0, and every process ever seen in the tree is gone.
  server.signal(SIGTERM);
  run.orphans(20s);
  auto exit_code = server.wait_exit(20s);
  ASSERT_TRUE(exit_code.has_value());
  EXPECT_EQ(*exit_code, 0) << read_file(dir.file("server.log"));
  EXPECT_TRUE(r.orphans.empty()) << r.orphans.size() << " orphans, first pid " << r.orphans.front();
  EXPECT_TRUE(r.invariants_hold());

  for (const auto& line : r.lines()) std::printf("[fault] %s\n", line.c_str());
  std::fflush(stdout);
}

}  // namespace
}  // namespace primary::test
