// The Client's licensing agent against the real server: a broker, licensing
// workers and a private Redis (the Stack fixture), and primary-client as a
// process; its simulated fleet also against primary-server restarted under it.
#include <gtest/gtest.h>

#include <cstdlib>

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>

#include "common/codec.hpp"
#include "common/crypto.hpp"
#include "common/mdp.hpp"
#include "common/process.hpp"
#include "common/redis.hpp"
#include "primary/client/agent.hpp"
#include "tests/support/stack.hpp"
#include "tools/chaos/connection_counter.hpp"
#include "tools/chaos/procfs.hpp"
#include "tests/support/util.hpp"

namespace primary::test {
namespace {

using client::AgentOptions;
using client::LicenseAgent;
using client::LicenseState;

std::string str(const Value& v, std::string_view key) {
  const Value* f = v.find(key);
  return f && f->is_str() ? f->as_str() : std::string();
}
bool ok(const Value& v) {
  const Value* f = v.find("ok");
  return f && f->is_bool() && f->as_bool();
}
int64_t now_s() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}
std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

// Unlocks the stack and reserves `names`; returns their licenses.
std::vector<std::string> reserve(Stack& s, const std::vector<std::string>& names, int64_t purchased = 50) {
  EXPECT_TRUE(ok(s.unlock("SN-CLIENT", purchased)));
  std::vector<std::string> licenses;
  for (const auto& n : names) {
    Value r = s.call("license.control", "reserve", {{"computer", Value(n)}});
    EXPECT_TRUE(ok(r)) << to_json(r);
    licenses.push_back(str(r, "license"));
  }
  return licenses;
}

// setup_info for `computer` as a setup file, with the stack's real front
// door as the endpoint (the fixture's workers advertise the default one).
std::string write_setup(Stack& s, const std::string& computer) {
  Value info = s.call("license.control", "setup_info", {{"computer", Value(computer)}});
  EXPECT_TRUE(ok(info)) << to_json(info);
  Value file = Value(Value::Map{});
  for (const auto& [k, v] : info.as_map())
    if (k != "ok" && k != "rid") file.set(k, v);
  file.set("endpoints", Value(Value::Array{Value(s.front())}));
  const std::string path = s.dir().file(computer + ".setup.json");
  std::ofstream(path) << to_json(file) << "\n";
  return path;
}

AgentOptions quick(AgentOptions o) {
  o.timeout = std::chrono::milliseconds(1500);
  o.attempts = 2;
  return o;
}

TEST(ClientSystem, ReservedAgentBecomesLicensedAndVerifiesItsLease) {
  Stack s;
  ASSERT_TRUE(s.ok());
  reserve(s, {"ws-01"});
  auto setup = client::load_setup(write_setup(s, "ws-01"));
  ASSERT_TRUE(setup.ok()) << setup.error();
  EXPECT_EQ(setup->computer, "WS-01");
  EXPECT_EQ(setup->serial, "SN-CLIENT");

  std::vector<client::StateChange> changes;
  AgentOptions o = quick(client::options_from(*setup));
  o.version = "9.9.9";
  o.on_state_change = [&](const client::StateChange& c) { changes.push_back(c); };
  LicenseAgent agent(o);
  EXPECT_FALSE(agent.can_record());
  ASSERT_TRUE(agent.step());
  ASSERT_EQ(agent.state(), LicenseState::licensed) << agent.reason();
  EXPECT_EQ(agent.reason(), "verified");  // not "lease refused" nor "not checked"
  EXPECT_TRUE(agent.can_record());
  EXPECT_TRUE(agent.can_upload());
  auto lease = agent.lease();
  ASSERT_TRUE(lease);
  EXPECT_EQ(lease->computer, "WS-01");
  EXPECT_EQ(lease->serial, "SN-CLIENT");
  EXPECT_GE(lease->expires - now_s(), 14400 + 3600 - 120);
  // What a Data Vault would do with the token an upload presents.
  auto vault = client::verify_lease(lease->token, s.lease_pub(), now_s());
  ASSERT_TRUE(vault.ok()) << vault.error();
  EXPECT_EQ(vault->license, setup->license);
  // Next contact: the server's 4 h, give or take the 10% jitter.
  const auto wait = std::chrono::duration_cast<std::chrono::seconds>(agent.next_wakeup() -
                                                                     std::chrono::steady_clock::now());
  EXPECT_GE(wait.count(), 14400 * 9 / 10 - 5);
  EXPECT_LE(wait.count(), 14400 * 11 / 10);
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_EQ(changes[0].to, LicenseState::licensed);
}

TEST(ClientSystem, UnknownComputerStaysUnlicensedNotReserved) {
  Stack s;
  ASSERT_TRUE(s.ok());
  reserve(s, {"ws-01"});
  AgentOptions o;
  o.computer = "ws-unknown";
  o.license = "AAAAAAAAAAAAAAAAAAAAAA";
  o.endpoints = {s.front()};
  LicenseAgent agent(quick(o));
  ASSERT_TRUE(agent.step());
  EXPECT_EQ(agent.state(), LicenseState::unlicensed);
  EXPECT_EQ(agent.reason(), "NOT_RESERVED");
  EXPECT_FALSE(agent.can_record());
  EXPECT_FALSE(agent.can_upload());
  const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(agent.next_wakeup() -
                                                                          std::chrono::steady_clock::now());
  EXPECT_GE(wait.count(), 54000 - 5000);
  EXPECT_LE(wait.count(), 66000);
}

TEST(ClientSystem, BrokerKilledGoesLostThenLicensedWhenItIsBack) {
  // A 2 s check interval, 1 s grace: leases last 3 s.
  StackOptions so;
  so.licensed_args = {"--check-interval-s", "2", "--grace-s", "1", "--unlicensed-interval-s", "1"};
  Stack s(so);
  ASSERT_TRUE(s.ok());
  reserve(s, {"ws-01"});
  auto setup = client::load_setup(write_setup(s, "ws-01"));
  ASSERT_TRUE(setup.ok()) << setup.error();

  std::mutex mu;
  std::vector<client::StateChange> changes;
  AgentOptions o = client::options_from(*setup);
  o.timeout = std::chrono::milliseconds(300);
  o.attempts = 1;
  o.lost_interval = std::chrono::seconds(1);
  o.on_state_change = [&](const client::StateChange& c) {
    std::lock_guard lock(mu);
    changes.push_back(c);
  };
  LicenseAgent agent(o);
  std::atomic<bool> stop{false};
  std::thread runner([&] { agent.run(stop); });
  struct Join {
    std::atomic<bool>& stop;
    std::thread& t;
    ~Join() {
      stop = true;
      t.join();
    }
  } join{stop, runner};

  ASSERT_TRUE(wait_until([&] { return agent.state() == LicenseState::licensed; }, 10s)) << agent.reason();
  EXPECT_TRUE(agent.can_upload());

  const std::string eps = read_file(s.dir().file("endpoints"));
  s.broker.kill();
  ASSERT_TRUE(wait_until([&] { return agent.state() == LicenseState::lost; }, 10s)) << agent.reason();
  EXPECT_NE(agent.reason().find("no reply from " + s.front()), std::string::npos) << agent.reason();
  EXPECT_TRUE(agent.can_record());
  // Lost keeps recording, but uploads stop when the 3 s lease runs out.
  ASSERT_TRUE(wait_until([&] { return !agent.can_upload(); }, 10s));
  EXPECT_EQ(agent.state(), LicenseState::lost);
  EXPECT_TRUE(agent.can_record());

  // The same broker comes back on the same endpoints; the workers find it again.
  auto line = [&](const std::string& key) {
    for (const auto& l : lines_of(eps))
      if (l.rfind(key + "=", 0) == 0) return l.substr(key.size() + 1);
    return std::string();
  };
  s.broker = Process::start({bin("primary-broker"), "--insecure", "--front", line("front"), "--events",
                             line("events"), "--workers-endpoint", line("workers"), "--event-sink",
                             line("event-sink"), "--endpoints-file", s.dir().file("endpoints"),
                             "--heartbeat-ms", "200"},
                            {}, s.dir().file("broker.log"));
  ASSERT_TRUE(wait_until([&] { return agent.state() == LicenseState::licensed; }, 20s)) << agent.reason();
  EXPECT_TRUE(agent.can_upload());
  // The state changes before its callback runs: wait for the callback.
  ASSERT_TRUE(wait_until([&] {
    std::lock_guard lock(mu);
    return changes.size() >= 3u;
  }, 10s));
  std::lock_guard lock(mu);
  EXPECT_EQ(changes[0].to, LicenseState::licensed);
  EXPECT_EQ(changes[1].from, LicenseState::licensed);
  EXPECT_EQ(changes[1].to, LicenseState::lost);
  EXPECT_EQ(changes[2].from, LicenseState::lost);
  EXPECT_EQ(changes[2].to, LicenseState::licensed);
}

TEST(ClientSystem, FailsOverFromADeadEndpoint) {
  Stack s;
  ASSERT_TRUE(s.ok());
  reserve(s, {"ws-01"});
  // A port nobody listens on any more.
  std::string dead;
  {
    zmq::socket_t probe(s.ctx(), zmq::socket_type::router);
    probe.bind("tcp://127.0.0.1:*");
    dead = probe.get(zmq::sockopt::last_endpoint);
  }
  auto setup = client::load_setup(write_setup(s, "ws-01"));
  ASSERT_TRUE(setup.ok()) << setup.error();
  AgentOptions o = client::options_from(*setup);
  o.endpoints = {dead, s.front()};
  o.timeout = std::chrono::milliseconds(500);
  LicenseAgent agent(o);
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(agent.step());
  EXPECT_EQ(agent.state(), LicenseState::licensed) << agent.reason();
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 500ms);  // one timeout on the dead one
  EXPECT_EQ(agent.endpoint(), s.front());
}

TEST(ClientSystem, CommandsRoundTripThroughTheServer) {
  StackOptions so;
  so.licensed_args = {"--check-interval-s", "1"};
  Stack s(so);
  ASSERT_TRUE(s.ok());
  reserve(s, {"ws-01"});
  zmq::socket_t sub(s.ctx(), zmq::socket_type::sub);
  sub.set(zmq::sockopt::subscribe, "command.done");
  sub.connect(s.events());
  std::this_thread::sleep_for(300ms);  // let the subscription reach the publisher

  auto setup = client::load_setup(write_setup(s, "ws-01"));
  ASSERT_TRUE(setup.ok()) << setup.error();
  std::vector<client::Command> got;
  AgentOptions o = quick(client::options_from(*setup));
  o.jitter = 0;
  o.on_command = [&](const client::Command& c) -> std::optional<client::CommandResult> {
    got.push_back(c);
    return client::CommandResult{true, "collected " + c.args_json};
  };
  auto step_now = [&](LicenseAgent& a) {
    std::this_thread::sleep_until(a.next_wakeup());
    return a.step();
  };
  LicenseAgent agent(o);
  ASSERT_TRUE(step_now(agent));
  ASSERT_EQ(agent.state(), LicenseState::licensed);
  Value q = s.call("license.control", "command",
                   {{"computer", Value("ws-01")}, {"command", Value("collect-logs")},
                    {"args", Value(Value::Map{{"days", Value(2)}})}});
  ASSERT_TRUE(ok(q)) << to_json(q);
  ASSERT_TRUE(step_now(agent));  // delivers the command
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].id, str(q, "id"));
  EXPECT_EQ(got[0].command, "collect-logs");
  EXPECT_EQ(got[0].args_json, "{\"days\":2}");
  ASSERT_TRUE(step_now(agent));  // carries the result
  EXPECT_EQ(agent.state(), LicenseState::licensed) << agent.reason();  // the server took the results

  mdp::Frames event;
  zmq::pollitem_t item{sub.handle(), 0, ZMQ_POLLIN, 0};
  zmq::poll(&item, 1, std::chrono::milliseconds(5000));
  ASSERT_TRUE(item.revents & ZMQ_POLLIN);
  ASSERT_TRUE(mdp::recv_frames(sub, event));
  ASSERT_EQ(event.size(), 2u);
  auto body = unpack_map(mdp::view(event[1]));
  ASSERT_TRUE(body.ok());
  EXPECT_EQ(str(*body, "command_id"), str(q, "id"));
  EXPECT_EQ(str(*body, "detail"), "collected {\"days\":2}");
  EXPECT_EQ(str(*body, "computer"), "WS-01");
  ASSERT_TRUE(step_now(agent));
  EXPECT_EQ(got.size(), 1u);  // delivered once
  zmq::poll(&item, 1, std::chrono::milliseconds(300));
  EXPECT_FALSE(item.revents & ZMQ_POLLIN);  // and its result reported once
}

TEST(ClientSystem, OneAgentFromASetupFile) {
  Stack s;
  ASSERT_TRUE(s.ok());
  reserve(s, {"ws-01"});
  int rc = -1;
  const std::string out = run_capture(
      {bin("primary-client"), "--setup", write_setup(s, "ws-01"), "--duration", "1.5", "--timeout-ms", "1500"}, &rc);
  EXPECT_EQ(rc, 0) << out;
  const auto lines = lines_of(out);
  ASSERT_EQ(lines.size(), 1u) << out;
  EXPECT_NE(lines[0].find(" WS-01 unlicensed -> licensed verified; upload on"), std::string::npos) << lines[0];

  // Not reserved: says why once, and exits 1.
  const std::string nobody = run_capture({bin("primary-client"), "--server", s.front(), "--computer", "ghost",
                                          "--license", "x", "--duration", "1.5"},
                                         &rc);
  EXPECT_EQ(rc, 1) << nobody;
  EXPECT_NE(nobody.find(" GHOST unlicensed -> unlicensed NOT_RESERVED"), std::string::npos) << nobody;

  // A bad command line: one line, exit 2.
  run_capture({bin("primary-client"), "--server", s.front()}, &rc);
  EXPECT_EQ(rc, 2);
}

// primary-client with a wall clock 6 h ahead of the server's, and 6 h
// behind (faketime, Debian package faketime, moves the wall clock only):
// licensed and uploading all the same, each reported as client.clock_skew.
TEST(ClientSystem, AClientClockSixHoursOffIsLicensedAndUploads) {
  ASSERT_EQ(access("/usr/bin/faketime", X_OK), 0) << "needs /usr/bin/faketime (scripts/debian-packages.txt)";
  Stack s;
  ASSERT_TRUE(s.ok());
  reserve(s, {"ws-ahead", "ws-behind"});
  for (const auto& [name, offset] : {std::pair<std::string, std::string>{"ws-ahead", "+6h"}, {"ws-behind", "-6h"}}) {
    SCOPED_TRACE(name);
    int rc = -1;
    // faketime preloads its library ahead of AddressSanitizer's runtime in
    // a sanitizer build (scripts/sanitize.sh); ASan must then not insist on
    // coming first. Harmless elsewhere.
    const char* asan = std::getenv("ASAN_OPTIONS");
    const std::string asan_options =
        "ASAN_OPTIONS=" + std::string(asan ? asan : "") + (asan && *asan ? ":" : "") + "verify_asan_link_order=0";
    const std::string out =
        run_capture({"/usr/bin/env", "FAKETIME_DONT_FAKE_MONOTONIC=1", asan_options, "/usr/bin/faketime", "-f", offset,
                     bin("primary-client"), "--setup", write_setup(s, name), "--duration", "1.5", "--timeout-ms",
                     "1500"},
                    &rc);
    EXPECT_EQ(rc, 0) << out;
    const auto lines = lines_of(out);
    ASSERT_EQ(lines.size(), 1u) << out;
    EXPECT_NE(lines[0].find(" unlicensed -> licensed verified; upload on"), std::string::npos) << lines[0];
  }
  Redis redis(*parse_redis_url(s.redis().url()));
  auto log = redis.command({"XRANGE", "ps:events", "-", "+"});
  ASSERT_TRUE(log.ok());
  std::map<std::string, int64_t> skew;  // computer -> skew_s
  for (const auto& entry : log->elements) {
    const auto& f = entry.elements[1].elements;
    bool is_skew = false;
    std::string data;
    for (size_t i = 0; i + 1 < f.size(); i += 2) {
      if (f[i].str == "type" && f[i + 1].str == "client.clock_skew") is_skew = true;
      if (f[i].str == "data") data = f[i + 1].str;
    }
    if (!is_skew) continue;
    auto fields = unpack_map(data);
    ASSERT_TRUE(fields.ok());
    skew[str(*fields, "computer")] = fields->find("skew_s")->as_int();
  }
  ASSERT_EQ(skew.size(), 2u);
  EXPECT_NEAR(static_cast<double>(skew["WS-AHEAD"]), 6 * 3600, 60);
  EXPECT_NEAR(static_cast<double>(skew["WS-BEHIND"]), -6 * 3600, 60);
}

int count_licensed(const std::string& out, const std::string& prefix, int n) {
  int count = 0;
  for (const auto& l : lines_of(out))
    if (l.find(" unlicensed -> licensed verified") != std::string::npos) ++count;
  for (int i = 1; i <= n; ++i) {
    char name[32];
    std::snprintf(name, sizeof name, " %s-%06d ", prefix.c_str(), i);
    EXPECT_NE(out.find(name), std::string::npos) << name;
  }
  return count;
}

TEST(ClientSystem, SimulatedFleetFromALicenseFile) {
  Stack s;
  ASSERT_TRUE(s.ok());
  std::vector<std::string> names;
  for (int i = 1; i <= 20; ++i) {
    char name[32];
    std::snprintf(name, sizeof name, "sim-%06d", i);
    names.push_back(name);
  }
  const auto licenses = reserve(s, names);
  const std::string file = s.dir().file("licenses.txt");
  {
    std::ofstream out(file);
    out << "# NAME LICENSE\n";
    for (size_t i = 0; i < names.size(); ++i) out << names[i] << " " << licenses[i] << "\n";
  }
  const std::string lease_key = base64url_encode(s.lease_pub());
  int rc = -1;
  const std::string out = run_capture({bin("primary-client"), "--simulate", "20", "--prefix", "sim", "--licenses",
                                       file, "--server", s.front(), "--lease-key", lease_key, "--time-scale",
                                       "0.001", "--duration", "3"},
                                      &rc);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_EQ(count_licensed(out, "SIM", 20), 20) << out;
}

TEST(ClientSystem, SimulatedFleetReservesItsOwnLicenses) {
  Stack s;
  ASSERT_TRUE(s.ok());
  ASSERT_TRUE(ok(s.unlock("SN-SIM", 20)));
  int rc = -1;
  const std::string out = run_capture({bin("primary-client"), "--simulate", "20", "--prefix", "demo", "--reserve",
                                       "--server", s.front(), "--time-scale", "0.001", "--duration", "3"},
                                      &rc);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_EQ(count_licensed(out, "DEMO", 20), 20) << out;
  // A 21st does not fit: the reservation fails and says so.
  const std::string more = run_capture({bin("primary-client"), "--simulate", "21", "--prefix", "demo", "--reserve",
                                        "--server", s.front(), "--duration", "1"},
                                       &rc);
  EXPECT_EQ(rc, 1) << more;
}

// Each agent's states, from primary-client's lines "TIME NAME FROM -> TO REASON".
struct FleetLog {
  std::map<std::string, std::vector<std::string>> states;  // name -> every state it entered
  std::map<std::string, std::string> first_reason;
  size_t count(const std::vector<std::string>& names, const std::string& state) const {
    size_t n = 0;
    for (const auto& name : names)
      if (auto it = states.find(name); it != states.end() && !it->second.empty() && it->second.back() == state) ++n;
    return n;
  }
};

FleetLog read_fleet(const std::string& path) {
  FleetLog log;
  const std::string text = read_file(path);
  std::istringstream in(text.substr(0, text.rfind('\n') + 1));  // whole lines only
  for (std::string line; std::getline(in, line);) {
    std::istringstream words(line);
    std::string time, name, from, arrow, to, reason;
    if (!(words >> time >> name >> from >> arrow >> to) || arrow != "->") continue;
    std::getline(words, reason);
    if (!log.first_reason.count(name)) log.first_reason[name] = reason;
    log.states[name].push_back(to);
  }
  return log;
}

// primary-server with its private Redis on a fixed data dir, insecure; a
// 5000 s check interval and 1000 s for unlicensed Clients.
Process start_server(TempDir& dir, const std::string& front) {
  ::unlink((dir.file("data") + "/run/endpoints").c_str());
  return Process::start({bin("primary-server"), "--web", "127.0.0.1:0", "--data-dir", dir.file("data"), "--front", front, "--events",
                         "tcp://127.0.0.1:*", "--insecure", "--vendor-key", dir.file("vendor/vendor.pub"),
                         "--license-workers", "2", "--admin-workers", "0", "--updater-workers", "0",
                         "--heartbeat-ms", "200", "--check-interval-s", "5000", "--unlicensed-interval-s",
                         "1000"},
                        {}, dir.file("server.log"));
}

// 200 reserved and 10 unreserved agents in one primary-client --simulate
// --time-scale 0.001 (the server's 5000 s check: 5 s; the 1 h retry when
// lost: 3.6 s), while the whole server is stopped and started again on the
// same front door.
TEST(ClientSystem, SimulatedFleetRidesOutAServerRestart) {
  constexpr int kReserved = 200, kFleet = 210;
  TempDir dir("csim");
  int rc = -1;
  run_capture({bin("primary-vendor"), "keygen", "--out", dir.file("vendor")}, &rc);
  ASSERT_EQ(rc, 0);
  Process server = start_server(dir, "tcp://127.0.0.1:*");
  ASSERT_TRUE(wait_until([&] { return !front_of(dir.file("data")).empty(); }, 15s)) << read_file(dir.file("server.log"));
  const std::string front = front_of(dir.file("data"));

  zmq::context_t ctx(1);
  ClientOptions co;
  co.endpoints = {front};
  co.timeout_ms = 5000;
  MdpClient admin(ctx, co);
  ASSERT_NO_FATAL_FAILURE(register_and_unlock(admin, dir, "SN-FLEET", 250));

  std::vector<std::string> reserved, unreserved;
  std::ofstream licenses(dir.file("licenses.txt"));
  for (int i = 1; i <= kFleet; ++i) {
    char name[32];
    std::snprintf(name, sizeof name, "SIM-%06d", i);
    if (i > kReserved) {
      unreserved.push_back(name);
      continue;
    }
    auto r = admin.call("license.control", "reserve", {{"computer", Value(name)}});
    ASSERT_TRUE(r && ok(*r)) << name << ": " << (r ? to_json(*r) : r.error().message);
    licenses << name << " " << str(*r, "license") << "\n";
    reserved.push_back(name);
  }
  licenses.close();
  auto setup = admin.call("license.control", "setup_info", {{"computer", Value(reserved.front())}});
  ASSERT_TRUE(setup && ok(*setup));

  const std::string out = dir.file("client.out");
  Process fleet = Process::start({bin("primary-client"), "--simulate", std::to_string(kFleet), "--prefix", "sim",
                                  "--licenses", dir.file("licenses.txt"), "--server", front, "--lease-key",
                                  str(*setup, "lease_key"), "--time-scale", "0.001", "--timeout-ms", "1500",
                                  "--attempts", "1", "--threads", "64"},
                                 {}, out);
  FleetLog log;
  auto all_in = [&](const std::vector<std::string>& names, const std::string& state) {
    return wait_until(
        [&] {
          log = read_fleet(out);
          return log.count(names, state) == names.size();
        },
        25s, 100ms);
  };
  ASSERT_TRUE(all_in(reserved, "licensed")) << log.count(reserved, "licensed") << " licensed\n" << read_file(out);
  EXPECT_EQ(log.count(unreserved, "unlicensed"), unreserved.size()) << read_file(out);
  for (const auto& name : unreserved) EXPECT_EQ(log.first_reason[name], " NOT_RESERVED; upload off (unlicensed)") << name;

  // The whole server goes: at their next check the licensed agents are lost.
  server.signal(SIGTERM);
  ASSERT_TRUE(server.wait_exit(20s).has_value());
  ASSERT_TRUE(all_in(reserved, "lost")) << log.count(reserved, "lost") << " lost\n" << read_file(out);
  EXPECT_EQ(log.count(unreserved, "unlicensed"), unreserved.size()) << read_file(out);

  // Back on the same front door, with the same data: licensed again.
  server = start_server(dir, front);
  ASSERT_TRUE(wait_until([&] { return !front_of(dir.file("data")).empty(); }, 15s)) << read_file(dir.file("server.log"));
  ASSERT_EQ(front_of(dir.file("data")), front);
  ASSERT_TRUE(all_in(reserved, "licensed")) << log.count(reserved, "licensed") << " licensed\n" << read_file(out);
  EXPECT_EQ(log.count(unreserved, "unlicensed"), unreserved.size());
  for (const auto& name : unreserved) EXPECT_EQ(log.states[name].size(), 1u) << name << " changed state";
  for (const auto& name : reserved) {
    // licensed, lost, licensed in that order (a slow reply may add a lost on the way).
    const auto& seen = log.states[name];
    auto lost = std::find(seen.begin(), seen.end(), "lost");
    EXPECT_TRUE(!seen.empty() && seen.front() == "licensed" && lost != seen.end() &&
                std::find(lost, seen.end(), "licensed") != seen.end())
        << name;
  }

  fleet.signal(SIGTERM);
  EXPECT_EQ(fleet.wait_exit(20s).value_or(-1), 1);  // not every agent licensed
  EXPECT_NE(read_file(out).find("210 agent(s): 200 licensed, 0 lost, 10 unlicensed"), std::string::npos)
      << read_file(out);
  server.signal(SIGTERM);
  server.wait_exit(20s);
}

using chaos::ConnectionCounter;
using chaos::context_switches;

int port_of(const std::string& endpoint) { return std::stoi(endpoint.substr(endpoint.rfind(':') + 1)); }


// A licensed primary-client at rest: it does not wake between contacts, and
// while the server is down it makes one connection attempt per scheduled
// contact. --time-scale 0.002 makes the server's 5000 s check 10 s and the
// 1 h retry 7.2 s.
TEST(ClientSystem, AtRestTheClientSleepsAndConnectsOnlyOnSchedule) {
  constexpr double kScale = 0.002, kCheckS = 5000 * kScale, kRetryS = 3600 * kScale;
  TempDir dir("crest");
  int rc = -1;
  run_capture({bin("primary-vendor"), "keygen", "--out", dir.file("vendor")}, &rc);
  ASSERT_EQ(rc, 0);
  Process server = start_server(dir, "tcp://127.0.0.1:*");
  ASSERT_TRUE(wait_until([&] { return !front_of(dir.file("data")).empty(); }, 15s)) << read_file(dir.file("server.log"));
  const std::string front = front_of(dir.file("data"));
  const std::string setup_file = dir.file("ws-01.json");
  {
    zmq::context_t ctx(1);
    ClientOptions co;
    co.endpoints = {front};
    co.timeout_ms = 5000;
    MdpClient admin(ctx, co);
    ASSERT_NO_FATAL_FAILURE(register_and_unlock(admin, dir, "SN-REST", 1));
    auto reserved = admin.call("license.control", "reserve", {{"computer", Value("ws-01")}});
    ASSERT_TRUE(reserved && ok(*reserved));
    auto info = admin.call("license.control", "setup_info", {{"computer", Value("ws-01")}});
    ASSERT_TRUE(info && ok(*info));
    Value file = Value(Value::Map{});
    for (const auto& [k, v] : info->as_map())
      if (k != "ok" && k != "rid") file.set(k, v);
    file.set("endpoints", Value(Value::Array{Value(front)}));
    std::ofstream(setup_file) << to_json(file) << "\n";
  }  // the admin connection is closed: from here on only the Client connects to the front door

  const std::string out = dir.file("client.out");
  Process client = Process::start({bin("primary-client"), "--setup", setup_file, "--time-scale",
                                   std::to_string(kScale), "--jitter", "0", "--timeout-ms", "1000"},
                                  {}, out);
  ASSERT_TRUE(wait_until([&] { return read_file(out).find(" licensed verified") != std::string::npos; }, 15s))
      << read_file(out);
  const auto licensed = std::chrono::steady_clock::now();

  std::this_thread::sleep_for(500ms);  // the first contact's socket closes
  const int64_t before = context_switches(client.pid());
  std::this_thread::sleep_for(5s);
  const int64_t woke = context_switches(client.pid()) - before;
  EXPECT_LE(woke, 10) << "context switches in 5 s between two contacts";

  // The server goes; its front door's port now counts connection attempts.
  server.signal(SIGTERM);
  ASSERT_TRUE(server.wait_exit(20s).has_value());
  ConnectionCounter counter(port_of(front));
  ASSERT_TRUE(counter.ok());
  const auto counting = std::chrono::steady_clock::now();
  std::this_thread::sleep_until(licensed + std::chrono::milliseconds(static_cast<int>((kCheckS + kRetryS + 1.5) * 1000)));
  const int attempts = counter.count();
  const auto end = std::chrono::steady_clock::now();
  // Contacts are due at first + check + k * retry, the first contact a
  // little before its line was read (a second at most).
  auto due_in = [&](std::chrono::steady_clock::time_point first) {
    int n = 0;
    for (int k = 0; k < 100; ++k) {
      const auto at = first + std::chrono::milliseconds(static_cast<int>((kCheckS + k * kRetryS) * 1000));
      if (at >= counting && at <= end) ++n;
    }
    return n;
  };
  const int scheduled = std::max(due_in(licensed), due_in(licensed - 1s));
  EXPECT_GE(attempts, 1) << "no connection attempt while the server was down";
  EXPECT_LE(attempts, scheduled) << "connection attempts while the server was down, against contacts due:\n"
                                 << counter.seen() << read_file(out);
  EXPECT_TRUE(wait_until([&] { return read_file(out).find(" WS-01 licensed -> lost ") != std::string::npos; }, 10s))
      << read_file(out);
  client.signal(SIGTERM);
  EXPECT_EQ(client.wait_exit(10s).value_or(-1), 1);  // ended lost
}

}  // namespace
}  // namespace primary::test
