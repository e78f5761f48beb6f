// Acknowledged reservations survive SIGKILL of the private Redis and every
// worker, mid-load: the whole product started by primary-server, restarted
// on the same data dir.
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <map>
#include <mutex>
#include <thread>

#include "common/client.hpp"
#include "common/process.hpp"
#include "tests/support/process.hpp"
#include "tests/support/procfs.hpp"
#include "tests/support/stack.hpp"
#include "tests/support/temp_dir.hpp"
#include "tests/support/util.hpp"

namespace primary::test {
namespace {

std::string field(const Value& v, std::string_view key) {
  const Value* f = v.find(key);
  return f && f->is_str() ? f->as_str() : std::string();
}

class Server {
 public:
  Server(const TempDir& dir, const std::string& vendor_pub) {
    ::unlink((dir.file("data") + "/run/endpoints").c_str());
    proc = Process::start({bin("primary-server"), "--web", "127.0.0.1:0", "--data-dir", dir.file("data"), "--front",
                           "tcp://127.0.0.1:*", "--events", "tcp://127.0.0.1:*", "--insecure",
                           "--vendor-key", vendor_pub, "--license-workers", "2",
                           "--heartbeat-ms", "200"},
                          {}, dir.file("server.log"));
    front = wait_until([&] { return !front_of(dir.file("data")).empty(); }, 15s)
                ? front_of(dir.file("data"))
                : std::string();
  }
  Process proc;
  std::string front;
};

std::unique_ptr<MdpClient> connect(zmq::context_t& ctx, const std::string& front, int timeout_ms) {
  ClientOptions o;
  o.endpoints = {front};
  o.timeout_ms = timeout_ms;
  return std::make_unique<MdpClient>(ctx, o);
}

TEST(Durability, AcknowledgedReservationsSurviveSigkillOfRedisAndWorkers) {
  TempDir dir("dur");
  zmq::context_t ctx(1);
  int rc = 0;
  run_capture({bin("primary-vendor"), "keygen", "--out", dir.file("vendor")}, &rc);
  ASSERT_EQ(rc, 0);
  std::map<std::string, std::string> acked;  // name -> license
  {
    Server server(dir, dir.file("vendor/vendor.pub"));
    ASSERT_FALSE(server.front.empty()) << read_file(dir.file("server.log"));
    auto c = connect(ctx, server.front, 5000);
    // Workers may still be registering: retry registration briefly.
    Value reg;
    ASSERT_TRUE(wait_until([&] {
      auto r = c->call("license.control", "registration", {{"serial", Value("SN-DUR")}});
      if (r && r->find("registration_code")) reg = *r;
      return r && r->find("registration_code");
    }, 10s));
    const std::string code = run_capture({bin("primary-vendor"), "unlock", "--key", dir.file("vendor/vendor.key"),
                                          "--registration", field(reg, "registration_code"),
                                          "--licenses", "100000"});
    auto un = c->call("license.control", "unlock", {{"unlock_code", Value(code)}});
    ASSERT_TRUE(un && un->find("purchased")) << (un ? to_json(*un) : un.error().message);

    // Four clients reserve as fast as they can while Redis and the workers
    // are SIGKILLed under them.
    std::mutex mu;
    std::atomic<bool> stop{false};
    std::atomic<int> errors{0};
    std::vector<std::thread> load;
    for (int t = 0; t < 4; ++t) {
      load.emplace_back([&, t] {
        auto cl = connect(ctx, server.front, 2000);
        for (int i = 0; !stop.load(); ++i) {
          const std::string name = "T" + std::to_string(t) + "-" + std::to_string(i);
          auto r = cl->call("license.control", "reserve", {{"computer", Value(name)}});
          if (r && !field(*r, "license").empty()) {
            std::lock_guard<std::mutex> lock(mu);
            acked[name] = field(*r, "license");
          } else {
            ++errors;
            if (!r) cl = connect(ctx, server.front, 2000);
          }
        }
      });
    }
    ASSERT_TRUE(wait_until([&] { std::lock_guard<std::mutex> l(mu); return acked.size() >= 300; }, 20s));
    const pid_t sup = server.proc.pid();
    for (pid_t p : children_named(sup, "redis-server")) ::kill(p, SIGKILL);
    for (pid_t p : children_named(sup, "primary-licensed")) ::kill(p, SIGKILL);
    std::this_thread::sleep_for(300ms);
    // The supervisor itself goes too, so nothing is shut down gracefully.
    for (pid_t p : children_named(sup, "redis-server")) ::kill(p, SIGKILL);
    server.proc.kill();
    stop = true;
    for (auto& th : load) th.join();
    EXPECT_GE(acked.size(), 300u);  // the kills may come before any later reply
  }
  // Let the broker and workers, orphaned with SIGTERM as their death signal, go.
  std::this_thread::sleep_for(500ms);

  Server again(dir, dir.file("vendor/vendor.pub"));
  ASSERT_FALSE(again.front.empty()) << read_file(dir.file("server.log"));
  auto c = connect(ctx, again.front, 5000);
  size_t same = 0;
  std::vector<std::string> wrong;
  for (const auto& [name, license] : acked) {
    std::optional<Value> r;
    ASSERT_TRUE(wait_until([&] {
      auto got = c->call("license.control", "reserve", {{"computer", Value(name)}});
      if (got && got->find("created")) r = *got;
      return r.has_value();
    }, 10s)) << name;
    if (field(*r, "license") == license && !r->find("created")->as_bool()) ++same;
    else wrong.push_back(name);
  }
  EXPECT_EQ(same, acked.size()) << "first lost: " << (wrong.empty() ? "" : wrong.front());
}

}  // namespace
}  // namespace primary::test
