// Who did what, as the admin reads it (issue 23, part 1, the display): the
// actor filter of admin.log, and the actor in primaryctl's log and computer
// output, against a real primary-server in secure mode where two named
// admin keys apply seat codes, and against a stack in insecure mode for an
// entry the console wrote for a browser (actor web:IP, via its own key).
#include <gtest/gtest.h>
#include <signal.h>

#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "common/client.hpp"
#include "common/codec.hpp"
#include "common/curve.hpp"
#include "common/keys.hpp"
#include "common/redis.hpp"
#include "common/redis_url.hpp"
#include "common/schema.hpp"
#include "tests/support/process.hpp"
#include "tests/support/stack.hpp"
#include "tests/support/temp_dir.hpp"
#include "tests/support/util.hpp"

namespace primary::test {
namespace {

using namespace std::chrono_literals;

std::string code_of(const Result<Value>& r) {
  if (!r) return "NO_REPLY";
  const Value* c = r->find("code");
  return c && c->is_str() ? c->as_str() : "OK";
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) out.push_back(line);
  return out;
}

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

// A primary-server in secure mode whose allow-list names three admins.
// Carol unlocks and reserves PC-A, PC-B, PC-C; alice has a transfer code
// applied as a retire (refused, for PC-A) and retires PC-C; bob has one
// refused for PC-B. So alice and bob caused exactly these entries.
class NamedAdmins : public ::testing::Test {
 protected:
  void SetUp() override {
    int rc = 0;
    run_capture({bin("primary-vendor"), "keygen", "--out", dir.file("vendor")}, &rc);
    ASSERT_EQ(rc, 0);
    server = Process::start({bin("primary-server"), "--no-web", "--data-dir", data(), "--front", "tcp://127.0.0.1:*",
                             "--events", "tcp://127.0.0.1:*", "--vendor-key", dir.file("vendor/vendor.pub"),
                             "--license-workers", "1", "--heartbeat-ms", "200"},
                            {}, dir.file("server.log"));
    ASSERT_TRUE(wait_until([&] { return !front_of(data()).empty(); }, 15s)) << read_file(dir.file("server.log"));
    front = front_of(data());
    server_public = read_curve_public(data() + "/keys/server.pub").value();
    std::ofstream(data() + "/keys/admins", std::ios::app) << alice_key.public_key << "  # alice\n"
                                                          << bob_key.public_key << "  # bob\n"
                                                          << carol_key.public_key << "  # carol\n";
    ::kill(server.pid(), SIGHUP);
    alice = client(alice_key);
    bob = client(bob_key);
    carol = client(carol_key);
    for (auto* c : {alice.get(), bob.get(), carol.get()})
      ASSERT_TRUE(wait_until([&] { return code_of(c->call("admin", "status")) == "OK"; }, 10s, 100ms));
    ASSERT_TRUE(write_curve_keypair(dir.file("alice"), alice_key));

    register_and_unlock(*carol, dir, "SN-ACTORS", 3);
    const std::string registration = str(*carol->call("license.control", "registration", {}), "registration_code");
    std::map<std::string, std::string> license;
    for (const char* name : {"PC-A", "PC-B", "PC-C"}) {
      auto r = carol->call("license.control", "reserve", {{"computer", Value(name)}});
      ASSERT_TRUE(r && ok(*r));
      license[name] = str(*r, "license");
    }
    auto seat_code = [&](const std::string& kind, const std::string& computer) {
      std::vector<std::string> argv = {bin("primary-vendor"), kind, "--key", dir.file("vendor/vendor.key"),
                                       "--registration", registration, "--computer", computer,
                                       "--license", license[computer]};
      if (kind == "transfer") argv.insert(argv.end(), {"--to", "PC-Z"});
      return run_capture(argv);
    };
    // A transfer code applied as a retire: refused (wrong_kind), logged with who tried.
    EXPECT_EQ(str(*alice->call("license.control", "retire", {{"code", Value(seat_code("transfer", "PC-A"))}}), "code"),
              "INVALID_SEAT_CODE");
    EXPECT_EQ(str(*bob->call("license.control", "retire", {{"code", Value(seat_code("transfer", "PC-B"))}}), "code"),
              "INVALID_SEAT_CODE");
    auto retired = alice->call("license.control", "retire", {{"code", Value(seat_code("retire", "PC-C"))}});
    ASSERT_TRUE(retired && ok(*retired)) << (retired ? to_json(*retired) : retired.error().message);
  }

  std::string data() const { return dir.file("data"); }
  std::unique_ptr<MdpClient> client(const CurveKeypair& kp) {
    ClientOptions o;
    o.endpoints = {front};
    o.timeout_ms = 3000;
    o.server_key = server_public;
    o.public_key = kp.public_key;
    o.secret_key = kp.secret_key;
    return std::make_unique<MdpClient>(ctx, o);
  }
  Value log(Value::Map fields) {
    auto r = bob->call("admin", "log", std::move(fields));
    return r ? *r : Value(Value::Map{{"code", Value("NO_REPLY")}});
  }
  // primaryctl as alice; its stdout, the exit code in *rc.
  std::string ctl(std::vector<std::string> args, int* rc) {
    std::vector<std::string> argv = {bin("primaryctl"), "--server", front, "--server-key",
                                     data() + "/keys/server.pub", "--client-key", dir.file("alice") + ".key"};
    argv.insert(argv.end(), args.begin(), args.end());
    return run_capture(argv, rc);
  }

  TempDir dir{"actors"};
  zmq::context_t ctx{1};
  Process server;
  std::string front, server_public;
  CurveKeypair alice_key = curve_keypair(), bob_key = curve_keypair(), carol_key = curve_keypair();
  std::unique_ptr<MdpClient> alice, bob, carol;
};

std::vector<std::pair<std::string, std::string>> type_and_computer(const Value& reply) {
  std::vector<std::pair<std::string, std::string>> out;
  if (const Value* items = reply.find("items"); items && items->is_array())
    for (const Value& e : items->as_array()) out.emplace_back(str(e, "type"), str(e, "computer"));
  return out;
}

TEST_F(NamedAdmins, LogActorFilterKeepsOnlyThatAdminsEntriesAndPages) {
  using Pairs = std::vector<std::pair<std::string, std::string>>;
  Value a = log({{"actor", Value("alice")}});
  ASSERT_TRUE(ok(a)) << to_json(a);
  EXPECT_EQ(type_and_computer(a), (Pairs{{"seat_code.refused", "PC-A"}, {"license.retired", "PC-C"}})) << to_json(a);
  for (const Value& e : a.find("items")->as_array()) EXPECT_EQ(str(e, "actor"), "alice");
  EXPECT_EQ(type_and_computer(log({{"actor", Value("bob")}})), (Pairs{{"seat_code.refused", "PC-B"}}));
  // With types: both filters hold.
  EXPECT_EQ(type_and_computer(log({{"actor", Value("alice")}, {"types", Value(Value::Array{Value("license.retired")})}})),
            (Pairs{{"license.retired", "PC-C"}}));
  EXPECT_EQ(type_and_computer(log({{"actor", Value("bob")}, {"types", Value(Value::Array{Value("license.retired")})}})),
            Pairs{});
  // Nobody: no items, but `next` moved past what was scanned.
  Value none = log({{"actor", Value("mallory")}});
  ASSERT_TRUE(ok(none)) << to_json(none);
  EXPECT_EQ(type_and_computer(none), Pairs{});
  EXPECT_EQ(str(none, "next"), str(log({{"limit", Value(1000)}}), "next"));
  // Paging: one a page, continuing from `next`.
  Value first = log({{"actor", Value("alice")}, {"limit", Value(1)}});
  EXPECT_EQ(type_and_computer(first), (Pairs{{"seat_code.refused", "PC-A"}}));
  Value second = log({{"actor", Value("alice")}, {"limit", Value(1)}, {"since", Value(str(first, "next"))}});
  EXPECT_EQ(type_and_computer(second), (Pairs{{"license.retired", "PC-C"}}));
  Value third = log({{"actor", Value("alice")}, {"limit", Value(1)}, {"since", Value(str(second, "next"))}});
  EXPECT_EQ(type_and_computer(third), Pairs{});
  // Malformed: a wrong type, empty, too long.
  for (const Value& bad : {Value(42), Value(""), Value(std::string(129, 'a')), Value(Value::Array{Value("alice")})}) {
    Value r = log({{"actor", bad}});
    EXPECT_EQ(str(r, "code"), "BAD_REQUEST") << to_json(r);
    EXPECT_FALSE(str(r, "message").empty());
  }
  EXPECT_TRUE(ok(log({{"actor", Value(std::string(128, 'a'))}})));
}

TEST_F(NamedAdmins, PrimaryctlLogAndComputerShowWhoActed) {
  int rc = -1;
  const auto all = lines_of(ctl({"log"}, &rc));
  ASSERT_EQ(rc, 0);
  int by_alice = 0, by_bob = 0;
  for (const auto& l : all) {
    by_alice += ends_with(l, " by alice");
    by_bob += ends_with(l, " by bob");
    EXPECT_EQ(l.find("actor="), std::string::npos) << "the actor is not also a key=value field: " << l;
  }
  EXPECT_EQ(by_alice, 2);
  EXPECT_EQ(by_bob, 1);

  const auto mine = lines_of(ctl({"log", "--actor", "alice"}, &rc));
  ASSERT_EQ(rc, 0);
  ASSERT_EQ(mine.size(), 2u);
  EXPECT_NE(mine[0].find(" seat_code.refused computer=PC-A "), std::string::npos) << mine[0];
  EXPECT_TRUE(ends_with(mine[0], " by alice")) << mine[0];
  EXPECT_NE(mine[1].find(" license.retired computer=PC-C "), std::string::npos) << mine[1];
  EXPECT_TRUE(ends_with(mine[1], " by alice")) << mine[1];
  // With the other options.
  const auto retired = lines_of(ctl({"log", "--actor", "alice", "--type", "license.retired"}, &rc));
  ASSERT_EQ(retired.size(), 1u);
  EXPECT_NE(retired[0].find("PC-C"), std::string::npos);
  EXPECT_EQ(lines_of(ctl({"log", "--actor", "alice", "--limit", "1"}, &rc)), std::vector<std::string>{mine[0]});
  EXPECT_TRUE(lines_of(ctl({"log", "--actor", "mallory"}, &rc)).empty());
  EXPECT_EQ(rc, 0);
  // JSON carries the field as the server sent it.
  const std::string json = ctl({"log", "--actor", "bob", "--json"}, &rc);
  ASSERT_EQ(rc, 0);
  const auto parsed = nlohmann::json::parse(json, nullptr, false);
  ASSERT_TRUE(parsed.is_array()) << json;
  ASSERT_EQ(parsed.size(), 1u) << json;
  EXPECT_EQ(parsed[0].value("actor", ""), "bob") << json;
  EXPECT_EQ(parsed[0].value("computer", ""), "PC-B") << json;
  // Usage errors.
  ctl({"log", "--actor", ""}, &rc);
  EXPECT_EQ(rc, 2);
  ctl({"log", "--actor", std::string(129, 'a')}, &rc);
  EXPECT_EQ(rc, 2);

  // computer NAME: its recent events, each with who caused it.
  auto refusal_line = [&](const std::string& name) {
    const std::string out = ctl({"computer", name}, &rc);
    EXPECT_EQ(rc, 0) << out;
    for (const auto& l : lines_of(out))
      if (l.find(" seat_code.refused computer=" + name + " ") != std::string::npos) return l;
    ADD_FAILURE() << "no refusal for " << name << " in:\n" << out;
    return std::string();
  };
  EXPECT_TRUE(ends_with(refusal_line("PC-A"), " by alice"));
  EXPECT_TRUE(ends_with(refusal_line("PC-B"), " by bob"));
}

// An entry as the console writes it when it acts for a browser: actor is
// the browser's address, via the console's own key. Written straight into
// the stream the admin workers read, as events.lua would (type, ts, data).
TEST(ActorVia, FilterMatchesViaAndPrimaryctlShowsBoth) {
  StackOptions o;
  o.admin_workers = 1;
  Stack s(o);
  ASSERT_TRUE(s.ok());
  ASSERT_TRUE(ok(s.unlock("SN-VIA", 2)));
  auto url = parse_redis_url(s.redis().url());
  ASSERT_TRUE(url.ok());
  Redis redis(*url);
  const std::string data = pack(Value(Value::Map{{"computer", Value("VIA-PC")},
                                                 {"actor", Value("web:10.1.2.3")},
                                                 {"peer", Value("127.0.0.1")},
                                                 {"via", Value("internal")}}));
  const int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  auto added = redis.command({"XADD", keys::kEvents, "*", "type", "command.queued", "ts", std::to_string(now), "data", data});
  ASSERT_TRUE(added && added->is_str());

  for (const char* who : {"internal", "web:10.1.2.3"}) {
    Value r = s.call("admin", "log", {{"actor", Value(who)}});
    ASSERT_TRUE(ok(r)) << to_json(r);
    const auto& items = r.find("items")->as_array();
    ASSERT_EQ(items.size(), 1u) << who << ": " << to_json(r);
    EXPECT_EQ(str(items[0], "id"), added->str);
    EXPECT_EQ(str(items[0], "via"), "internal");
  }
  EXPECT_TRUE(s.call("admin", "log", {{"actor", Value("10.1.2.3")}}).find("items")->as_array().empty());

  int rc = -1;
  const auto lines = lines_of(run_capture({bin("primaryctl"), "--server", s.front(), "log", "--actor", "internal"}, &rc));
  ASSERT_EQ(rc, 0);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_NE(lines[0].find(" command.queued computer=VIA-PC peer=127.0.0.1 id=" + added->str), std::string::npos)
      << lines[0];
  EXPECT_TRUE(ends_with(lines[0], " by web:10.1.2.3 (via internal)")) << lines[0];
}

// The actor as people read it, shared by primaryctl and the console.
TEST(EventActor, NamesTheActorAndWhatItActedThrough) {
  const Value named(Value::Map{{"actor", Value("alice")}, {"peer", Value("10.0.0.5")}});
  EXPECT_EQ(event_actor(named), "alice");
  EXPECT_EQ(event_actor(named, true), "alice");
  const Value console(Value::Map{{"actor", Value("web:1.2.3.4")}, {"via", Value("internal")}});
  EXPECT_EQ(event_actor(console), "web:1.2.3.4 via internal");
  EXPECT_EQ(event_actor(console, true), "web:1.2.3.4 (via internal)");
  EXPECT_EQ(event_actor(Value(Value::Map{{"computer", Value("PC-1")}})), "");
  EXPECT_EQ(event_actor(Value(Value::Map{{"actor", Value(7)}})), "");
}

}  // namespace
}  // namespace primary::test
