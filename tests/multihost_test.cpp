// Several hosts, one server: Redis, the broker, the workers and the Control
// Center each run in their own network namespace, joined by veth pairs to a
// bridge in a fifth one, with addresses this test assigns (10.77.N.0/24).
// Nothing can reach anything over loopback, so every address a component
// uses must come from its configuration: if some piece assumed one host
// (127.0.0.1, a Unix socket, a shared file) this test fails. Skipped with a
// message where the kernel refuses namespaces (an unprivileged container).
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <fstream>
#include <random>

#include "common/crypto.hpp"
#include "common/process.hpp"
#include "common/tokens.hpp"
#include "tests/support/process.hpp"
#include "tests/support/stack.hpp"
#include "tests/support/temp_dir.hpp"
#include "tests/support/util.hpp"

namespace primary::test {
namespace {

int sh(const std::string& cmd, std::string* out = nullptr) {
  int code = -1;
  std::string text = run_capture({"/bin/sh", "-c", cmd + " 2>&1"}, &code);
  if (out) *out = text;
  return code;
}

// Namespaces HUB (a bridge) plus one per role, each with one address.
class Hosts {
 public:
  Hosts() {
    std::mt19937 rng(static_cast<unsigned>(::getpid()));
    tag_ = std::to_string(::getpid() % 100000);
    subnet_ = "10.77." + std::to_string(1 + rng() % 250);
    std::string out;
    if (sh("ip netns add " + ns("hub"), &out) != 0) {
      refused_ = "cannot create a network namespace (" + out + ")";
      return;
    }
    made_.push_back(ns("hub"));
    ok_ = sh("ip -n " + ns("hub") + " link add br0 type bridge && ip -n " + ns("hub") + " link set br0 up", &out) == 0;
    if (!ok_) refused_ = "cannot create a bridge (" + out + ")";
  }
  ~Hosts() {
    for (const auto& n : made_) sh("ip netns del " + n);
  }
  const std::string& refused() const { return refused_; }
  bool ok() const { return ok_; }

  // Adds host `role` as 10.77.S.index; returns its address ("" on failure).
  std::string add(const std::string& role, int index) {
    const std::string n = ns(role), addr = subnet_ + "." + std::to_string(index);
    const std::string a = "pv" + tag_ + "a" + std::to_string(index), b = "pv" + tag_ + "b" + std::to_string(index);
    std::string out;
    const std::string cmd = "ip netns add " + n + " && ip link add " + a + " type veth peer name " + b +
                            " && ip link set " + a + " netns " + n + " && ip link set " + b + " netns " + ns("hub") +
                            " && ip -n " + ns("hub") + " link set " + b + " master br0 up && ip -n " + n +
                            " addr add " + addr + "/24 dev " + a + " && ip -n " + n + " link set " + a +
                            " up && ip -n " + n + " link set lo up";
    made_.push_back(n);
    if (sh(cmd, &out) != 0) {
      ADD_FAILURE() << cmd << ": " << out;
      return "";
    }
    return addr;
  }
  // argv run inside host `role`.
  std::vector<std::string> in(const std::string& role, std::vector<std::string> argv) const {
    argv.insert(argv.begin(), {"ip", "netns", "exec", ns(role)});
    return argv;
  }
  std::string ns(const std::string& role) const { return "ps" + tag_ + "-" + role; }

 private:
  std::string tag_, subnet_, refused_;
  bool ok_ = false;
  std::vector<std::string> made_;
};

TEST(MultiHost, EveryComponentOnItsOwnHost) {
  if (::geteuid() != 0) GTEST_SKIP() << "network namespaces need root (ip netns)";
  Hosts hosts;
  if (!hosts.refused().empty()) GTEST_SKIP() << "the kernel refuses network namespaces here: " << hosts.refused();
  ASSERT_TRUE(hosts.ok());
  const std::string redis_ip = hosts.add("redis", 1), broker_ip = hosts.add("broker", 2),
                    worker_ip = hosts.add("workers", 3), client_ip = hosts.add("center", 4);
  ASSERT_FALSE(redis_ip.empty() || broker_ip.empty() || worker_ip.empty() || client_ip.empty());
  // The hosts see each other, and only over the bridge.
  std::string out;
  ASSERT_EQ(sh("ip netns exec " + hosts.ns("center") + " ping -c1 -W2 " + broker_ip, &out), 0) << out;

  TempDir dir("mhost");
  int code = -1;
  run_capture({bin("primary-vendor"), "keygen", "--out", dir.file("vendor")}, &code);
  ASSERT_EQ(code, 0);
  run_capture({bin("primaryctl"), "keys", "create", "--out", dir.file("keys"), "--name", "server"}, &code);
  ASSERT_EQ(code, 0);
  run_capture({bin("primaryctl"), "keys", "create", "--out", dir.file("keys"), "--name", "admin"}, &code);
  ASSERT_EQ(code, 0);
  {
    std::ofstream(dir.file("admins")) << read_file(dir.file("keys/admin.pub"));
  }
  ASSERT_TRUE(ensure_signing_key(dir.file("lease.key")));
  std::string server_pub = read_file(dir.file("keys/server.pub"));
  while (!server_pub.empty() && std::isspace(static_cast<unsigned char>(server_pub.back()))) server_pub.pop_back();

  // Redis on its host, reachable only at its address, with a password.
  const std::string password = hex_encode(random_bytes(12));
  Process redis = Process::start(hosts.in("redis", {"redis-server", "--bind", redis_ip, "--port", "6379",
                                                    "--protected-mode", "no", "--requirepass", password, "--save",
                                                    "", "--appendonly", "no", "--dir", dir.path()}),
                                 {}, dir.file("redis.log"));
  // The broker on its host, CURVE on the front door.
  Process broker = Process::start(
      hosts.in("broker", {bin("primary-broker"), "--front", "tcp://" + broker_ip + ":*", "--events",
                          "tcp://" + broker_ip + ":*", "--workers-endpoint", "tcp://" + broker_ip + ":*",
                          "--event-sink", "tcp://" + broker_ip + ":*", "--endpoints-file", dir.file("endpoints"),
                          "--server-key", dir.file("keys/server.key"), "--admin-keys", dir.file("admins"),
                          "--heartbeat-ms", "200"}),
      {}, dir.file("broker.log"));
  ASSERT_TRUE(wait_until([&] { return endpoints_file_value(dir.file("endpoints"), "event-sink").has_value(); }, 10s))
      << read_file(dir.file("broker.log"));
  const std::string front = *endpoints_file_value(dir.file("endpoints"), "front");
  const std::string workers = *endpoints_file_value(dir.file("endpoints"), "workers");
  const std::string sink = *endpoints_file_value(dir.file("endpoints"), "event-sink");
  EXPECT_NE(front.find(broker_ip), std::string::npos) << front;

  // The workers on a third host, Redis over TCP on the first.
  const std::string redis_url = "redis://:" + password + "@" + redis_ip + ":6379/0";
  const std::vector<std::string> common = {"--broker", workers, "--event-sink", sink, "--redis", redis_url,
                                           "--heartbeat-ms", "200"};
  std::vector<std::string> licensed = {bin("primary-licensed"), "--lease-key", dir.file("lease.key"), "--vendor-key",
                                       dir.file("vendor/vendor.pub"), "--client-endpoints", front, "--server-public",
                                       server_pub};
  licensed.insert(licensed.end(), common.begin(), common.end());
  Process licensing = Process::start(hosts.in("workers", licensed), {}, dir.file("licensed.log"));
  std::vector<std::string> admin = {bin("primary-admin"), "--front", front, "--events",
                                    *endpoints_file_value(dir.file("endpoints"), "events"), "--server-public",
                                    server_pub, "--client-key", dir.file("keys/admin.key")};
  admin.insert(admin.end(), common.begin(), common.end());
  Process admin_worker = Process::start(hosts.in("workers", admin), {}, dir.file("admin.log"));

  // The Control Center on the fourth host.
  auto ctl = [&](std::vector<std::string> args, int* rc, bool as_admin = true) {
    std::vector<std::string> argv = {bin("primaryctl"), "--server", front, "--server-key", dir.file("keys/server.pub"),
                                     "--timeout-ms", "3000"};
    if (as_admin) argv.insert(argv.end(), {"--client-key", dir.file("keys/admin.key")});
    argv.insert(argv.end(), args.begin(), args.end());
    return run_capture(hosts.in("center", argv), rc);
  };
  std::string reg;
  ASSERT_TRUE(wait_until(
      [&] {
        reg = ctl({"register", "SN-MULTI-1"}, &code);
        return code == 0;
      },
      20s, 200ms))
      << reg << read_file(dir.file("licensed.log")) << read_file(dir.file("broker.log"));
  const auto pos = reg.find("PS1-");
  ASSERT_NE(pos, std::string::npos) << reg;
  const std::string registration = reg.substr(pos, reg.find_first_of(" \n", pos) - pos);
  const std::string unlock = run_capture({bin("primary-vendor"), "unlock", "--key", dir.file("vendor/vendor.key"),
                                          "--registration", registration, "--licenses", "5"});
  out = ctl({"unlock", unlock}, &code);
  ASSERT_EQ(code, 0) << out;
  out = ctl({"reserve", "WS-01", "WS-02"}, &code);
  ASSERT_EQ(code, 0) << out;
  ctl({"setup-info", "WS-01", "--out", dir.file("ws01.json")}, &code);
  ASSERT_EQ(code, 0);
  const std::string setup = read_file(dir.file("ws01.json"));
  EXPECT_NE(setup.find(broker_ip), std::string::npos) << "setup file should name the broker's address: " << setup;

  // A Client on the Control Center's host (client role: a fresh key) heartbeats.
  Process client = Process::start(hosts.in("center", {bin("primary-client"), "--setup", dir.file("ws01.json"),
                                                      "--duration", "3", "--time-scale", "0.01"}),
                                  {}, dir.file("client.log"));
  EXPECT_EQ(client.wait_exit(30s), 0) << read_file(dir.file("client.log"));
  EXPECT_NE(read_file(dir.file("client.log")).find("1 agent(s): 1 licensed"), std::string::npos)
      << read_file(dir.file("client.log"));

  // The admin worker answered from its own host, about the others.
  ASSERT_TRUE(wait_until(
      [&] {
        out = ctl({"computer", "WS-01", "--json"}, &code);
        return code == 0 && out.find("\"active\"") != std::string::npos;
      },
      10s, 200ms))
      << out;
  out = ctl({"status", "--json"}, &code);
  EXPECT_EQ(code, 0) << out;
  EXPECT_NE(out.find("\"reserved\":2"), std::string::npos) << out;
  // A client-role key is refused the privileged services from the same host.
  ctl({"reserve", "WS-03"}, &code, false);
  EXPECT_EQ(code, 1);

  for (Process* p : {&admin_worker, &licensing, &broker, &redis}) p->signal(SIGTERM);
  for (Process* p : {&admin_worker, &licensing, &broker, &redis}) p->wait_exit(5s);
}

}  // namespace
}  // namespace primary::test
