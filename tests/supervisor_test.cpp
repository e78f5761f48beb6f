// System tests of primary-server: it starts a private Redis, the broker and
// the workers, restarts a killed worker, stops everything in order on
// SIGTERM, and refuses bad configuration with one clear line.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <zmq.hpp>

#include "common/client.hpp"
#include "tests/support/procfs.hpp"
#include "tests/support/process.hpp"
#include "tests/support/temp_dir.hpp"
#include "tests/support/util.hpp"
#include "server/supervisor.hpp"
#include "web/listen.hpp"

namespace primary::test {
namespace {

namespace fs = std::filesystem;

size_t line_count(const std::string& text) {
  return static_cast<size_t>(std::count(text.begin(), text.end(), '\n')) +
         (!text.empty() && text.back() != '\n' ? 1 : 0);
}

class SupervisorTest : public ::testing::Test {
 protected:
  std::string data() const { return dir_.file("data"); }
  std::string log() const { return read_file(dir_.file("server.log")); }
  std::string endpoints_file() const { return data() + "/run/endpoints"; }

  // Starts primary-server with two admin workers and no others, and waits
  // until the broker has published its endpoints.
  void start_server() {
    server_ = Process::start({bin("primary-server"), "--data-dir", data(), "--front",
                              "tcp://127.0.0.1:*", "--events", "tcp://127.0.0.1:*", "--insecure",
                              "--admin-workers", "2", "--license-workers", "0",
                              "--updater-workers", "0", "--no-web",
                              "--heartbeat-ms", "200", "--heartbeat-liveness", "3"},
                             {}, dir_.file("server.log"));
    ASSERT_TRUE(wait_until([&] { return endpoints_file_value(endpoints_file(), "front").has_value(); },
                           15s))
        << log();
    front_ = *endpoints_file_value(endpoints_file(), "front");
    ASSERT_TRUE(wait_until([&] { return children_named(server_.pid(), "primary-admin").size() == 2; },
                           5s))
        << log();
  }

  MdpClient client(int timeout_ms = 1000) {
    ClientOptions opt;
    opt.endpoints = {front_};
    opt.timeout_ms = timeout_ms;
    return MdpClient(ctx_, opt);
  }

  // An admin worker answered `admin status` with the broker's view of it.
  bool status_ok(MdpClient& c) {
    auto reply = c.call("admin", "status");
    if (!reply) return false;
    const Value* ok = reply->find("ok");
    const Value* services = reply->find("services");
    return ok && ok->is_bool() && ok->as_bool() && services && services->is_map();
  }

  // Runs primary-server with `args` and expects a refusal: non-zero exit and
  // exactly one line on stderr.
  void expect_refusal(std::vector<std::string> args, const std::string& fragment) {
    const std::string out = dir_.file("refusal.log");
    fs::remove(out);
    // Not the default console port, which may be in use here.
    if (std::find(args.begin(), args.end(), "--web") == args.end()) args.insert(args.begin(), {"--web", "127.0.0.1:0"});
    args.insert(args.begin(), bin("primary-server"));
    Process p = Process::start(args, {}, out);
    auto code = p.wait_exit(10s);
    ASSERT_TRUE(code.has_value()) << "still running: " << read_file(out);
    EXPECT_NE(*code, 0);
    const std::string text = read_file(out);
    EXPECT_EQ(line_count(text), 1u) << text;
    EXPECT_NE(text.find(fragment), std::string::npos) << text;
  }

  TempDir dir_{"sv"};
  zmq::context_t ctx_;
  Process server_;
  std::string front_;
};

TEST_F(SupervisorTest, StartsPrivateRedisBrokerAndWorkers) {
  ASSERT_NO_FATAL_FAILURE(start_server());
  auto c = client();
  EXPECT_TRUE(status_ok(c)) << log();
  auto mmi = c.request("mmi.service", "admin");
  ASSERT_TRUE(mmi) << mmi.error().message;
  EXPECT_EQ(*mmi, "200");

  EXPECT_EQ(children_named(server_.pid(), "redis-server").size(), 1u);
  EXPECT_EQ(children_named(server_.pid(), "primary-broker").size(), 1u);
  EXPECT_NE(log().find("listening front=" + front_), std::string::npos) << log();
}

TEST_F(SupervisorTest, RedisLivesUnderTheDataDir) {
  ASSERT_NO_FATAL_FAILURE(start_server());
  struct stat st{};
  ASSERT_EQ(::stat((data() + "/run/redis.sock").c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_TRUE(fs::is_directory(data() + "/redis/appendonlydir"));
  const std::string conf = read_file(data() + "/redis/redis.conf");
  EXPECT_NE(conf.find("port 0\n"), std::string::npos);
  EXPECT_NE(conf.find("appendfsync always\n"), std::string::npos);
  ASSERT_EQ(::stat((data() + "/redis/password").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  std::string password = read_file(data() + "/redis/password");
  password.erase(password.find_last_not_of("\r\n") + 1);
  auto pong = redis_command(data() + "/run/redis.sock", password, {"PING"}, 1000);
  ASSERT_TRUE(pong) << pong.error().message;
  EXPECT_EQ(*pong, "+PONG");
  auto refused = redis_command(data() + "/run/redis.sock", "", {"PING"}, 1000);
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->rfind("-NOAUTH", 0), 0u) << *refused;
}

TEST_F(SupervisorTest, RestartsKilledWorkersWithinTwoSeconds) {
  ASSERT_NO_FATAL_FAILURE(start_server());
  const auto before = children_named(server_.pid(), "primary-admin");
  ASSERT_EQ(before.size(), 2u);
  // Kill every admin worker, so only restarted ones can answer.
  for (pid_t pid : before) ASSERT_EQ(::kill(pid, SIGKILL), 0);

  auto c = client(300);
  const bool back = wait_until(
      [&] {
        auto now = children_named(server_.pid(), "primary-admin");
        for (pid_t pid : before)
          if (now.count(pid)) return false;
        return now.size() == 2 && status_ok(c);
      },
      2s, 20ms);
  EXPECT_TRUE(back) << log();
  EXPECT_NE(log().find("exited unexpectedly"), std::string::npos) << log();
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(status_ok(c));
}

TEST_F(SupervisorTest, SigtermStopsEverythingAndExitsZero) {
  ASSERT_NO_FATAL_FAILURE(start_server());
  const auto children = children_of(server_.pid());
  ASSERT_EQ(children.size(), 4u);  // redis, broker, two admin workers
  ASSERT_TRUE(server_.signal(SIGTERM));
  auto code = server_.wait_exit(10s);
  ASSERT_TRUE(code.has_value()) << log();
  EXPECT_EQ(*code, 0) << log();
  for (const auto& c : children) EXPECT_TRUE(process_gone(c.pid)) << c.exe << " pid " << c.pid;
  EXPECT_FALSE(fs::exists(data() + "/run/redis.sock"));
}

TEST_F(SupervisorTest, KilledSupervisorLeavesNoOrphans) {
  ASSERT_NO_FATAL_FAILURE(start_server());
  const auto children = children_of(server_.pid());
  ASSERT_EQ(children.size(), 4u);
  server_.kill();
  for (const auto& c : children)
    EXPECT_TRUE(wait_until([&] { return process_gone(c.pid); }, 5s)) << c.exe << " pid " << c.pid;
}

TEST_F(SupervisorTest, SecondSupervisorOnTheSameDataDirIsRefused) {
  ASSERT_NO_FATAL_FAILURE(start_server());
  expect_refusal({"--data-dir", data(), "--front", "tcp://127.0.0.1:*", "--events",
                  "tcp://127.0.0.1:*", "--insecure"},
                 "already running");
}

TEST_F(SupervisorTest, BadFlagValueIsOneLine) {
  expect_refusal({"--data-dir", data(), "--license-workers", "abc"}, "license-workers");
}

TEST_F(SupervisorTest, UnknownConfigKeyIsOneLine) {
  const std::string file = dir_.file("server.toml");
  std::ofstream(file) << "data_dir = \"" << data() << "\"\nno_such_setting = 3\n";
  expect_refusal({"--config", file}, "no_such_setting");
}

TEST_F(SupervisorTest, UnwritableDataDirIsOneLine) {
  const std::string file = dir_.file("plain-file");
  std::ofstream(file) << "x";
  expect_refusal({"--data-dir", file + "/data"}, "data dir");
}

TEST_F(SupervisorTest, MissingRedisServerIsOneLine) {
  expect_refusal({"--data-dir", data(), "--redis-server", dir_.file("no-such-redis")}, "redis-server");
}

// The supervisor holds the console's port itself: one in use stops its start.
TEST_F(SupervisorTest, WebPortInUseIsOneLine) {
  auto fd = web::listen_socket({"127.0.0.1", 0});
  ASSERT_TRUE(fd.ok()) << fd.error().message;
  auto port = web::listening_port(*fd);
  ASSERT_TRUE(port.ok()) << port.error().message;
  const std::string taken = "127.0.0.1:" + std::to_string(*port);
  expect_refusal({"--data-dir", data(), "--insecure", "--web", taken}, "cannot listen on " + taken);
  ::close(*fd);
}

}  // namespace
}  // namespace primary::test
