// Who did it (issue 23, part 1): every event a privileged request causes
// names who made it. Against a real primary-server in secure mode (broker,
// workers, console, private Redis) with a named admin key (alice) and an
// unnamed one: every op of tests/attribution_table.hpp done as alice, its
// events read back from admin.log; read-only ops leave the log as it was; a
// body that claims an identity is ignored; the console names the browser and
// itself; the supervisor names the Unix user for SIGHUP and the console
// password; insecure mode says `local`.
#include <gtest/gtest.h>
#include <curl/curl.h>
#include <pwd.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "common/client.hpp"
#include "common/codec.hpp"
#include "common/crypto.hpp"
#include "common/curve.hpp"
#include "common/keys.hpp"
#include "common/names.hpp"
#include "common/redis.hpp"
#include "common/schema.hpp"
#include "tests/attribution_table.hpp"
#include "tests/support/http.hpp"
#include "tests/support/process.hpp"
#include "tests/support/stack.hpp"
#include "tests/support/temp_dir.hpp"
#include "tests/support/util.hpp"

namespace primary::test {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

const std::string kPassword = "correct horse battery";

std::string code_of(const Result<Value>& r) {
  if (!r) return "NO_REPLY";
  const Value* c = r->find("code");
  return c && c->is_str() ? c->as_str() : "OK";
}

std::string unix_user() {
  const passwd* pw = ::getpwuid(::geteuid());
  return pw ? pw->pw_name : std::to_string(::geteuid());
}

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

bool holds(const Value& e, const char* field, const std::string& name) {
  if (const Value* a = e.find(field); a && a->is_array())
    for (const Value& v : a->as_array())
      if (v.is_str() && v.as_str() == name) return true;
  return false;
}

// A primary-server in secure mode with its console, an unreachable update
// feed (a sync fails) and no periodic sync; DATA/keys/admins holds alice
// (named) and one unnamed key.
class Attribution : public ::testing::Test {
 protected:
  void SetUp() override {
    static const bool curl_ready = curl_global_init(CURL_GLOBAL_ALL) == CURLE_OK;
    ASSERT_TRUE(curl_ready);
    int rc = 0;
    run_capture({bin("primary-vendor"), "keygen", "--out", dir.file("vendor")}, &rc);
    ASSERT_EQ(rc, 0);
    server = Process::start({bin("primary-server"), "--web", "127.0.0.1:0", "--data-dir", data(), "--front",
                             "tcp://127.0.0.1:*", "--events", "tcp://127.0.0.1:*", "--vendor-key",
                             dir.file("vendor/vendor.pub"), "--license-workers", "1", "--heartbeat-ms", "200",
                             "--update-feed", "http://127.0.0.1:1/feed", "--sync-interval-s", "0"},
                            {}, dir.file("server.log"));
    ASSERT_TRUE(wait_until([&] { return !front_of(data()).empty(); }, 15s)) << read_file(dir.file("server.log"));
    front = front_of(data());
    server_public = read_curve_public(data() + "/keys/server.pub").value();
    std::ofstream(data() + "/keys/admins", std::ios::app) << alice_key.public_key << "  # alice\n"
                                                          << unnamed_key.public_key << "\n";
    ::kill(server.pid(), SIGHUP);
    alice = client(alice_key);
    unnamed = client(unnamed_key);
    for (auto* c : {alice.get(), unnamed.get()})
      ASSERT_TRUE(wait_until([&] { return code_of(c->call(svc::kAdmin, opname::kStatus)) == "OK"; }, 10s, 100ms));
    ASSERT_TRUE(write_curve_keypair(dir.file("alice"), alice_key));
  }

  std::string data() const { return dir.file("data"); }
  std::unique_ptr<MdpClient> client(const CurveKeypair& kp) {
    ClientOptions o;
    o.endpoints = {front};
    o.timeout_ms = 5000;
    o.server_key = server_public;
    o.public_key = kp.public_key;
    o.secret_key = kp.secret_key;
    return std::make_unique<MdpClient>(ctx, o);
  }
  Value call(MdpClient& c, const char* service, const char* op, Value::Map fields = {}) {
    auto r = c.call(service, op, std::move(fields));
    return r ? *r : Value(Value::Map{{"code", Value("NO_REPLY")}});
  }
  // The activity log's entries of one type, oldest first.
  std::vector<Value> events(const std::string& type) {
    Value r = call(*alice, svc::kAdmin, opname::kLog,
                   {{field::kTypes, Value(Value::Array{Value(type)})}, {field::kLimit, Value(1000)}});
    std::vector<Value> out;
    if (const Value* items = r.find(field::kItems); items && items->is_array()) out = items->as_array();
    return out;
  }
  // The first entry of `type` after the first `before` for which `match`
  // holds, waiting for it up to `timeout`; nil when none came.
  Value event_after(const std::string& type, size_t before, const std::function<bool(const Value&)>& match = {},
                    std::chrono::milliseconds timeout = 5s) {
    Value found;
    wait_until(
        [&] {
          auto all = events(type);
          for (size_t i = before; i < all.size(); ++i)
            if (!match || match(all[i])) {
              found = all[i];
              return true;
            }
          return false;
        },
        timeout, 50ms);
    return found;
  }
  int64_t stream_length() {
    Redis redis = private_redis(data());
    auto r = redis.command({"XLEN", keys::kEvents});
    return r && r->is_int() ? r->integer : -1;
  }

  TempDir dir{"attrib"};
  zmq::context_t ctx{1};
  Process server;
  std::string front, server_public;
  CurveKeypair alice_key = curve_keypair(), unnamed_key = curve_keypair();
  std::unique_ptr<MdpClient> alice, unnamed;
};

// An event made for a request over the front door: who, from where, and no
// one acting for another unless `via` is given.
void expect_who(const Value& e, const std::string& actor, const std::string& via = "") {
  ASSERT_FALSE(e.is_nil()) << "no such event";
  EXPECT_EQ(str(e, field::kActor), actor) << to_json(e);
  EXPECT_EQ(str(e, field::kPeer), "127.0.0.1") << to_json(e);
  if (via.empty())
    EXPECT_EQ(e.find(field::kVia), nullptr) << to_json(e);
  else
    EXPECT_EQ(str(e, field::kVia), via) << to_json(e);
}

TEST_F(Attribution, EveryPrivilegedOpNamesTheAdminKeyAndReadsLeaveTheLogAlone) {
  std::map<std::string, std::set<std::string>> seen;  // op -> event types seen with actor alice
  auto by_alice = [&](const char* service, const char* op, const std::string& type, const Value& e) {
    expect_who(e, "alice");
    if (!e.is_nil() && str(e, field::kActor) == "alice") seen[std::string(service) + "/" + op].insert(type);
  };
  auto on = [](const char* f, const std::string& v) {
    return [f, v](const Value& e) { return str(e, f) == v; };
  };
  const std::string user = unix_user();

  // Registration and unlock.
  register_and_unlock(*alice, dir, "SN-ATTR", 3);
  by_alice(svc::kLicenseControl, opname::kRegistration, event::kSerialRegistered,
           event_after(event::kSerialRegistered, 0, on(field::kSerial, "SN-ATTR")));
  by_alice(svc::kLicenseControl, opname::kUnlock, event::kSerialUnlocked, event_after(event::kSerialUnlocked, 0));
  const std::string registration =
      str(call(*alice, svc::kLicenseControl, opname::kRegistration), field::kRegistrationCode);
  ASSERT_FALSE(registration.empty());

  // Reserve; a body that claims someone else is not believed.
  std::map<std::string, std::string> license;
  auto reserve = [&](MdpClient& c, const std::string& computer, Value::Map extra = {}) {
    extra.emplace_back(field::kComputer, Value(computer));
    Value r = call(c, svc::kLicenseControl, opname::kReserve, std::move(extra));
    license[computer] = str(r, field::kLicense);
    return r;
  };
  ASSERT_TRUE(ok(reserve(*alice, "PC-1")));
  by_alice(svc::kLicenseControl, opname::kReserve, event::kLicenseReserved,
           event_after(event::kLicenseReserved, 0, on(field::kComputer, "PC-1")));
  ASSERT_TRUE(ok(reserve(*alice, "PC-2",
                         {{field::kActor, Value("mallory")}, {field::kOnBehalf, Value("web:6.6.6.6")},
                          {field::kVia, Value("internal")}})));
  expect_who(event_after(event::kLicenseReserved, 0, on(field::kComputer, "PC-2")), "alice");

  // The unnamed key: "key:" and the first 4 bytes of the SHA-256 of its Z85 text, in hex.
  ASSERT_TRUE(ok(reserve(*unnamed, "PC-3")));
  const std::string fingerprint = "key:" + hex_encode(sha256(unnamed_key.public_key).substr(0, 4));
  EXPECT_EQ(fingerprint.size(), 12u);
  expect_who(event_after(event::kLicenseReserved, 0, on(field::kComputer, "PC-3")), fingerprint);

  // All 3 purchased are reserved: a refusal, named too.
  Value refused = reserve(*alice, "PC-4");
  EXPECT_FALSE(ok(refused)) << to_json(refused);
  by_alice(svc::kLicenseControl, opname::kReserve, event::kLicenseRefused,
           event_after(event::kLicenseRefused, 0, on(field::kComputer, "PC-4")));

  // Setup info and a command.
  ASSERT_TRUE(ok(call(*alice, svc::kLicenseControl, opname::kSetupInfo, {{field::kComputer, Value("PC-1")}})));
  by_alice(svc::kLicenseControl, opname::kSetupInfo, event::kSetupInfoIssued,
           event_after(event::kSetupInfoIssued, 0, on(field::kComputer, "PC-1")));
  Value queued = call(*alice, svc::kLicenseControl, opname::kCommand,
                      {{field::kComputer, Value("PC-1")}, {field::kCommand, Value("restart")}});
  ASSERT_TRUE(ok(queued)) << to_json(queued);
  by_alice(svc::kLicenseControl, opname::kCommand, event::kCommandQueued,
           event_after(event::kCommandQueued, 0, on(field::kComputer, "PC-1")));

  // Seat codes: retire, transfer, and each refused once (a code of the other kind).
  auto seat_code = [&](const std::string& kind, const std::string& computer) {
    std::vector<std::string> argv = {bin("primary-vendor"), kind, "--key", dir.file("vendor/vendor.key"),
                                     "--registration", registration, "--computer", computer,
                                     "--license", license[computer]};
    if (kind == "transfer") argv.insert(argv.end(), {"--to", "PC-9"});
    return run_capture(argv);
  };
  size_t refusals = events(event::kSeatCodeRefused).size();
  EXPECT_FALSE(ok(call(*alice, svc::kLicenseControl, opname::kRetire,
                       {{field::kCode, Value(seat_code("transfer", "PC-1"))}})));
  by_alice(svc::kLicenseControl, opname::kRetire, event::kSeatCodeRefused,
           event_after(event::kSeatCodeRefused, refusals, on(field::kComputer, "PC-1")));
  refusals = events(event::kSeatCodeRefused).size();
  EXPECT_FALSE(ok(call(*alice, svc::kLicenseControl, opname::kTransfer,
                       {{field::kCode, Value(seat_code("retire", "PC-2"))}})));
  by_alice(svc::kLicenseControl, opname::kTransfer, event::kSeatCodeRefused,
           event_after(event::kSeatCodeRefused, refusals, on(field::kComputer, "PC-2")));
  Value retired =
      call(*alice, svc::kLicenseControl, opname::kRetire, {{field::kCode, Value(seat_code("retire", "PC-3"))}});
  ASSERT_TRUE(ok(retired)) << to_json(retired);
  by_alice(svc::kLicenseControl, opname::kRetire, event::kLicenseRetired,
           event_after(event::kLicenseRetired, 0, on(field::kComputer, "PC-3")));
  Value moved =
      call(*alice, svc::kLicenseControl, opname::kTransfer, {{field::kCode, Value(seat_code("transfer", "PC-2"))}});
  ASSERT_TRUE(ok(moved)) << to_json(moved);
  by_alice(svc::kLicenseControl, opname::kTransfer, event::kLicenseTransferred,
           event_after(event::kLicenseTransferred, 0));

  // An offline import: the request and the job's own events name alice and the job.
  const std::string releases = dir.file("releases");
  fs::create_directories(releases);
  {
    std::ofstream(releases + "/agent-1.0.0.bin", std::ios::binary) << std::string(1000, 'a');
    std::ofstream(releases + "/releases.toml") << "[[release]]\ncomponent = \"agent\"\nversion = \"1.0.0\"\n"
                                                  "channel = \"stable\"\nfile = \"agent-1.0.0.bin\"\n"
                                                  "notes = \"test release\"\n";
  }
  int rc = -1;
  run_capture({bin("primary-vendor"), "bundle", "--key", dir.file("vendor/vendor.key"), "--dir", releases, "--out",
               dir.file("updates.bundle"), "--issued", std::to_string(now_ms())},
              &rc);
  ASSERT_EQ(rc, 0);
  Value import = call(*alice, svc::kUpdateControl, opname::kImport, {{field::kPath, Value(dir.file("updates.bundle"))}});
  ASSERT_TRUE(ok(import)) << to_json(import);
  const std::string import_job = str(import, field::kJob);
  ASSERT_FALSE(import_job.empty());
  by_alice(svc::kUpdateControl, opname::kImport, event::kImportRequested,
           event_after(event::kImportRequested, 0, on(field::kJob, import_job)));
  Value synced = event_after(event::kUpdateSynced, 0, on(field::kJob, import_job), 30s);
  ASSERT_FALSE(synced.is_nil()) << read_file(dir.file("server.log"));
  expect_who(synced, "alice");
  const auto available = events(event::kUpdateAvailable);
  ASSERT_EQ(available.size(), 1u);
  EXPECT_EQ(str(available[0], field::kJob), import_job);
  expect_who(available[0], "alice");

  // Approve and hold the release it brought.
  Value::Map release{{field::kComponent, Value("agent")}, {field::kVersion, Value("1.0.0")}};
  Value approved = call(*alice, svc::kUpdateControl, opname::kApprove, release);
  ASSERT_TRUE(ok(approved)) << to_json(approved);
  by_alice(svc::kUpdateControl, opname::kApprove, event::kUpdateApproved, event_after(event::kUpdateApproved, 0));
  ASSERT_TRUE(ok(call(*alice, svc::kUpdateControl, opname::kHold, release)));
  by_alice(svc::kUpdateControl, opname::kHold, event::kUpdateHeld, event_after(event::kUpdateHeld, 0));

  // A sync of a feed nobody serves: requested by alice, failed for alice.
  Value sync = call(*alice, svc::kUpdateControl, opname::kSync);
  ASSERT_TRUE(ok(sync)) << to_json(sync);
  const std::string sync_job = str(sync, field::kJob);
  ASSERT_FALSE(sync_job.empty());
  by_alice(svc::kUpdateControl, opname::kSync, event::kSyncRequested,
           event_after(event::kSyncRequested, 0, on(field::kJob, sync_job)));
  Value failed = event_after(event::kUpdateRefused, 0, on(field::kJob, sync_job), 30s);
  ASSERT_FALSE(failed.is_nil()) << read_file(dir.file("server.log"));
  expect_who(failed, "alice");

  // primaryctl firewall --apply --yes, with an nft that does nothing.
  fs::create_directories(dir.file("bin"));
  std::ofstream(dir.file("bin/nft")) << "#!/bin/sh\nexit 0\n";
  fs::permissions(dir.file("bin/nft"), fs::perms::owner_all);
  const std::string out =
      run_capture({"/usr/bin/env", "PATH=" + dir.file("bin") + ":" + std::getenv("PATH"), bin("primaryctl"),
                   "--server", front, "--server-key", data() + "/keys/server.pub", "--client-key",
                   dir.file("alice") + ".key", "firewall", "--apply", "--yes", "--tool", "nft"},
                  &rc);
  ASSERT_EQ(rc, 0) << out;
  Value applied = event_after(event::kFirewallApplied, 0);
  by_alice(svc::kAdmin, opname::kRecord, event::kFirewallApplied, applied);
  EXPECT_EQ(str(applied, field::kTool), "nft");
  EXPECT_EQ(str(applied, field::kUser), user);

  // admin.record straight, with a claim to act for a browser: alice's own.
  Value recorded = call(*alice, svc::kAdmin, opname::kRecord,
                        {{field::kAction, Value(event::kWebPasswordSet)}, {field::kOnBehalf, Value("web:6.6.6.6")}});
  ASSERT_TRUE(ok(recorded)) << to_json(recorded);
  Value claimed = event_after(event::kWebPasswordSet, 0, on(field::kId, str(recorded, field::kId)));
  by_alice(svc::kAdmin, opname::kRecord, event::kWebPasswordSet, claimed);
  for (const Value& bad : {Value("rm -rf"), Value(""), Value(7)}) {
    Value r = call(*alice, svc::kAdmin, opname::kRecord, {{field::kAction, bad}});
    EXPECT_EQ(str(r, field::kCode), "BAD_REQUEST") << to_json(r);
  }
  EXPECT_EQ(str(call(*alice, svc::kAdmin, opname::kRecord), field::kCode), "BAD_REQUEST");
  for (const char* f : {field::kTool, field::kUser}) {
    Value r = call(*alice, svc::kAdmin, opname::kRecord,
                   {{field::kAction, Value(event::kFirewallApplied)}, {f, Value(std::string(65, 'x'))}});
    EXPECT_EQ(str(r, field::kCode), "BAD_REQUEST") << f << ": " << to_json(r);
  }

  // Every op that changes something was seen naming alice, with each of its events.
  for (const auto& [op, types] : attributed_events())
    EXPECT_EQ(seen[op], std::set<std::string>(types.begin(), types.end())) << op;

  // The read-only ops write nothing to the log.
  const std::map<std::string, Value::Map> args = {
      {std::string(svc::kAdmin) + "/" + opname::kComputer, {{field::kComputer, Value("PC-1")}}}};
  const int64_t before = stream_length();
  ASSERT_GT(before, 0);
  for (const auto& [op, types] : attributed_events()) {
    if (!types.empty()) continue;
    const auto slash = op.find('/');
    const std::string service = op.substr(0, slash), name = op.substr(slash + 1);
    auto it = args.find(op);
    Value r = call(*alice, service.c_str(), name.c_str(), it == args.end() ? Value::Map{} : it->second);
    EXPECT_TRUE(ok(r)) << op << ": " << to_json(r);
    EXPECT_EQ(stream_length(), before) << op << " wrote to the activity log";
  }
}

TEST_F(Attribution, TheConsoleNamesTheBrowserAndItsOwnKey) {
  register_and_unlock(*alice, dir, "SN-WEB", 2);
  // The password, set on the host: the supervisor names the file's owner.
  int rc = -1;
  std::ofstream(dir.file("password.txt")) << kPassword << "\n";
  run_capture({"/bin/sh", "-c", "\"$0\" web-password --data-dir \"$1\" < \"$2\" > /dev/null", bin("primaryctl"), data(),
               dir.file("password.txt")},
              &rc);
  ASSERT_EQ(rc, 0);
  Value set = event_after(event::kWebPasswordSet, 0, {}, 10s);
  ASSERT_FALSE(set.is_nil()) << read_file(dir.file("server.log"));
  EXPECT_EQ(str(set, field::kActor), std::string(actor::kHostPrefix) + unix_user()) << to_json(set);
  EXPECT_EQ(set.find(field::kVia), nullptr);

  std::string base = web_address(data());
  while (!base.empty() && base.back() == '/') base.pop_back();
  ASSERT_FALSE(base.empty());
  Browser b(base);
  const std::string login_token = b.token("/login");
  ASSERT_FALSE(login_token.empty());
  ASSERT_EQ(b.post("/login", {{"csrf", login_token}, {"password", kPassword}}).status, 303);
  Http reserved = b.post("/computers/reserve", {{"csrf", b.token("/computers")}, {"computer", "WEB-1"}});
  ASSERT_EQ(reserved.status, 303) << reserved.body;
  expect_who(event_after(event::kLicenseReserved, 0, [](const Value& e) { return str(e, field::kComputer) == "WEB-1"; }),
             "web:127.0.0.1", actor::kInternal);
  Http setup = b.get("/computers/WEB-1/setup.json");
  ASSERT_EQ(setup.status, 200) << setup.body;
  expect_who(event_after(event::kSetupInfoIssued, 0, [](const Value& e) { return str(e, field::kComputer) == "WEB-1"; }),
             "web:127.0.0.1", actor::kInternal);
}

TEST_F(Attribution, SighupLogsTheKeysThatCameAndWentAndWhoSentIt) {
  const std::string host_user = std::string(actor::kHostPrefix) + unix_user();
  // SetUp's own SIGHUP: alice and the unnamed key came.
  Value first = event_after(event::kAdminKeysReloaded, 0, [](const Value& e) { return holds(e, field::kAdded, "alice"); });
  ASSERT_FALSE(first.is_nil());
  EXPECT_EQ(str(first, field::kActor), host_user) << to_json(first);
  EXPECT_TRUE(holds(first, field::kAdded, "key:" + hex_encode(sha256(unnamed_key.public_key).substr(0, 4))))
      << to_json(first);

  const std::string admins = data() + "/keys/admins";
  const std::string without_bob = read_file(admins);
  const CurveKeypair bob = curve_keypair();
  size_t seen = events(event::kAdminKeysReloaded).size();
  std::ofstream(admins, std::ios::app) << bob.public_key << "  # bob\n";
  ASSERT_TRUE(server.signal(SIGHUP));
  Value added = event_after(event::kAdminKeysReloaded, seen, {}, 10s);
  ASSERT_FALSE(added.is_nil());
  EXPECT_EQ(str(added, field::kActor), host_user) << to_json(added);
  EXPECT_TRUE(holds(added, field::kAdded, "bob")) << to_json(added);
  EXPECT_FALSE(holds(added, field::kRemoved, "bob")) << to_json(added);
  EXPECT_EQ(num(added, field::kKeys), num(first, field::kKeys) + 1) << to_json(added);

  seen = events(event::kAdminKeysReloaded).size();
  std::ofstream(admins, std::ios::trunc) << without_bob;
  ASSERT_TRUE(server.signal(SIGHUP));
  Value removed = event_after(event::kAdminKeysReloaded, seen, {}, 10s);
  ASSERT_FALSE(removed.is_nil());
  EXPECT_EQ(str(removed, field::kActor), host_user) << to_json(removed);
  EXPECT_TRUE(holds(removed, field::kRemoved, "bob")) << to_json(removed);
  EXPECT_FALSE(holds(removed, field::kAdded, "bob")) << to_json(removed);
}

TEST(AttributionInsecure, ALoopbackPeerIsLocal) {
  StackOptions o;
  o.admin_workers = 1;
  Stack s(o);
  ASSERT_TRUE(s.ok());
  ASSERT_TRUE(ok(s.unlock("SN-LOCAL", 2)));
  ASSERT_TRUE(ok(s.call(svc::kLicenseControl, opname::kReserve,
                        {{field::kComputer, Value("LOCAL-1")}, {field::kActor, Value("mallory")}})));
  Value r = s.call(svc::kAdmin, opname::kLog,
                   {{field::kTypes, Value(Value::Array{Value(event::kLicenseReserved), Value(event::kSerialUnlocked)})}});
  ASSERT_TRUE(ok(r)) << to_json(r);
  const auto& items = r.find(field::kItems)->as_array();
  ASSERT_EQ(items.size(), 2u) << to_json(r);
  for (const Value& e : items) expect_who(e, actor::kLocal);
}

}  // namespace
}  // namespace primary::test
