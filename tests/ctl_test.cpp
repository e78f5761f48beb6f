// primaryctl as an admin runs it: the real executable against a real broker
// and echo worker; what it prints and its exit codes (0 ok, 1 error reply,
// 2 usage, 3 unreachable).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "tests/support/process.hpp"
#include "tests/support/temp_dir.hpp"
#include "tests/support/util.hpp"

namespace primary {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

struct CtlRun {
  int code = -1;
  std::string out, err;
  long long ms = 0;
};

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// A TCP port on 127.0.0.1 that nothing listens on (bound, then closed).
int unused_port() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ADD_FAILURE() << "cannot find a free port";
    if (fd >= 0) close(fd);
    return 1;
  }
  close(fd);
  return ntohs(addr.sin_port);
}

// The `services` table: name -> (state, workers).
std::map<std::string, std::pair<std::string, std::string>> service_rows(const std::string& out) {
  std::map<std::string, std::pair<std::string, std::string>> rows;
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);) {
    std::istringstream cols(line);
    std::string name, state, workers;
    cols >> name >> state >> workers;
    rows[name] = {state, workers};
  }
  return rows;
}

class CtlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    broker_ = test::Process::start(
        {test::bin("primary-broker"), "--insecure", "--front", "tcp://127.0.0.1:*", "--events",
         "tcp://127.0.0.1:*", "--workers-endpoint", "tcp://127.0.0.1:*", "--event-sink",
         "tcp://127.0.0.1:*", "--endpoints-file", dir_.file("ep"), "--heartbeat-ms", "100",
         "--request-timeout-ms", "1000"},
        {}, dir_.file("broker.log"));
    std::string workers;
    ASSERT_TRUE(test::wait_until(
        [&] {
          std::istringstream in(test::read_file(dir_.file("ep")));
          for (std::string line; std::getline(in, line);) {
            if (line.starts_with("front=")) front_ = line.substr(6);
            if (line.starts_with("workers=")) workers = line.substr(8);
          }
          return !front_.empty() && !workers.empty();
        },
        10s))
        << "the broker wrote no endpoints file";
    worker_ = test::Process::start(
        {test::bin("primary-echo-worker"), "--broker", workers, "--heartbeat-ms", "100"}, {},
        dir_.file("worker.log"));
    ASSERT_TRUE(test::wait_until(
        [&] { return ctl({"--server", front_, "call", "mmi.service", "echo"}).code == 0; }, 10s,
        50ms))
        << "the echo worker never registered";
  }

  void TearDown() override {
    worker_.kill();
    broker_.kill();
    if (HasFailure())
      std::cerr << "---- broker log ----\n" << test::read_file(dir_.file("broker.log"));
  }

  // Runs primaryctl with `args`, stdout and stderr captured separately.
  CtlRun ctl(const std::vector<std::string>& args,
             const std::map<std::string, std::string>& env = {}) {
    std::string cmd = "exec " + shell_quote(test::bin("primaryctl"));
    for (const auto& a : args) cmd += " " + shell_quote(a);
    cmd += " >" + shell_quote(dir_.file("out")) + " 2>" + shell_quote(dir_.file("err"));
    CtlRun r;
    const auto start = Clock::now();
    auto p = test::Process::start({"/bin/sh", "-c", cmd}, env);
    r.code = p.wait_exit(30s).value_or(-1);
    r.ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
    r.out = test::read_file(dir_.file("out"));
    r.err = test::read_file(dir_.file("err"));
    return r;
  }

  test::TempDir dir_{"pct"};
  test::Process broker_, worker_;
  std::string front_;
};

TEST_F(CtlTest, CallPrintsTheReplyAsJson) {
  CtlRun r = ctl({"--server", front_, "call", "echo", "echo", "payload=hi"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find(R"("ok":true)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(R"("payload":"hi")"), std::string::npos) << r.out;
  EXPECT_EQ(r.err, "");

  // Typed values; global flags may also follow the subcommand.
  r = ctl({"call", "echo", "echo", "payload=-42", "rid=true", "--server", front_});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find(R"("payload":-42)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(R"("rid":true)"), std::string::npos) << r.out;
  r = ctl({"--server", front_, "call", "echo", "echo", "payload=null", "rid=a=b"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find(R"("payload":null)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(R"("rid":"a=b")"), std::string::npos) << r.out;
  r = ctl({"--server", front_, "call", "echo", "sleep", "ms=5"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find(R"("slept_ms":5)"), std::string::npos) << r.out;
}

TEST_F(CtlTest, ServerFromEnvironment) {
  CtlRun r = ctl({"call", "echo", "echo", "payload=env"}, {{"PRIMARY_SERVER", front_}});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find(R"("payload":"env")"), std::string::npos) << r.out;
}

TEST_F(CtlTest, ErrorReplyExitsOne) {
  CtlRun r = ctl({"--server", front_, "call", "echo", "nope"});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("UNKNOWN_OP: "), std::string::npos) << r.err;
  EXPECT_NE(r.out.find(R"("ok":false)"), std::string::npos) << r.out;

  r = ctl({"--server", front_, "call", "echo", "sleep", "ms=fast"});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("BAD_REQUEST: "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("ms"), std::string::npos) << r.err;

  r = ctl({"--server", front_, "call", "mmi.service", "nosuch"});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("404"), std::string::npos) << r.out;
}

TEST_F(CtlTest, UnreachableServerExitsThreeWithinTheTimeout) {
  const std::string dead = "tcp://127.0.0.1:" + std::to_string(unused_port());
  CtlRun r = ctl({"--server", dead, "--timeout-ms", "500", "call", "echo", "echo"});
  EXPECT_EQ(r.code, 3) << r.out << r.err;
  EXPECT_NE(r.err.find("500 ms"), std::string::npos) << r.err;
  EXPECT_EQ(r.out, "");
  EXPECT_GE(r.ms, 450);
  EXPECT_LT(r.ms, 2500) << "primaryctl did not give up at its timeout";

  r = ctl({"--server", dead, "--timeout-ms", "300", "services"});
  EXPECT_EQ(r.code, 3) << r.out << r.err;

  // With a list, the next server answers.
  r = ctl({"--server", dead + "," + front_, "--timeout-ms", "300", "call", "echo", "echo",
           "payload=second"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find(R"("payload":"second")"), std::string::npos) << r.out;
}

TEST_F(CtlTest, BadUsageExitsTwo) {
  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
           {},
           {"nosuch-command"},
           {"--server", front_, "call"},
           {"--server", front_, "call", "echo"},
           {"--server", front_, "call", "echo", "echo", "no-equals-sign"},
           {"--server", front_, "call", "echo", "echo", "=value"},
           {"--server", front_, "call", "echo", "echo", "op=echo"},
           {"--server", front_, "call", "echo", "echo", "a=1", "a=2"},
           {"--server", front_, "--timeout-ms", "soon", "call", "echo", "echo"},
           {"--server", front_, "--bogus", "services"},
           {"--server", ",", "services"},
       }) {
    std::string shown;
    for (const auto& a : args) shown += a + " ";
    CtlRun r = ctl(args);
    EXPECT_EQ(r.code, 2) << "primaryctl " << shown << "\n" << r.out << r.err;
    EXPECT_FALSE(r.err.empty()) << "primaryctl " << shown << ": no message";
  }
  CtlRun help = ctl({"--help"});
  EXPECT_EQ(help.code, 0);
  EXPECT_NE(help.out.find("call"), std::string::npos) << help.out;
  EXPECT_NE(help.out.find("services"), std::string::npos) << help.out;
}

TEST_F(CtlTest, ServicesListsStateAndWorkers) {
  CtlRun r = ctl({"--server", front_, "services"});
  ASSERT_EQ(r.code, 0) << r.err;
  auto rows = service_rows(r.out);
  EXPECT_EQ(rows["echo"], std::make_pair(std::string("up"), std::string("1"))) << r.out;
  EXPECT_EQ(rows["license"].first, "down") << r.out;
  EXPECT_EQ(rows["broker.control"].first, "up") << r.out;
  for (const char* name : {"license", "license.control", "update", "update.control", "admin"})
    EXPECT_TRUE(rows.count(name)) << name << " missing:\n" << r.out;

  worker_.kill();
  std::string last;
  EXPECT_TRUE(test::wait_until(
      [&] {
        last = ctl({"--server", front_, "services"}).out;
        return service_rows(last)["echo"].first == "down";
      },
      5s, 50ms))
      << last;
}

}  // namespace
}  // namespace primary
