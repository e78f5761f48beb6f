// The data layout version (common/layout.hpp) with the real programs and a
// real redis-server: a fresh database gets it written at first start; every
// program that touches Redis refuses a newer layout with one line and exit
// code 2, changing nothing; an older layout (data without the version) is
// migrated once, however many programs start at the same time, and the
// migration is in the activity log.
#include "common/layout.hpp"

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <thread>

#include "common/codec.hpp"
#include "common/names.hpp"
#include "common/process.hpp"
#include "common/tokens.hpp"
#include "tests/support/process.hpp"
#include "tests/support/redis_server.hpp"
#include "tests/support/stack.hpp"
#include "tests/support/temp_dir.hpp"
#include "tests/support/util.hpp"

namespace primary::test {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

class Layout : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(redis_.ok());
    auto url = parse_redis_url(redis_.url());
    ASSERT_TRUE(url.ok());
    url_ = *url;
    ASSERT_TRUE(ensure_signing_key(dir_.file("lease.key")));
  }
  Redis client() { return Redis(url_); }
  std::string get(const std::string& key) {
    Redis r = client();
    auto v = r.command({"GET", key});
    return v && v->is_str() ? v->str : std::string("(nil)");
  }
  // Every key with its type and length: what "nothing changed" compares.
  std::vector<std::string> everything() {
    Redis r = client();
    std::vector<std::string> out;
    auto keys = r.command({"KEYS", "*"});
    if (!keys || !keys->is_array()) return {"KEYS failed"};
    for (const auto& k : keys->elements) {
      auto dump = r.command({"DUMP", k.str});
      out.push_back(k.str + "=" + (dump && dump->is_str() ? dump->str : std::string("?")));
    }
    std::sort(out.begin(), out.end());
    return out;
  }
  // The data.migrated entries of the activity log, as "from->to".
  std::vector<std::string> migrations() {
    Redis r = client();
    std::vector<std::string> out;
    auto all = r.command({"XRANGE", "ps:events", "-", "+"});
    if (!all || !all->is_array()) return out;
    for (const auto& e : all->elements) {
      const auto& f = e.elements[1].elements;
      std::string type, data;
      for (size_t i = 0; i + 1 < f.size(); i += 2) {
        if (f[i].str == "type") type = f[i + 1].str;
        if (f[i].str == "data") data = f[i + 1].str;
      }
      if (type != event::kDataMigrated) continue;
      auto v = unpack_value(data);
      const Value* from = v ? v->find("from") : nullptr;
      const Value* to = v ? v->find("to") : nullptr;
      out.push_back((from && from->is_int() ? std::to_string(from->as_int()) : "?") + "->" +
                    (to && to->is_int() ? std::to_string(to->as_int()) : "?"));
    }
    return out;
  }
  // Data as written before the layout was versioned (layout 0).
  void write_layout0_data() {
    Redis r = client();
    ASSERT_TRUE(r.command({"HSET", "ps:serial", "serial", "SN-OLD", "purchased", "10"}));
    ASSERT_TRUE(r.command({"ZADD", "ps:res", "0", "PC-1:L-1"}));
  }
  // Each program that touches Redis, pointed at this one.
  std::vector<std::pair<std::string, std::vector<std::string>>> programs() {
    const std::string broker = "tcp://127.0.0.1:1";
    fs::create_directories(dir_.file("data/keys"));
    EXPECT_TRUE(ensure_signing_key(dir_.file("data/keys/lease.key")));
    return {
        {"primary-licensed", {bin("primary-licensed"), "--broker", broker, "--redis", redis_.url(), "--lease-key",
                              dir_.file("lease.key")}},
        {"primary-updater", {bin("primary-updater"), "--broker", broker, "--redis", redis_.url(), "--update-dir",
                             dir_.file("updates")}},
        {"primary-admin", {bin("primary-admin"), "--broker", broker, "--redis", redis_.url()}},
        {"primary-server", {bin("primary-server"), "--redis", redis_.url(), "--data-dir", dir_.file("server"),
                            "--web", "127.0.0.1:0", "--no-web", "--front", "tcp://127.0.0.1:*", "--events",
                            "tcp://127.0.0.1:*"}},
        {"primaryctl backup", {bin("primaryctl"), "backup", "--redis", redis_.url(), "--data-dir",
                               dir_.file("data"), "--out", dir_.file("refused.backup")}},
    };
  }

  RedisServer redis_;
  RedisUrl url_;
  TempDir dir_{"layout"};
};

TEST_F(Layout, NewerLayoutIsRefusedByEveryProgramWithOneLineTouchingNothing) {
  write_layout0_data();
  {
    Redis r = client();
    ASSERT_TRUE(r.command({"SET", "ps:layout", "99"}));
  }
  const auto before = everything();
  int n = 0;
  for (const auto& [name, argv] : programs()) {
    const std::string log = dir_.file("refused-" + std::to_string(++n) + ".log");
    Process p = Process::start(argv, {}, log);
    EXPECT_EQ(p.wait_exit(20s), 2) << name << ": " << read_file(log);
    const std::string out = read_file(log);
    // primary-server logs its start and stop around it; every other program prints just the line.
    EXPECT_NE(out.find("the data is in layout 99, newer than this release's 1"), std::string::npos)
        << name << ": " << out;
    if (name != "primary-server") {
      EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1) << name << ": " << out;
    }
    EXPECT_EQ(everything(), before) << name << " changed the data";
  }
  EXPECT_FALSE(fs::exists(dir_.file("refused.backup")));
}

TEST_F(Layout, AFreshDatabaseGetsTheLayoutAtFirstStartAndNoMigration) {
  const std::string log = dir_.file("licensed.log");
  Process p = Process::start(programs()[0].second, {}, log);
  ASSERT_TRUE(wait_until([&] { return get("ps:layout") != "(nil)" || !p.alive(); }, 20s)) << read_file(log);
  EXPECT_EQ(get("ps:layout"), std::to_string(layout::kCurrent));
  EXPECT_TRUE(p.alive()) << read_file(log);
  p.signal(SIGTERM);
  EXPECT_EQ(p.wait_exit(10s), 0) << read_file(log);
  EXPECT_TRUE(migrations().empty());
  Redis r = client();
  auto found = layout::read(r);
  ASSERT_TRUE(found.ok());
  EXPECT_EQ(found->version, layout::kCurrent);
  EXPECT_FALSE(found->empty);
}

TEST_F(Layout, OlderLayoutIsMigratedOnceUnderTheLockWithAnEvent) {
  write_layout0_data();
  {
    Redis r = client();
    auto found = layout::read(r);
    ASSERT_TRUE(found.ok());
    EXPECT_EQ(found->version, 0);
    EXPECT_FALSE(found->empty);
  }
  // Eight programs' worth of start-ups at once: one migrates, the others
  // find it done.
  std::atomic<int> migrated{0}, current{0}, failed{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i)
    threads.emplace_back([&] {
      Redis r = client();
      auto out = layout::ensure(r, 1000);
      if (!out) ++failed;
      else if (out->kind == layout::Outcome::Kind::Migrated && out->found == 0) ++migrated;
      else if (out->kind == layout::Outcome::Kind::Current) ++current;
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(failed.load(), 0);
  EXPECT_EQ(migrated.load(), 1);
  EXPECT_EQ(current.load(), 7);
  EXPECT_EQ(get("ps:layout"), "1");
  EXPECT_EQ(get("ps:layout:lock"), "(nil)") << "the lock is released";
  EXPECT_EQ(migrations(), std::vector<std::string>{"0->1"});
  Redis r = client();
  auto serial = r.command({"HGET", "ps:serial", "serial"});
  ASSERT_TRUE(serial && serial->is_str());
  EXPECT_EQ(serial->str, "SN-OLD");
}

TEST_F(Layout, TheSupervisorMigratesBeforeAnyWorkerServes) {
  write_layout0_data();
  const std::string log = dir_.file("server.log");
  Process p = Process::start(programs()[3].second, {}, log);
  ASSERT_TRUE(wait_until([&] { return fs::exists(dir_.file("server/run/endpoints")) || !p.alive(); }, 30s))
      << read_file(log);
  EXPECT_EQ(get("ps:layout"), "1");
  EXPECT_EQ(migrations(), std::vector<std::string>{"0->1"});
  const std::string out = read_file(log);
  EXPECT_NE(out.find("data migrated from layout 0 to 1"), std::string::npos) << out;
  p.signal(SIGTERM);
  EXPECT_EQ(p.wait_exit(15s), 0) << read_file(log);
  // A second start finds it current: no second migration.
  ::unlink(dir_.file("server/run/endpoints").c_str());
  Process again = Process::start(programs()[3].second, {}, log);
  ASSERT_TRUE(wait_until([&] { return fs::exists(dir_.file("server/run/endpoints")) || !again.alive(); }, 30s));
  EXPECT_EQ(migrations(), std::vector<std::string>{"0->1"});
  again.signal(SIGTERM);
  EXPECT_EQ(again.wait_exit(15s), 0);
}

}  // namespace
}  // namespace primary::test
