// Backup and restore with the real programs: a secure primary-server with
// 500 reservations, leases, a queued command, a release and an artifact is
// backed up with `primaryctl backup`; `primary-server --restore` brings it
// all back in a fresh data dir (and into an empty external Redis), refuses
// damaged backups without writing anything, and refuses to overwrite state
// unless --force.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>

#include "server/backup.hpp"
#include "common/client.hpp"
#include "common/codec.hpp"
#include "common/crypto.hpp"
#include "common/curve.hpp"
#include "common/keys.hpp"
#include "common/layout.hpp"
#include "common/process.hpp"
#include "common/redis.hpp"
#include "common/tokens.hpp"
#include "tests/support/process.hpp"
#include "tests/support/procfs.hpp"
#include "tests/support/redis_server.hpp"
#include "tests/support/stack.hpp"
#include "tests/support/temp_dir.hpp"
#include "tests/support/util.hpp"

namespace primary::test {
namespace {

namespace fs = std::filesystem;

constexpr int kComputers = 500;
constexpr int kHeartbeats = 50;

std::string name_of(int i) { return "PC-" + std::to_string(i); }

mode_t mode_of(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? (st.st_mode & 07777) : 0;
}

// The private Redis of a running server on `data`.
std::map<std::string, std::string> hash_of(Redis& r, const std::string& key) {
  std::map<std::string, std::string> out;
  auto reply = r.command({"HGETALL", key});
  if (reply && reply->is_array())
    for (size_t i = 0; i + 1 < reply->elements.size(); i += 2)
      out[reply->elements[i].str] = reply->elements[i + 1].str;
  return out;
}

std::vector<std::string> list_of(Redis& r, const std::vector<std::string>& command) {
  std::vector<std::string> out;
  auto reply = r.command(command);
  if (reply && reply->is_array())
    for (const auto& e : reply->elements) out.push_back(e.str);
  return out;
}

// primary-server on a data dir, secure, one licensing worker.
class Server {
 public:
  Server(const std::string& data, const std::string& vendor_pub, const std::string& log,
         std::vector<std::string> extra = {}) {
    ::unlink((data + "/run/endpoints").c_str());
    std::vector<std::string> argv = {bin("primary-server"), "--data-dir", data, "--web", "127.0.0.1:0", "--front", "tcp://127.0.0.1:*",
                                     "--events", "tcp://127.0.0.1:*", "--vendor-key", vendor_pub,
                                     "--license-workers", "1", "--admin-workers", "0",
                                     "--updater-workers", "0", "--heartbeat-ms", "200"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    // No web console (a fixed port by default); as the environment, which
    // every program ignores unless it has that setting.
    proc = Process::start(argv, {{"PRIMARY_NO_WEB", "true"}}, log);
    if (wait_until([&] { return !front_of(data).empty() || !proc.alive(); }, 20s)) front = front_of(data);
  }
  bool stop() {
    proc.signal(SIGTERM);
    return proc.wait_exit(15s) == 0;
  }
  Process proc;
  std::string front;
};

struct Reserved {
  std::string license;
};

// Built once: server A with its state, its backup, and what it held.
struct World {
  TempDir dir{"bak"};
  zmq::context_t ctx{1};
  CurveKeypair admin = curve_keypair();
  std::string data_a, backup_file, server_pub, lease_key, serial = "SN-BACKUP-1";
  int64_t purchased = 0;
  std::map<std::string, std::string> licenses;  // computer -> license
  std::map<std::string, std::string> leases;    // computer -> lease token issued before the backup
  std::map<std::string, std::string> key_files;  // name -> content
  std::map<std::string, std::string> releases;   // ps:upd:releases
  std::string history_key;                       // a day of ps:hist:d:*
  std::map<std::string, std::string> history;    // its hash
  std::vector<std::string> commands_c1;           // ps:cmd:PC-1
  std::vector<std::string> events;                // ps:events ids
  std::string artifact_sha, artifact_data;
  std::string backup_output;
  uint64_t small_size = 0;  // the backup made with --no-artifacts
  bool ready = false;

  std::unique_ptr<MdpClient> client(const std::string& front, const std::string& server_key) {
    ClientOptions o;
    o.endpoints = {front};
    o.timeout_ms = 5000;
    o.server_key = server_key;
    o.public_key = admin.public_key;
    o.secret_key = admin.secret_key;
    return std::make_unique<MdpClient>(ctx, o);
  }
  std::string vendor_pub() const { return dir.file("vendor/vendor.pub"); }
};

World* world = nullptr;

class Backup : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    world = new World();
    build(*world);
  }
  static void TearDownTestSuite() {
    delete world;
    world = nullptr;
  }

  static void build(World& w) {
    int rc = -1;
    run_capture({bin("primary-vendor"), "keygen", "--out", w.dir.file("vendor")}, &rc);
    ASSERT_EQ(rc, 0);
    w.data_a = w.dir.file("a");
    // The admin key is on the allow-list from the start (and must come back).
    fs::create_directories(w.data_a + "/keys");
    fs::permissions(w.data_a, fs::perms::owner_all, fs::perm_options::replace);
    fs::permissions(w.data_a + "/keys", fs::perms::owner_all, fs::perm_options::replace);
    ASSERT_TRUE(write_file_atomic(w.data_a + "/keys/admins", w.admin.public_key + "  # test admin\n", 0600));

    Server a(w.data_a, w.vendor_pub(), w.dir.file("a.log"));
    ASSERT_FALSE(a.front.empty()) << read_file(w.dir.file("a.log"));
    w.server_pub = read_curve_public(w.data_a + "/keys/server.pub").value();
    auto c = w.client(a.front, w.server_pub);

    Value reg;
    ASSERT_TRUE(wait_until([&] {
      auto r = c->call("license.control", "registration", {{"serial", Value(w.serial)}});
      if (r && r->find("registration_code")) reg = *r;
      return r && r->find("registration_code");
    }, 15s, 50ms));
    const std::string code =
        run_capture({bin("primary-vendor"), "unlock", "--key", w.dir.file("vendor/vendor.key"), "--registration",
                     str(reg, "registration_code"), "--licenses", "1000"});
    auto un = c->call("license.control", "unlock", {{"unlock_code", Value(code)}});
    ASSERT_TRUE(un && ok(*un)) << (un ? to_json(*un) : un.error().message);
    w.purchased = num(*un, "purchased");
    ASSERT_EQ(w.purchased, 1000);

    for (int i = 0; i < kComputers; ++i) {
      auto r = c->call("license.control", "reserve", {{"computer", Value(name_of(i))}});
      ASSERT_TRUE(r && ok(*r)) << name_of(i) << ": " << (r ? to_json(*r) : r.error().message);
      w.licenses[name_of(i)] = str(*r, "license");
    }
    // A command for PC-1, delivered by its heartbeat (ps:sent:PC-1, which
    // expires), and a second one still queued (ps:cmd:PC-1).
    auto cmd = c->call("license.control", "command", {{"computer", Value(name_of(1))}, {"command", Value("collect")}});
    ASSERT_TRUE(cmd && ok(*cmd));
    for (int i = 0; i < kHeartbeats; ++i) {
      auto hb = c->call("license", "heartbeat",
                        {{"computer", Value(name_of(i))}, {"license", Value(w.licenses[name_of(i)])}});
      ASSERT_TRUE(hb && str(*hb, "status") == "licensed") << (hb ? to_json(*hb) : hb.error().message);
      w.leases[name_of(i)] = str(*hb, "lease");
    }
    cmd = c->call("license.control", "command", {{"computer", Value(name_of(1))}, {"command", Value("restart")}});
    ASSERT_TRUE(cmd && ok(*cmd));
    auto setup = c->call("license.control", "setup_info", {{"computer", Value(name_of(0))}});
    ASSERT_TRUE(setup && ok(*setup));
    w.lease_key = str(*setup, "lease_key");
    EXPECT_EQ(str(*setup, "server_key"), w.server_pub);

    // A release as the updater keeps them, and its artifact; plus a file
    // whose content is not what its name says (as if still being written).
    Redis ra = private_redis(w.data_a);
    auto hset = ra.command({"HSET", "ps:upd:releases", "agent 1.2.3", std::string("\x82\xa1v\xa5" "1.2.3\xa1s\x01", 11),
                            "console 2.0.0", "record-2"});
    ASSERT_TRUE(hset && hset->is_int()) << (hset ? hset->str : hset.error().message);
    w.artifact_data = random_bytes(3 * 1024 * 1024 + 17);  // more than one 1 MiB chunk
    w.artifact_sha = hex_encode(sha256(w.artifact_data));
    fs::create_directories(w.data_a + "/updates/objects");
    fs::create_directories(w.data_a + "/updates/partial");
    ASSERT_TRUE(write_file_atomic(w.data_a + "/updates/objects/" + w.artifact_sha, w.artifact_data, 0600));
    ASSERT_TRUE(write_file_atomic(w.data_a + "/updates/objects/" + std::string(64, 'a'), "half", 0600));
    ASSERT_TRUE(write_file_atomic(w.data_a + "/updates/partial/x", "partial", 0600));

    // A day of the fleet's history, as the admin workers keep them (expiring).
    w.history_key = keys::history_key(true, (unix_ms() / 86400000 - 5) * 86400);
    ASSERT_TRUE(ra.command({"HSET", w.history_key, "reserved", "7", "heartbeats", "1234"}));
    ASSERT_TRUE(ra.command({"EXPIRE", w.history_key, std::to_string(600 * 86400)}));
    w.history = hash_of(ra, w.history_key);
    w.releases = hash_of(ra, "ps:upd:releases");
    w.commands_c1 = list_of(ra, {"LRANGE", "ps:cmd:" + name_of(1), "0", "-1"});
    ASSERT_EQ(w.commands_c1.size(), 1u);
    auto sent_ttl = ra.command({"PTTL", "ps:sent:" + name_of(1)});
    ASSERT_TRUE(sent_ttl && sent_ttl->is_int() && sent_ttl->integer > 0);
    for (const auto& entry : fs::directory_iterator(w.data_a + "/keys"))
      w.key_files[entry.path().filename().string()] = read_file(entry.path().string());
    ASSERT_TRUE(w.key_files.count("lease.key") && w.key_files.count("server.key"));

    w.backup_file = w.dir.file("state.backup");
    const auto t0 = std::chrono::steady_clock::now();
    w.backup_output = run_capture({bin("primaryctl"), "backup", "--data-dir", w.data_a, "--out", w.backup_file}, &rc);
    const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    ASSERT_EQ(rc, 0) << w.backup_output;
    std::cout << w.backup_output << "\n(figure: primaryctl backup of " << kComputers << " reservations + 3 MiB artifact: "
              << fs::file_size(w.backup_file) << " bytes, " << took << " s wall, process start included)\n";
    const std::string small = w.dir.file("small.backup");
    const std::string small_out =
        run_capture({bin("primaryctl"), "backup", "--data-dir", w.data_a, "--out", small, "--no-artifacts", "--json"}, &rc);
    ASSERT_EQ(rc, 0) << small_out;
    EXPECT_NE(small_out.find("\"reservations\":500"), std::string::npos) << small_out;
    EXPECT_NE(small_out.find("\"artifacts\":0"), std::string::npos) << small_out;
    w.small_size = fs::file_size(small);
    // The events of the activity log, after the backup (nothing happened since).
    w.events = list_of(ra, {"EVAL", "local o = {} for _, e in ipairs(redis.call('XRANGE', KEYS[1], '-', '+')) do o[#o+1] = e[1] end return o",
                            "1", "ps:events"});
    EXPECT_FALSE(w.events.empty());
    EXPECT_TRUE(a.stop()) << read_file(w.dir.file("a.log"));
    w.ready = true;
  }

  void SetUp() override {
    ASSERT_TRUE(world && world->ready) << "building the server to back up failed";
  }

  // Everything server A held, asked of a server restored from its backup.
  void expect_same_state(const std::string& front, Redis& r) {
    World& w = *world;
    auto c = w.client(front, w.server_pub);  // same server key, same admin allow-list
    std::optional<Value> setup;
    ASSERT_TRUE(wait_until([&] {
      auto s = c->call("license.control", "setup_info", {{"computer", Value(name_of(0))}});
      if (s && ok(*s)) setup = *s;
      return setup.has_value();
    }, 15s, 50ms));
    EXPECT_EQ(str(*setup, "lease_key"), w.lease_key);
    EXPECT_EQ(str(*setup, "server_key"), w.server_pub);
    EXPECT_EQ(str(*setup, "serial"), w.serial);
    EXPECT_EQ(str(*setup, "license"), w.licenses[name_of(0)]);

    // A lease signed before the backup verifies with the restored lease key.
    const auto lease_key = base64url_decode(str(*setup, "lease_key"));
    ASSERT_TRUE(lease_key.has_value());
    const int64_t now = unix_ms() / 1000;
    for (const auto& [name, token] : w.leases) {
      auto lease = verify_lease(token, *lease_key, now);
      ASSERT_TRUE(lease.ok()) << name << ": " << lease.error().message;
      EXPECT_EQ(lease->license, w.licenses[name]);
    }

    // Every reservation, with the same license; nothing new created.
    int same = 0;
    for (const auto& [name, license] : w.licenses) {
      auto rr = c->call("license.control", "reserve", {{"computer", Value(name)}});
      ASSERT_TRUE(rr && ok(*rr)) << name << ": " << (rr ? to_json(*rr) : rr.error().message);
      const Value* created = rr->find("created");
      if (str(*rr, "license") == license && created && !created->as_bool()) ++same;
      EXPECT_EQ(num(*rr, "purchased"), w.purchased);
      EXPECT_EQ(num(*rr, "reserved"), kComputers);
    }
    EXPECT_EQ(same, kComputers);

    // A Client gets licensed, and its new lease verifies with the old key.
    auto hb = c->call("license", "heartbeat",
                      {{"computer", Value(name_of(7))}, {"license", Value(w.licenses[name_of(7)])}});
    ASSERT_TRUE(hb.ok());
    EXPECT_EQ(str(*hb, "status"), "licensed");
    EXPECT_TRUE(verify_lease(str(*hb, "lease"), *lease_key, now).ok());

    // Raw Redis: the release, the queued command, the expiring set, the log.
    EXPECT_EQ(hash_of(r, "ps:upd:releases"), w.releases);
    EXPECT_EQ(list_of(r, {"LRANGE", "ps:cmd:" + name_of(1), "0", "-1"}), w.commands_c1);
    auto ttl = r.command({"PTTL", "ps:sent:" + name_of(1)});
    ASSERT_TRUE(ttl && ttl->is_int());
    EXPECT_GT(ttl->integer, 0) << "ps:sent keeps its expiry";
    auto first = r.command({"XRANGE", "ps:events", "-", "+", "COUNT", "1"});
    ASSERT_TRUE(first && first->is_array() && !first->elements.empty());
    EXPECT_EQ(first->elements[0].elements[0].str, w.events.front());
    auto len = r.command({"XLEN", "ps:events"});
    ASSERT_TRUE(len && len->is_int());
    EXPECT_GE(len->integer, static_cast<int64_t>(w.events.size()));
  }

  void expect_same_files(const std::string& data) {
    World& w = *world;
    for (const auto& [name, content] : w.key_files) {
      EXPECT_EQ(read_file(data + "/keys/" + name), content) << name;
      EXPECT_EQ(mode_of(data + "/keys/" + name), 0600u) << name;
    }
    const std::string artifact = data + "/updates/objects/" + w.artifact_sha;
    EXPECT_EQ(read_file(artifact), w.artifact_data);
    EXPECT_EQ(mode_of(artifact), 0600u);
    EXPECT_FALSE(fs::exists(data + "/updates/objects/" + std::string(64, 'a'))) << "a file not matching its hash";
    EXPECT_FALSE(fs::exists(data + "/updates/partial/x"));
    EXPECT_FALSE(fs::exists(data + "/restore-incomplete"));
  }
};

TEST_F(Backup, FileIsPrivateAndSaysWhatItHolds) {
  World& w = *world;
  EXPECT_EQ(mode_of(w.backup_file), 0600u);
  EXPECT_NE(w.backup_output.find("500 reserved of 1000 purchased, serial SN-BACKUP-1"), std::string::npos)
      << w.backup_output;
  EXPECT_NE(w.backup_output.find("1 files, 3145745 bytes (1 left out"), std::string::npos) << w.backup_output;
  auto contents = backup::read(w.backup_file);
  ASSERT_TRUE(contents.ok()) << contents.error().message;
  EXPECT_EQ(contents->version, backup::kFormatVersion);
  EXPECT_EQ(contents->layout, static_cast<uint32_t>(layout::kCurrent));
  const Value* layout_field = contents->manifest.find("layout");
  ASSERT_TRUE(layout_field && layout_field->is_int());
  EXPECT_EQ(layout_field->as_int(), layout::kCurrent);
  EXPECT_EQ(contents->artifacts.size(), 1u);
  EXPECT_EQ(contents->key_files.size(), w.key_files.size());
  const Value* res = contents->manifest.find("reservations");
  ASSERT_TRUE(res && res->is_int());
  EXPECT_EQ(res->as_int(), kComputers);
  for (const auto& k : contents->redis) EXPECT_EQ(k.name.rfind("ps:", 0), 0u) << k.name;

  // --no-artifacts leaves the 3 MiB file out. (Not an exact size sum: the
  // workers' op counters, ps:metrics:ops, may have grown between the two.)
  EXPECT_LT(w.small_size + w.artifact_data.size() / 2, fs::file_size(w.backup_file));

  // The server is stopped now: a backup needs its Redis, says so, and writes nothing.
  int rc = -1;
  const std::string none = w.dir.file("none.backup");
  const std::string out = run_capture({bin("primaryctl"), "backup", "--data-dir", w.data_a, "--out", none}, &rc);
  EXPECT_EQ(rc, 1) << out;
  EXPECT_FALSE(fs::exists(none));
  for (const auto& entry : fs::directory_iterator(w.dir.path()))
    EXPECT_EQ(entry.path().filename().string().find(".tmp"), std::string::npos) << entry.path();
}

TEST_F(Backup, RestoreIntoAFreshDataDirBringsEverythingBack) {
  World& w = *world;
  const std::string data = w.dir.file("b");
  const auto t0 = std::chrono::steady_clock::now();
  Server b(data, w.vendor_pub(), w.dir.file("b.log"), {"--restore", w.backup_file});
  ASSERT_FALSE(b.front.empty()) << read_file(w.dir.file("b.log"));
  std::cout << "(figure: primary-server --restore to listening: "
            << std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() << " s)\n";
  Redis r = private_redis(data);
  expect_same_state(b.front, r);
  expect_same_files(data);
  EXPECT_NE(read_file(w.dir.file("b.log")).find("restored"), std::string::npos);
  // The fleet's history came back with its expiry (no admin worker runs
  // here to write any).
  EXPECT_EQ(hash_of(r, w.history_key), w.history);
  auto history_ttl = r.command({"TTL", w.history_key});
  ASSERT_TRUE(history_ttl && history_ttl->is_int());
  EXPECT_GT(history_ttl->integer, 500 * 86400);

  // Durable before serving: SIGKILL everything, start without --restore.
  const pid_t sup = b.proc.pid();
  for (pid_t p : children_named(sup, "redis-server")) ::kill(p, SIGKILL);
  b.proc.kill();
  std::this_thread::sleep_for(500ms);  // orphans get their SIGTERM and go
  Server again(data, w.vendor_pub(), w.dir.file("b2.log"));
  ASSERT_FALSE(again.front.empty()) << read_file(w.dir.file("b2.log"));
  Redis r2 = private_redis(data);
  auto n = r2.command({"ZCARD", "ps:res"});
  ASSERT_TRUE(n && n->is_int());
  EXPECT_EQ(n->integer, kComputers);
  EXPECT_EQ(hash_of(r2, "ps:upd:releases"), w.releases);
  EXPECT_TRUE(again.stop());

  // This data dir holds state now: a restore onto it is refused, nothing changes.
  const std::string log = w.dir.file("b-refused.log");
  Process refused = Process::start({bin("primary-server"), "--web", "127.0.0.1:0", "--data-dir", data, "--restore", w.backup_file,
                                    "--vendor-key", w.vendor_pub()}, {}, log);
  EXPECT_EQ(refused.wait_exit(20s), 2);
  EXPECT_NE(read_file(log).find("already holds server state"), std::string::npos) << read_file(log);
  EXPECT_FALSE(fs::exists(data + "/restore-incomplete"));
}

TEST_F(Backup, ForceReplacesExistingState) {
  World& w = *world;
  const std::string data = w.dir.file("c");
  {
    // A server that has other state: another serial's registration, a reservation.
    Server c0(data, w.vendor_pub(), w.dir.file("c0.log"), {"--insecure"});
    ASSERT_FALSE(c0.front.empty()) << read_file(w.dir.file("c0.log"));
    Redis r = private_redis(data);
    ASSERT_TRUE(r.command({"ZADD", "ps:res", "0", "OTHER:xyz"}).ok());
    ASSERT_TRUE(c0.stop());
  }
  std::string err_log = w.dir.file("c-refused.log");
  Process refused = Process::start({bin("primary-server"), "--web", "127.0.0.1:0", "--data-dir", data, "--restore", w.backup_file}, {}, err_log);
  EXPECT_EQ(refused.wait_exit(20s), 2);
  const std::string line = read_file(err_log);
  EXPECT_NE(line.find("already holds server state"), std::string::npos) << line;
  EXPECT_NE(line.find("--force"), std::string::npos) << line;

  Server c(data, w.vendor_pub(), w.dir.file("c.log"), {"--restore", w.backup_file, "--force"});
  ASSERT_FALSE(c.front.empty()) << read_file(w.dir.file("c.log"));
  Redis r = private_redis(data);
  auto other = r.command({"ZSCORE", "ps:res", "OTHER:xyz"});
  ASSERT_TRUE(other.ok());
  EXPECT_TRUE(other->is_nil()) << "state not in the backup is gone";
  expect_same_state(c.front, r);
  expect_same_files(data);
  EXPECT_TRUE(c.stop());
}

TEST_F(Backup, DamagedBackupsAreRefusedAndNothingIsWritten) {
  World& w = *world;
  const std::string good = read_file(w.backup_file);
  ASSERT_GT(good.size(), 1000u);
  struct Case {
    std::string label, bytes, expect;
  };
  std::string flipped = good;
  flipped[flipped.size() / 2] ^= 0x01;
  std::string flipped_digest = good;
  flipped_digest[flipped_digest.size() - 1] ^= 0x80;
  std::string newer = good;
  newer[11] = 3;  // format version 3
  const std::vector<Case> cases = {
      {"one byte flipped", flipped, "checksum mismatch"},
      {"digest flipped", flipped_digest, "checksum mismatch"},
      {"truncated by 100 bytes", good.substr(0, good.size() - 100), "truncated"},
      {"truncated to 20 bytes", good.substr(0, 20), "truncated"},
      {"not a backup", "hello\n", "not a Primary Server backup"},
      {"newer format", newer, "format version 3"},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    const auto& k = cases[i];
    const std::string file = w.dir.file("bad" + std::to_string(i));
    const std::string data = w.dir.file("fresh" + std::to_string(i));
    ASSERT_TRUE(write_file_atomic(file, k.bytes, 0600));
    const std::string log = w.dir.file("bad" + std::to_string(i) + ".log");
    Process p = Process::start({bin("primary-server"), "--web", "127.0.0.1:0", "--data-dir", data, "--restore", file}, {}, log);
    EXPECT_EQ(p.wait_exit(20s), 2) << k.label;
    const std::string out = read_file(log);
    EXPECT_NE(out.find(k.expect), std::string::npos) << k.label << ": " << out;
    EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1) << k.label << ": one line: " << out;
    EXPECT_FALSE(fs::exists(data)) << k.label << ": the data dir was created";
  }
}

TEST_F(Backup, RestoreIntoAnEmptyExternalRedis) {
  World& w = *world;
  RedisServer redis;
  ASSERT_TRUE(redis.ok());
  const std::string data = w.dir.file("e");
  Server e(data, w.vendor_pub(), w.dir.file("e.log"), {"--restore", w.backup_file, "--redis", redis.url()});
  ASSERT_FALSE(e.front.empty()) << read_file(w.dir.file("e.log"));
  auto url = parse_redis_url(redis.url());
  ASSERT_TRUE(url.ok());
  Redis r(*url);
  expect_same_state(e.front, r);
  expect_same_files(data);
  EXPECT_TRUE(e.stop());

  // It holds product keys now: a second restore into it is refused.
  const std::string log = w.dir.file("e-refused.log");
  Process p = Process::start({bin("primary-server"), "--web", "127.0.0.1:0", "--data-dir", w.dir.file("e2"), "--restore", w.backup_file,
                              "--redis", redis.url()}, {}, log);
  EXPECT_EQ(p.wait_exit(20s), 2);
  EXPECT_NE(read_file(log).find("product keys in"), std::string::npos) << read_file(log);
}


// A backup whose checksum is right but whose names would leave their
// directory (a crafted file, not one primaryctl writes) is refused too.
std::string be(uint64_t v, int bytes) {
  std::string out;
  for (int i = bytes - 1; i >= 0; --i) out += static_cast<char>((v >> (i * 8)) & 0xff);
  return out;
}
std::string record(char kind, const std::string& name, const std::string& data) {
  return std::string(1, kind) + be(name.size(), 4) + name + be(data.size(), 8) + data;
}
std::string crafted(const std::string& records) {
  std::string s = "PSBACKUP" + be(1, 4) + record('M', "manifest", pack(Value(Value::Map{{"format", Value(1)}}))) +
                  records + std::string(1, 'Z') + be(0, 4) + be(32, 8);
  return s + sha256(s);
}

// A format-1 backup (from before the data layout was versioned: no layout
// in the header, no ps:layout among its keys) restores, and its keys are
// migrated to this release's layout before anything serves.
TEST_F(Backup, FormatOneBackupRestoresAndIsMigrated) {
  World& w = *world;
  auto contents = backup::read(w.backup_file);
  ASSERT_TRUE(contents.ok()) << contents.error().message;
  std::string records;
  for (const auto& k : contents->redis)
    if (k.name != "ps:layout") records += record('R', k.name, be(k.expires_at_ms, 8) + k.dump);
  for (const auto& [name, data] : contents->key_files) records += record('K', name, data);
  const std::string file = w.dir.file("format1.backup");
  ASSERT_TRUE(write_file_atomic(file, crafted(records), 0600));
  auto old = backup::read(file);
  ASSERT_TRUE(old.ok()) << old.error().message;
  EXPECT_EQ(old->version, 1u);
  EXPECT_EQ(old->layout, 0u);

  const std::string data = w.dir.file("f1");
  Server f(data, w.vendor_pub(), w.dir.file("f1.log"), {"--restore", file});
  ASSERT_FALSE(f.front.empty()) << read_file(w.dir.file("f1.log"));
  Redis r = private_redis(data);
  auto v = r.command({"GET", "ps:layout"});
  ASSERT_TRUE(v && v->is_str());
  EXPECT_EQ(v->str, std::to_string(layout::kCurrent));
  const auto types = list_of(r, {"EVAL", "local o = {} for _, e in ipairs(redis.call('XRANGE', KEYS[1], '-', '+')) do "
                                 "o[#o+1] = e[2][2] end return o", "1", "ps:events"});
  EXPECT_EQ(std::count(types.begin(), types.end(), "data.migrated"), 1);
  EXPECT_NE(read_file(w.dir.file("f1.log")).find("data migrated from layout 0 to 1"), std::string::npos);
  expect_same_state(f.front, r);
  EXPECT_TRUE(f.stop()) << read_file(w.dir.file("f1.log"));
}

TEST_F(Backup, NamesThatLeaveTheirDirectoryAreRefused) {
  World& w = *world;
  const std::vector<std::pair<std::string, std::string>> cases = {
      {crafted(record('K', "../evil", "x")), "key file with an unsafe name"},
      {crafted(record('K', "", "x")), "key file with an unsafe name"},
      {crafted(record('A', "../../evil", "x")), "artifact with an unsafe path"},
      {crafted(record('A', "/tmp/evil", "x")), "artifact with an unsafe path"},
      {crafted(record('A', "a/../../evil", "x")), "artifact with an unsafe path"},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    const std::string file = w.dir.file("crafted" + std::to_string(i));
    const std::string data = w.dir.file("crafted-data" + std::to_string(i));
    ASSERT_TRUE(write_file_atomic(file, cases[i].first, 0600));
    const std::string log = file + ".log";
    Process p = Process::start({bin("primary-server"), "--web", "127.0.0.1:0", "--data-dir", data, "--restore", file}, {}, log);
    EXPECT_EQ(p.wait_exit(20s), 2) << i;
    EXPECT_NE(read_file(log).find(cases[i].second), std::string::npos) << i << ": " << read_file(log);
    EXPECT_FALSE(fs::exists(data)) << i;
  }
  EXPECT_FALSE(fs::exists(w.dir.file("evil")));
  // The same framing with safe names reads back (the crafting is right).
  auto ok = backup::read(write_file_atomic(w.dir.file("crafted-ok"), crafted(record('K', "lease.key", "k")), 0600)
                             ? w.dir.file("crafted-ok")
                             : "");
  ASSERT_TRUE(ok.ok()) << ok.error().message;
  ASSERT_EQ(ok->key_files.size(), 1u);
  EXPECT_EQ(ok->key_files[0].second, "k");
}

}  // namespace
}  // namespace primary::test
