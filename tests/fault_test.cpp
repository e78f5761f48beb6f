// Fault injection against the whole product as primary-server runs it: while
// threads reserve (new and repeated names), 50 simulated Clients heartbeat,
// an admin polls status and a Client downloads an update over and over, a
// random child of the supervisor (the broker, a licensing worker, the
// updater, the admin worker or the private Redis) is SIGKILLed about
// every 1.5 s and restarted by the supervisor. Afterwards no acknowledged
// reservation is lost or changed, the license cap held in every reply, every
// Client is licensed again within its retry interval, every download that
// completed has the right hash, and SIGTERM leaves no process behind. Requests may fail meanwhile; their number is printed.
//
// PRIMARY_FAULT_SECONDS (default 20) sets how long faults go on.
#include <gtest/gtest.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "common/client.hpp"
#include "common/process.hpp"
#include "common/crypto.hpp"
#include "primary/client/agent.hpp"
#include "primary/client/update_agent.hpp"
#include "tests/support/process.hpp"
#include "tests/support/procfs.hpp"
#include "tests/support/stack.hpp"
#include "tests/support/temp_dir.hpp"
#include "tests/support/util.hpp"

namespace primary::test {
namespace {

using client::AgentOptions;
using client::LicenseAgent;
using client::LicenseState;
using Ms = std::chrono::milliseconds;

// A TCP port on 127.0.0.1 that was free a moment ago. The front door needs a
// fixed port: a broker restarted on "*" would listen somewhere else, and
// Clients only know the endpoint they were given.
int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0)
    port = ntohs(a.sin_port);
  ::close(fd);
  return port;
}

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

std::unique_ptr<MdpClient> connect(zmq::context_t& ctx, const std::string& front, int timeout_ms) {
  ClientOptions o;
  o.endpoints = {front};
  o.timeout_ms = timeout_ms;
  return std::make_unique<MdpClient>(ctx, o);
}

// Counters of one kind of request.
struct Tally {
  std::atomic<int64_t> made{0}, failed{0}, refused{0};  // refused: NO_LICENSES_LEFT, not a failure
  std::mutex mu;
  std::map<std::string, int64_t> codes;  // failure code -> count
  void fail(const std::string& code) {
    ++failed;
    std::lock_guard<std::mutex> l(mu);
    ++codes[code];
  }
  std::string text() {
    std::lock_guard<std::mutex> l(mu);
    std::string out = std::to_string(made.load()) + " made, " + std::to_string(refused.load()) +
                      " refused (cap reached), " + std::to_string(failed.load()) + " failed";
    for (const auto& [c, n] : codes) out += " " + c + "=" + std::to_string(n);
    return out;
  }
};

constexpr int kClients = 50;
const std::vector<std::string> kVictims = {"primary-broker", "primary-licensed", "primary-admin",
                                           "primary-updater", "redis-server"};

TEST(Fault, RandomSigkillsLoseNoAcknowledgedReservation) {
  TempDir dir("flt");
  zmq::context_t ctx(1);
  int rc = 0;
  run_capture({bin("primary-vendor"), "keygen", "--out", dir.file("vendor")}, &rc);
  ASSERT_EQ(rc, 0);
  const std::string front = "tcp://127.0.0.1:" + std::to_string(free_port());
  const std::string events = "tcp://127.0.0.1:" + std::to_string(free_port());
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
  auto admin = connect(ctx, front, 2000);
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
  std::optional<client::UpdateInfo> release;
  client::UpdateOptions uo;
  uo.endpoints = {front};
  uo.vendor_key = read_file(dir.file("vendor/vendor.pub"));
  while (!uo.vendor_key.empty() && std::isspace(static_cast<unsigned char>(uo.vendor_key.back()))) uo.vendor_key.pop_back();
  uo.timeout = Ms(1000);
  uo.attempts = 4;
  uo.window = 4;
  ASSERT_TRUE(wait_until([&] {
    auto offer = client::UpdateAgent(uo).check("client", "1.0.0");
    if (offer && offer->has_value()) release = **offer;
    return release.has_value();
  }, 10s, 100ms));

  std::mutex mu;                              // guards acked, names
  std::map<std::string, std::string> acked;   // every acknowledged reservation: name -> license
  std::vector<std::string> names;             // acked's keys, for picking repeats
  std::atomic<int64_t> max_reserved{0};
  std::atomic<int> mismatches{0}, over_cap{0};
  auto saw_reserved = [&](const Value& v) {
    const int64_t r = num(v, "reserved");
    int64_t m = max_reserved.load();
    while (r > m && !max_reserved.compare_exchange_weak(m, r)) {}
    const int64_t p = num(v, "purchased");
    if (p >= 0 && r > p) ++over_cap;
  };
  auto ack = [&](const std::string& name, const std::string& license) {
    std::lock_guard<std::mutex> l(mu);
    auto [it, fresh] = acked.emplace(name, license);
    if (fresh) names.push_back(name);
    else if (it->second != license) ++mismatches;
  };

  // The simulated Clients: reserved first, then licensed before any fault.
  std::vector<std::pair<std::string, std::string>> fleet;
  for (int i = 0; i < kClients; ++i) {
    const std::string name = "PC-" + std::to_string(i);
    std::optional<Value> r;
    ASSERT_TRUE(wait_until([&] {
      auto got = admin->call("license.control", "reserve", {{"computer", Value(name)}});
      if (got && ok(*got)) r = *got;
      return r.has_value();
    }, 10s, 50ms)) << name;
    ack(name, str(*r, "license"));
    saw_reserved(*r);
    fleet.emplace_back(name, str(*r, "license"));
  }
  const auto lost_interval = std::chrono::seconds(2);
  const Ms contact_timeout(1000);
  const int contact_attempts = 2;
  std::atomic<int> withdrawn{0};  // licensed -> unlicensed: the server forgot a reservation
  std::mutex agents_mu;
  std::vector<std::string> withdrawn_reasons;
  auto transport = client::zmq_transport();
  std::vector<std::unique_ptr<LicenseAgent>> agents;
  for (const auto& [name, license] : fleet) {
    AgentOptions o;
    o.computer = name;
    o.license = license;
    o.endpoints = {front};
    // The product's 60 s / 1 h retries, shrunk; licensed: the server's 3 s.
    o.unlicensed_interval = std::chrono::seconds(1);
    o.lost_interval = lost_interval;
    o.timeout = contact_timeout;
    o.attempts = contact_attempts;
    o.on_state_change = [&](const client::StateChange& c) {
      if (c.from == LicenseState::licensed && c.to == LicenseState::unlicensed) {
        ++withdrawn;
        std::lock_guard<std::mutex> l(agents_mu);
        withdrawn_reasons.push_back(c.computer + ": " + c.reason);
      }
    };
    agents.push_back(std::make_unique<LicenseAgent>(o, transport));
  }
  std::atomic<bool> stop_agents{false};
  std::vector<std::thread> agent_threads;
  for (auto& a : agents) agent_threads.emplace_back([&, p = a.get()] { p->run(stop_agents); });
  auto all_licensed = [&] {
    for (auto& a : agents)
      if (a->state() != LicenseState::licensed) return false;
    return true;
  };
  const bool licensed_first = wait_until(all_licensed, 15s, 50ms);
  EXPECT_TRUE(licensed_first);

  // Steady load.
  std::atomic<bool> stop_load{false};
  Tally reserves, heartbeats, statuses;
  std::vector<std::thread> load;
  for (int t = 0; t < 3; ++t) {
    load.emplace_back([&, t] {
      std::mt19937 rng(1000 + t);
      auto c = connect(ctx, front, 1000);
      for (int i = 0; !stop_load.load(); ++i) {
        std::string name, expected;
        if (rng() % 3 == 0) {
          std::lock_guard<std::mutex> l(mu);
          name = names[rng() % names.size()];
          expected = acked[name];
        } else {
          name = "R" + std::to_string(t) + "-" + std::to_string(i);
        }
        ++reserves.made;
        auto r = c->call("license.control", "reserve", {{"computer", Value(name)}});
        if (r && r->find("reserved")) saw_reserved(*r);
        if (r && ok(*r)) {
          ack(name, str(*r, "license"));
          if (!expected.empty() && r->find("created") && r->find("created")->as_bool()) ++mismatches;
        } else {
          if (r && str(*r, "code") == "NO_LICENSES_LEFT") {
            ++reserves.refused;
            std::this_thread::sleep_for(5ms);
          } else {
            reserves.fail(code_of(r));
          }
          if (!r) c = connect(ctx, front, 1000);
        }
      }
    });
  }
  load.emplace_back([&] {  // plain heartbeats of acknowledged computers
    std::mt19937 rng(7);
    auto c = connect(ctx, front, 1000);
    while (!stop_load.load()) {
      std::string name, license;
      {
        std::lock_guard<std::mutex> l(mu);
        name = names[rng() % names.size()];
        license = acked[name];
      }
      ++heartbeats.made;
      auto r = c->call("license", "heartbeat", {{"computer", Value(name)}, {"license", Value(license)}});
      if (!r || !ok(*r)) {
        heartbeats.fail(code_of(r));
        if (!r) c = connect(ctx, front, 1000);
      } else if (str(*r, "status") != "licensed") {
        heartbeats.fail("status " + str(*r, "status") + " " + str(*r, "reason"));
      }
      std::this_thread::sleep_for(10ms);
    }
  });
  load.emplace_back([&] {  // the admin's status page
    auto c = connect(ctx, front, 1000);
    while (!stop_load.load()) {
      ++statuses.made;
      auto r = c->call("admin", "status");
      if (r && ok(*r)) saw_reserved(*r);
      else {
        statuses.fail(code_of(r));
        if (!r) c = connect(ctx, front, 1000);
      }
      std::this_thread::sleep_for(100ms);
    }
  });

  // A Client downloading the release over and over; a broken download is
  // resumed from its partial file by the next attempt.
  Tally downloads;
  std::atomic<int> completed{0}, bad_hash{0};
  load.emplace_back([&] {
    client::UpdateAgent agent(uo);
    const std::string out = dir.file("download.bin");
    while (!stop_load.load()) {
      ++downloads.made;
      auto got = agent.download(*release, out);
      if (!got) {
        downloads.fail("interrupted");
        std::this_thread::sleep_for(100ms);
        continue;
      }
      if (sha256_file_hex(out).value_or("") == release_sha) ++completed;
      else ++bad_hash;
      ::unlink(out.c_str());
    }
  });

  // Faults: SIGKILL a random victim every ~1.5 s; remember every child seen.
  std::set<pid_t> seen;
  auto look = [&] {
    for (const auto& c : children_of(sup)) seen.insert(c.pid);
  };
  std::map<std::string, int> kills;
  std::mt19937 rng(42);
  const auto fault_end = std::chrono::steady_clock::now() + std::chrono::seconds(fault_seconds());
  auto next_kill = std::chrono::steady_clock::now() + 1500ms;
  while (std::chrono::steady_clock::now() < fault_end) {
    look();
    if (std::chrono::steady_clock::now() >= next_kill) {
      std::vector<std::pair<std::string, pid_t>> candidates;
      for (const auto& exe : kVictims)
        for (pid_t p : children_named(sup, exe)) candidates.emplace_back(exe, p);
      if (!candidates.empty()) {
        const auto& [exe, pid] = candidates[rng() % candidates.size()];
        ::kill(pid, SIGKILL);
        ++kills[exe];
      }
      next_kill = std::chrono::steady_clock::now() + Ms(1000 + rng() % 1000);
    }
    std::this_thread::sleep_for(50ms);
  }

  // Settle: every victim kind is back and a reservation goes through.
  auto restored = [&] {
    look();
    for (const auto& exe : kVictims)
      if (children_named(sup, exe).empty()) return false;
    return children_named(sup, "primary-licensed").size() == 2 &&
           code_of(admin->call("license.control", "reserve", {{"computer", Value("PC-0")}})) == "OK" &&
           code_of(admin->call("admin", "status")) == "OK";
  };
  EXPECT_TRUE(wait_until(restored, 15s, 100ms)) << read_file(dir.file("server.log"));
  const auto settled = std::chrono::steady_clock::now();
  stop_load = true;
  for (auto& th : load) th.join();
  // After the faults a download goes through, and none ever had a wrong hash.
  {
    client::UpdateOptions settled_options = uo;
    settled_options.attempts = 20;
    auto got = client::UpdateAgent(settled_options).download(*release, dir.file("final.bin"));
    EXPECT_TRUE(got) << (got ? "" : got.error());
    EXPECT_EQ(sha256_file_hex(dir.file("final.bin")).value_or(""), release_sha);
  }
  EXPECT_EQ(bad_hash.load(), 0);

  // Every Client is licensed again within its (shrunk) retry interval: a
  // contact in flight may first have to time out on every attempt.
  const auto retry_bound = lost_interval * 11 / 10 + contact_timeout * contact_attempts + 1s;
  const bool relicensed = wait_until(all_licensed, std::chrono::duration_cast<Ms>(retry_bound), 20ms);
  const auto relicensed_after =
      std::chrono::duration_cast<Ms>(std::chrono::steady_clock::now() - settled).count();
  std::string not_licensed;
  for (auto& a : agents)
    if (a->state() != LicenseState::licensed)
      not_licensed += a->computer() + " " + std::string(client::to_string(a->state())) + " (" + a->reason() + ") ";
  EXPECT_TRUE(relicensed) << not_licensed;
  stop_agents = true;
  for (auto& th : agent_threads) th.join();
  EXPECT_EQ(withdrawn.load(), 0) << (withdrawn_reasons.empty() ? "" : withdrawn_reasons.front());

  // Every acknowledged reservation is there, with the same license.
  size_t same = 0;
  std::vector<std::string> wrong;
  int64_t final_reserved = -1;
  for (const auto& [name, license] : acked) {
    std::optional<Value> r;
    const bool answered = wait_until([&] {
      auto got = admin->call("license.control", "reserve", {{"computer", Value(name)}});
      if (got && got->find("created")) r = *got;
      return r.has_value();
    }, 5s, 50ms);
    if (!answered) {
      wrong.push_back(name + " (no answer)");
      continue;
    }
    saw_reserved(*r);
    final_reserved = num(*r, "reserved");
    if (str(*r, "license") == license && !r->find("created")->as_bool()) ++same;
    else wrong.push_back(name);
  }
  EXPECT_EQ(same, acked.size()) << "first lost or changed: " << (wrong.empty() ? "" : wrong.front());
  EXPECT_EQ(mismatches.load(), 0);
  EXPECT_EQ(over_cap.load(), 0);
  EXPECT_LE(max_reserved.load(), kPurchased);
  EXPECT_LE(final_reserved, kPurchased);
  auto status = admin->call("admin", "status");
  ASSERT_TRUE(status && ok(*status));
  EXPECT_LE(num(*status, "reserved"), kPurchased);
  EXPECT_EQ(num(*status, "purchased"), kPurchased);

  // SIGTERM: exit 0, and every process ever seen as a child is gone.
  look();
  server.signal(SIGTERM);
  auto exit_code = server.wait_exit(20s);
  ASSERT_TRUE(exit_code.has_value());
  EXPECT_EQ(*exit_code, 0) << read_file(dir.file("server.log"));
  std::vector<pid_t> orphans;
  wait_until([&] {
    orphans.clear();
    for (pid_t p : seen)
      if (!process_gone(p)) orphans.push_back(p);
    return orphans.empty();
  }, 5s, 50ms);
  EXPECT_TRUE(orphans.empty()) << orphans.size() << " orphans, first pid " << (orphans.empty() ? 0 : orphans[0]);

  std::string killed;
  int total_kills = 0;
  for (const auto& [exe, n] : kills) {
    killed += " " + exe + "=" + std::to_string(n);
    total_kills += n;
  }
  std::printf("[fault] %d s of faults, %d SIGKILLs:%s; %zu children seen\n", fault_seconds(), total_kills,
              killed.c_str(), seen.size());
  std::printf("[fault] reserve: %s\n", reserves.text().c_str());
  std::printf("[fault] heartbeat: %s\n", heartbeats.text().c_str());
  std::printf("[fault] admin status: %s\n", statuses.text().c_str());
  std::printf("[fault] downloads of 3 MiB: %s; %d completed with the right hash\n", downloads.text().c_str(),
              completed.load());
  std::printf("[fault] acknowledged reservations %zu, all present %s; max reserved seen %lld of %lld; "
              "clients licensed again %lld ms after settling (bound %lld ms)\n",
              acked.size(), same == acked.size() ? "yes" : "NO", static_cast<long long>(max_reserved.load()),
              static_cast<long long>(kPurchased), static_cast<long long>(relicensed_after),
              static_cast<long long>(std::chrono::duration_cast<Ms>(retry_bound).count()));
  std::fflush(stdout);
}

}  // namespace
}  // namespace primary::test
