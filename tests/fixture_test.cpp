// Backups made by earlier releases restore in this one. tests/fixtures/
// holds one backup per data layout, made by the release that introduced it,
// with the state it held (`<name>.state`: every reservation, the serial,
// every computer's record and state, every activity log entry, as
// state_lines() prints them). Each is restored with `primary-server
// --restore` into a fresh data dir and must come back with exactly that
// state, migrated to this release's layout.
//
// Making a fixture (only when a release introduces a layout):
//   PRIMARY_WRITE_FIXTURE=tests/fixtures build/tests/fixture_test --gtest_filter='*Write*'
// then commit the two files it writes.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <sstream>
#include <thread>

#include "common/client.hpp"
#include "common/codec.hpp"
#include "common/crypto.hpp"
#include "common/layout.hpp"
#include "common/process.hpp"
#include "common/tokens.hpp"
#include "tests/support/process.hpp"
#include "tests/support/stack.hpp"
#include "tests/support/temp_dir.hpp"
#include "tests/support/util.hpp"

namespace primary::test {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

std::vector<std::string> strings(const Result<RedisReply>& r) {
  std::vector<std::string> out;
  if (r && r->is_array())
    for (const auto& e : r->elements) out.push_back(e.is_int() ? std::to_string(e.integer) : e.str);
  return out;
}

// The state a fixture promises, one fact a line, sorted: reservations,
// serial, computers (record, active or lost with last seen), queued
// commands and every activity log entry (id, type, fields).
std::string state_lines(Redis& r) {
  std::vector<std::string> lines;
  for (const auto& m : strings(r.command({"ZRANGE", "ps:res", "0", "-1"}))) lines.push_back("reservation " + m);
  const auto serial = strings(r.command({"HGETALL", "ps:serial"}));
  for (size_t i = 0; i + 1 < serial.size(); i += 2) lines.push_back("serial " + serial[i] + "=" + serial[i + 1]);
  const auto meta = strings(r.command({"HGETALL", "ps:meta"}));
  for (size_t i = 0; i + 1 < meta.size(); i += 2) lines.push_back("computer " + meta[i] + " " + hex_encode(meta[i + 1]));
  for (const char* set : {"ps:active", "ps:lost"}) {
    const auto z = strings(r.command({"ZRANGE", set, "0", "-1", "WITHSCORES"}));
    for (size_t i = 0; i + 1 < z.size(); i += 2) lines.push_back(std::string(set + 3) + " " + z[i] + " " + z[i + 1]);
  }
  for (const auto& k : strings(r.command({"KEYS", "ps:cmd:*"})))
    for (const auto& c : strings(r.command({"LRANGE", k, "0", "-1"}))) lines.push_back("command " + k + " " + hex_encode(c));
  auto events = r.command({"XRANGE", "ps:events", "-", "+"});
  if (events && events->is_array())
    for (const auto& e : events->elements) {
      std::string line = "event " + e.elements[0].str;
      for (const auto& f : e.elements[1].elements) line += " " + hex_encode(f.str);
      lines.push_back(line);
    }
  std::sort(lines.begin(), lines.end());
  std::string out;
  for (const auto& l : lines) out += l + "\n";
  return out;
}

std::unique_ptr<MdpClient> client(zmq::context_t& ctx, const std::string& front) {
  ClientOptions o;
  o.endpoints = {front};
  o.timeout_ms = 5000;
  return std::make_unique<MdpClient>(ctx, o);
}

std::vector<std::string> server_argv(const std::string& data, std::vector<std::string> extra) {
  std::vector<std::string> argv = {bin("primary-server"), "--insecure", "--data-dir", data, "--no-web",
                                   "--front", "tcp://127.0.0.1:*", "--events", "tcp://127.0.0.1:*",
                                   "--admin-workers", "0", "--updater-workers", "0", "--heartbeat-ms", "200"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  return argv;
}

// Writes a layout-1 fixture: 20 reservations of 50 licenses; PC-0..4 seen
// once and then lost by the sweep, PC-5..9 active, PC-10..19 never seen;
// a command queued for PC-5; their events in the log.
TEST(Fixture, WriteLayout1Fixture) {
  const char* out_dir = std::getenv("PRIMARY_WRITE_FIXTURE");
  if (!out_dir) GTEST_SKIP() << "set PRIMARY_WRITE_FIXTURE=DIR to write a fixture";
  TempDir dir("fixture");
  int rc = -1;
  run_capture({bin("primary-vendor"), "keygen", "--out", dir.file("vendor")}, &rc);
  ASSERT_EQ(rc, 0);
  const std::string data = dir.file("data");
  Process p = Process::start(server_argv(data, {"--vendor-key", dir.file("vendor/vendor.pub"), "--license-workers", "1",
                                                "--check-interval-s", "2", "--grace-s", "1"}),
                             {}, dir.file("server.log"));
  ASSERT_TRUE(wait_until([&] { return !front_of(data).empty() || !p.alive(); }, 30s)) << read_file(dir.file("server.log"));
  zmq::context_t ctx(1);
  auto c = client(ctx, front_of(data));
  Value reg;
  ASSERT_TRUE(wait_until([&] {
    auto r = c->call("license.control", "registration", {{"serial", Value("SN-FIXTURE-1")}});
    if (r && r->find("registration_code")) reg = *r;
    return r && r->find("registration_code");
  }, 15s, 50ms));
  const std::string code = run_capture({bin("primary-vendor"), "unlock", "--key", dir.file("vendor/vendor.key"),
                                        "--registration", str(reg, "registration_code"), "--licenses", "50"});
  auto un = c->call("license.control", "unlock", {{"unlock_code", Value(code)}});
  ASSERT_TRUE(un && ok(*un));
  std::map<std::string, std::string> licenses;
  for (int i = 0; i < 20; ++i) {
    const std::string name = "PC-" + std::to_string(i);
    auto r = c->call("license.control", "reserve", {{"computer", Value(name)}});
    ASSERT_TRUE(r && ok(*r));
    licenses[name] = str(*r, "license");
  }
  auto beat = [&](int i) {
    const std::string name = "PC-" + std::to_string(i);
    auto hb = c->call("license", "heartbeat", {{"computer", Value(name)}, {"license", Value(licenses[name])}});
    ASSERT_TRUE(hb && str(*hb, "status") == "licensed");
  };
  for (int i = 0; i < 5; ++i) beat(i);
  Redis r = private_redis(data);
  ASSERT_TRUE(wait_until([&] {
    auto n = r.command({"ZCARD", "ps:lost"});
    return n && n->is_int() && n->integer == 5;
  }, 20s, 100ms));
  for (int i = 5; i < 10; ++i) beat(i);
  auto cmd = c->call("license.control", "command", {{"computer", Value("PC-5")}, {"command", Value("collect")}});
  ASSERT_TRUE(cmd && ok(*cmd));
  const std::string file = std::string(out_dir) + "/layout1.backup";
  const std::string backup_out =
      run_capture({bin("primaryctl"), "backup", "--data-dir", data, "--out", file, "--no-artifacts"}, &rc);
  ASSERT_EQ(rc, 0) << backup_out;
  const std::string state = state_lines(r);
  ASSERT_TRUE(write_file_atomic(std::string(out_dir) + "/layout1.state", state, 0644));
  p.signal(SIGTERM);
  EXPECT_EQ(p.wait_exit(15s), 0);
  ::chmod(file.c_str(), 0644);
}

TEST(Fixture, Layout1BackupRestoresWithEveryReservationComputerAndLogEntry) {
  const std::string fixtures = std::string(PRIMARY_SOURCE_DIR) + "/tests/fixtures";
  const std::string expected = read_file(fixtures + "/layout1.state");
  ASSERT_FALSE(expected.empty()) << fixtures + "/layout1.state";
  TempDir dir("fixture-restore");
  // The backup is a secret file (0600); restore reads a copy.
  const std::string file = dir.file("layout1.backup");
  ASSERT_TRUE(write_file_atomic(file, read_file(fixtures + "/layout1.backup"), 0600));
  const std::string data = dir.file("data");
  // No licensing worker at first: the sweep would mark the fixture's
  // active computers lost (their last heartbeat is old) before the check.
  {
    Process p = Process::start(server_argv(data, {"--restore", file, "--license-workers", "0"}), {},
                               dir.file("restore.log"));
    ASSERT_TRUE(wait_until([&] { return !front_of(data).empty() || !p.alive(); }, 30s))
        << read_file(dir.file("restore.log"));
    Redis r = private_redis(data);
    EXPECT_EQ(state_lines(r), expected);
    auto v = r.command({"GET", "ps:layout"});
    ASSERT_TRUE(v && v->is_str());
    EXPECT_EQ(v->str, std::to_string(layout::kCurrent));
    p.signal(SIGTERM);
    EXPECT_EQ(p.wait_exit(15s), 0) << read_file(dir.file("restore.log"));
  }
  // Then served: every reservation is found again with its license.
  ::unlink((data + "/run/endpoints").c_str());
  Process p = Process::start(server_argv(data, {"--license-workers", "1"}), {}, dir.file("serve.log"));
  ASSERT_TRUE(wait_until([&] { return !front_of(data).empty() || !p.alive(); }, 30s)) << read_file(dir.file("serve.log"));
  zmq::context_t ctx(1);
  auto c = client(ctx, front_of(data));
  int reservations = 0;
  std::istringstream in(expected);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("reservation ", 0) != 0) continue;
    const std::string member = line.substr(12);
    const std::string name = member.substr(0, member.find(':')), license = member.substr(member.find(':') + 1);
    std::optional<Value> rr;
    ASSERT_TRUE(wait_until([&] {
      auto x = c->call("license.control", "reserve", {{"computer", Value(name)}});
      if (x && ok(*x)) rr = *x;
      return rr.has_value();
    }, 15s, 50ms)) << name;
    EXPECT_EQ(str(*rr, "license"), license) << name;
    const Value* created = rr->find("created");
    EXPECT_TRUE(created && !created->as_bool()) << name;
    ++reservations;
  }
  EXPECT_EQ(reservations, 20);
  p.signal(SIGTERM);
  EXPECT_EQ(p.wait_exit(15s), 0);
}

}  // namespace
}  // namespace primary::test
