// Redis Sentinel and replicated reservations against real processes: one
// master, one replica and three redis-sentinel processes on 127.0.0.1, a
// broker and licensing workers given a sentinel:// URL. The master is
// SIGKILLed under a stream of reservations; the workers must find the
// promoted replica through the Sentinels and every acknowledged reservation
// must be there, with its license, because it was acknowledged only after a
// replica confirmed it (WAIT).
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <map>
#include <mutex>
#include <thread>

#include "common/process.hpp"
#include "common/redis.hpp"
#include "tests/support/sentinel.hpp"
#include "tests/support/stack.hpp"
#include "tests/support/util.hpp"

namespace primary::test {
namespace {

using Clock = std::chrono::steady_clock;

int64_t ms_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(b - a).count();
}

RedisUrl url_of(const std::string& text) {
  auto url = parse_redis_url(text);
  EXPECT_TRUE(url.ok()) << text;
  return url.ok() ? *url : RedisUrl{};
}

// Starts a licensing worker of stack `s` against `redis` with `extra` flags.
void start_worker(Stack& s, const std::string& redis, std::vector<std::string> extra = {}) {
  const std::string sink = endpoints_file_value(s.endpoints_file(), "event-sink").value_or("");
  std::vector<std::string> argv = {bin("primary-licensed"), "--broker", s.workers_endpoint(),
                                   "--event-sink", sink, "--redis", redis,
                                   "--lease-key", s.dir().file("lease.key"),
                                   "--vendor-key", s.vendor_pub_file(),
                                   "--heartbeat-ms", "200", "--slots", "8"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  s.license_workers.push_back(Process::start(argv, {}, s.dir().file("licensed.log")));
}

StackOptions broker_only() {
  StackOptions o;
  o.license_workers = 0;
  o.license_slots = 8;
  return o;
}

#define SKIP_WITHOUT_SENTINEL()                                                        \
  if (sentinel_executable().empty())                                                   \
  GTEST_SKIP() << "redis-sentinel is not installed (Debian package redis-sentinel; " \
                  "see scripts/debian-packages.txt)"

TEST(SentinelFailover, WorkersFollowThePromotedReplicaAndKeepEveryReservation) {
  SKIP_WITHOUT_SENTINEL();
  SentinelGroup g;
  ASSERT_TRUE(g.ok());
  Stack s(broker_only());
  ASSERT_TRUE(s.ok());
  start_worker(s, g.url());
  start_worker(s, g.url());
  ASSERT_TRUE(s.wait_workers("license", 2 * 8)) << read_file(s.dir().file("licensed.log"));

  // Unlocking goes through WAIT too: the master has a replica.
  constexpr int64_t kPurchased = 100000;
  Value unlocked = s.unlock("SN-SENTINEL", kPurchased);
  ASSERT_TRUE(ok(unlocked)) << to_json(unlocked);

  std::mutex mu;
  std::map<std::string, std::string> acked;  // computer -> license
  std::atomic<bool> stop{false};
  std::atomic<int64_t> requests{0}, failed{0}, served_after_kill{0}, over_cap{0}, mismatched{0};
  std::atomic<int64_t> kill_at_ms{-1}, recovered_ms{-1};
  const auto t0 = Clock::now();
  std::thread load([&] {
    auto client = s.client(3000);
    int next = 0;
    int64_t n = 0;
    while (!stop) {
      // Mostly new computers; every 8th request one already acknowledged,
      // which must come back created:false with the same license.
      std::string name = "pc-" + std::to_string(next), known;
      if (++n % 8 == 0) {
        std::lock_guard<std::mutex> lock(mu);
        if (!acked.empty()) {
          auto it = acked.begin();
          std::advance(it, n % acked.size());
          name = it->first;
          known = it->second;
        }
      }
      const int64_t sent_ms = ms_between(t0, Clock::now());
      ++requests;
      auto r = client->call("license.control", "reserve", {{"computer", Value(name)}});
      if (!r || (!ok(*r) && str(*r, "code") != "NO_LICENSES_LEFT")) {
        ++failed;  // UNAVAILABLE or no answer in time: retried (same name) shortly
        std::this_thread::sleep_for(20ms);
        continue;
      }
      if (kill_at_ms >= 0 && sent_ms >= kill_at_ms) {
        if (served_after_kill++ == 0) recovered_ms = ms_between(t0, Clock::now()) - kill_at_ms;
      }
      if (num(*r, "reserved") > num(*r, "purchased")) ++over_cap;
      if (!ok(*r)) continue;
      const std::string computer = str(*r, "computer"), license = str(*r, "license");
      if (!known.empty()) {
        if (license != known || r->find("created")->as_bool()) ++mismatched;
        continue;
      }
      std::lock_guard<std::mutex> lock(mu);
      auto [it, fresh] = acked.emplace(computer, license);
      if (!fresh && it->second != license) ++mismatched;
      ++next;
    }
  });
  auto acked_count = [&] {
    std::lock_guard<std::mutex> lock(mu);
    return acked.size();
  };

  // Some load, then the master dies mid-stream.
  EXPECT_TRUE(wait_until([&] { return acked_count() >= 200; }, 20s, 20ms));
  const size_t before_kill = acked_count();
  kill_at_ms = ms_between(t0, Clock::now());
  g.master().kill9();

  const bool recovered = wait_until([&] { return served_after_kill >= 50; }, 15s, 20ms);
  std::this_thread::sleep_for(1s);  // keep going on the new master a little
  stop = true;
  load.join();
  ASSERT_TRUE(recovered) << "no reservation served after the master died\n" << g.logs();
  EXPECT_GE(recovered_ms, 0);
  EXPECT_LE(recovered_ms, 10000) << "the workers took too long to find the promoted replica";
  EXPECT_EQ(g.reported_master_port(), tcp_port(g.replica())) << g.logs();
  std::printf("[ sentinel ] %lld requests, %zu acknowledged (%zu before the SIGKILL), "
              "%lld failed; served again %lld ms after the master died\n",
              static_cast<long long>(requests.load()), acked.size(), before_kill,
              static_cast<long long>(failed.load()), static_cast<long long>(recovered_ms.load()));

  EXPECT_EQ(over_cap, 0);
  EXPECT_EQ(mismatched, 0);
  // Every acknowledged reservation is on the promoted replica, same license.
  Redis promoted(url_of(g.replica().tcp_url()));
  auto members = promoted.command({"ZRANGE", "ps:res", "0", "-1"});
  ASSERT_TRUE(members.ok()) << members.error().message;
  std::map<std::string, std::string> stored;
  for (const auto& m : members->elements) {
    const size_t colon = m.str.rfind(':');
    stored[m.str.substr(0, colon)] = m.str.substr(colon + 1);
  }
  size_t missing = 0;
  for (const auto& [computer, license] : acked) {
    auto it = stored.find(computer);
    if (it == stored.end() || it->second != license) {
      if (++missing <= 5) ADD_FAILURE() << computer << " acknowledged with " << license << ", stored "
                                        << (it == stored.end() ? "nothing" : it->second);
    }
  }
  EXPECT_EQ(missing, 0u) << "of " << acked.size() << " acknowledged";
  auto purchased = promoted.command({"HGET", "ps:serial", "purchased"});
  ASSERT_TRUE(purchased.ok());
  EXPECT_EQ(purchased->str, std::to_string(kPurchased));
  EXPECT_LE(static_cast<int64_t>(stored.size()), kPurchased);
}

TEST(SentinelFailover, ClientFollowsAManualFailover) {
  SKIP_WITHOUT_SENTINEL();
  SentinelGroup g;
  ASSERT_TRUE(g.ok());
  // A Sentinel that is down comes first in the list: it is skipped, and the
  // one that answered is asked first from then on.
  const int dead = free_tcp_port();
  Redis r(url_of("sentinel://127.0.0.1:" + std::to_string(dead) + "," +
                 g.url().substr(std::string("sentinel://").size())));
  auto before = r.pipeline_replicated({{"SET", "before", "1"}});  // on the replica too
  ASSERT_TRUE(before.ok()) << before.error().message;
  EXPECT_EQ(r.server(), "127.0.0.1:" + std::to_string(tcp_port(g.master())));
  ASSERT_EQ(r.sentinels().size(), 4u);
  EXPECT_EQ(r.sentinels()[0].port, g.sentinels[0]->port());
  EXPECT_EQ(r.sentinels()[1].port, dead);

  Redis sentinel(url_of("redis://" + g.sentinels[0]->address()), RedisOptions{500, 500, 300, 0});
  auto failover = sentinel.command({"SENTINEL", "FAILOVER", "mymaster"});
  ASSERT_TRUE(failover.ok() && failover->is_status("OK")) << (failover ? failover->str : "");
  const int promoted_port = tcp_port(g.replica());
  ASSERT_TRUE(wait_until([&] { return g.reported_master_port() == promoted_port; }, 10s, 50ms))
      << g.logs();

  // The old master turns replica under the client's open connection (the
  // Sentinels would do it too, on their next look at it): the write gets
  // READONLY, the client asks the Sentinels again and lands on the
  // promoted replica.
  Redis old_master(url_of(g.master().tcp_url()));
  ASSERT_TRUE(old_master.command({"REPLICAOF", "127.0.0.1", std::to_string(promoted_port)})
                  ->is_status("OK"));
  const std::string promoted = "127.0.0.1:" + std::to_string(promoted_port);
  EXPECT_TRUE(wait_until(
      [&] {
        auto set = r.pipeline({{"SET", "after", "2"}});
        return set && (*set)[0].is_status("OK") && r.server() == promoted;
      },
      10s, 50ms))
      << r.server() << "\n" << g.logs();
  Redis replica(url_of(g.replica().tcp_url()));
  EXPECT_EQ(replica.command({"GET", "before"})->str, "1");
  EXPECT_EQ(replica.command({"GET", "after"})->str, "2");
}

TEST(ReplicatedReservations, UnconfirmedReserveIsUnavailableThenIdempotent) {
  SentinelGroup::Options no_sentinels;
  no_sentinels.sentinels = 0;  // a master and its replica only
  SentinelGroup g(no_sentinels);
  ASSERT_TRUE(g.ok());
  Stack s(broker_only());
  ASSERT_TRUE(s.ok());
  start_worker(s, g.master().tcp_url(), {"--redis-wait-timeout-ms", "1000"});
  ASSERT_TRUE(s.wait_workers("license", 8));
  Value unlocked = s.unlock("SN-WAIT", 10);
  ASSERT_TRUE(ok(unlocked)) << to_json(unlocked);
  Value first = s.call("license.control", "reserve", {{"computer", Value("ws-1")}});
  ASSERT_TRUE(ok(first)) << to_json(first);
  EXPECT_TRUE(first.find("created")->as_bool());

  // A replica that stops acknowledging: the reservation is made on the
  // master but never answered created:true.
  ASSERT_EQ(kill(g.replica().pid(), SIGSTOP), 0);
  Value refused = s.call("license.control", "reserve", {{"computer", Value("ws-2")}});
  ASSERT_EQ(kill(g.replica().pid(), SIGCONT), 0);
  EXPECT_FALSE(ok(refused)) << to_json(refused);
  EXPECT_EQ(str(refused, "code"), "UNAVAILABLE");
  EXPECT_NE(str(refused, "message").find("replica"), std::string::npos) << to_json(refused);
  EXPECT_EQ(refused.find("created"), nullptr);

  // The Control Center retries and gets the same license, created:false.
  Value retried;
  EXPECT_TRUE(wait_until(
      [&] {
        retried = s.call("license.control", "reserve", {{"computer", Value("ws-2")}});
        return ok(retried);
      },
      10s, 100ms))
      << to_json(retried);
  EXPECT_FALSE(retried.find("created")->as_bool());
  EXPECT_EQ(num(retried, "reserved"), 2);
  Redis replica(url_of(g.replica().tcp_url()));
  auto stored = replica.command({"ZRANGEBYLEX", "ps:res", "[WS-2:", "[WS-2:\xff"});
  ASSERT_TRUE(stored.ok() && stored->elements.size() == 1u);
  EXPECT_EQ(stored->elements[0].str, "WS-2:" + str(retried, "license"));
}

TEST(ReplicatedReservations, BadSettingsStopTheWorkerWithOneLine) {
  for (const auto& [flags, expect] : std::vector<std::pair<std::string, std::string>>{
           {"--redis sentinel://127.0.0.1:1", "master name"},
           {"--redis sentinel://127.0.0.1:1/m?sentinel_pass=x", "sentinel_password"},
           {"--redis unix:///x --redis-wait-replicas many", "redis-wait-replicas"},
           {"--redis unix:///x --redis-wait-replicas -1", "redis-wait-replicas"},
           {"--redis unix:///x --redis-wait-timeout-ms 0", "redis-wait-timeout-ms"}}) {
    int rc = 0;
    const std::string out = run_capture(
        {"sh", "-c", bin("primary-licensed") + " --lease-key /nonexistent " + flags + " 2>&1"}, &rc);
    EXPECT_EQ(rc, 2) << flags << ": " << out;
    EXPECT_NE(out.find(expect), std::string::npos) << flags << ": " << out;
    EXPECT_EQ(out.find('\n'), std::string::npos) << flags << ": " << out;
  }
}

}  // namespace
}  // namespace primary::test
