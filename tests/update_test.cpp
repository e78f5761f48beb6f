// Software updates against the real processes: a vendor feed served over
// HTTP on 127.0.0.1 (tests/feed_server.py: byte ranges, a request log, and a
// switch to die mid-transfer), primary-vendor signing feeds and bundles, the
// broker, primary-updater workers and Redis, and the client library's
// UpdateAgent downloading through the broker.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "common/codec.hpp"
#include "common/crypto.hpp"
#include "common/process.hpp"
#include "common/redis.hpp"
#include "primary/client/update_agent.hpp"
#include "tests/support/process.hpp"
#include "tests/support/stack.hpp"
#include "tests/support/temp_dir.hpp"
#include "tests/support/util.hpp"

namespace primary::test {
namespace {

namespace fs = std::filesystem;

// A folder of release files with its releases.toml, as a vendor keeps it.
struct ReleaseDir {
  std::string dir;
  struct Entry {
    std::string component, version, channel, file;
  };
  std::vector<Entry> entries;

  void add(const std::string& component, const std::string& version, int64_t size,
           const std::string& channel = "stable") {
    const std::string file = component + "-" + version + ".bin";
    std::mt19937_64 rng(std::hash<std::string>{}(file));
    std::string data(static_cast<size_t>(size), '\0');
    for (auto& c : data) c = static_cast<char>(rng());
    std::ofstream(dir + "/" + file, std::ios::binary) << data;
    entries.push_back({component, version, channel, file});
    std::ofstream toml(dir + "/releases.toml");
    for (const auto& e : entries)
      toml << "[[release]]\ncomponent = \"" << e.component << "\"\nversion = \"" << e.version
           << "\"\nchannel = \"" << e.channel << "\"\nfile = \"" << e.file << "\"\nnotes = \"test release\"\n\n";
  }
  std::string path(const std::string& component, const std::string& version) const {
    return dir + "/" + component + "-" + version + ".bin";
  }
};

int64_t now_ms() { return std::chrono::duration_cast<std::chrono::milliseconds>(
                              std::chrono::system_clock::now().time_since_epoch()).count(); }

// The vendor tool; returns its exit code.
int vendor(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {bin("primary-vendor")};
  argv.insert(argv.end(), args.begin(), args.end());
  int code = -1;
  run_capture(argv, &code);
  return code;
}

class FeedServer {
 public:
  // Serves `dir` on 127.0.0.1 (port 0 unless given).
  void start(const std::string& dir, const std::string& work, int port = 0, int64_t die_after = 0) {
    const std::string port_file = work + "/feed.port";
    ::unlink(port_file.c_str());
    std::vector<std::string> argv = {"/usr/bin/python3", std::string(PRIMARY_SOURCE_DIR) + "/tests/feed_server.py",
                                     "--dir", dir, "--port-file", port_file, "--log", work + "/feed.log"};
    if (port) argv.insert(argv.end(), {"--port", std::to_string(port)});
    if (die_after) argv.insert(argv.end(), {"--die-after", std::to_string(die_after)});
    proc_ = Process::start(argv);
    ASSERT_TRUE(wait_until([&] { return !read_file(port_file).empty(); }, 10s)) << "feed server did not start";
    port_ = std::stoi(read_file(port_file));
    log_ = work + "/feed.log";
  }
  void stop() {
    proc_.kill();
  }
  bool alive() { return proc_.alive(); }
  int port() const { return port_; }
  std::string url(const std::string& file) const { return "http://127.0.0.1:" + std::to_string(port_) + "/" + file; }
  std::string log() const { return read_file(log_); }

 private:
  Process proc_;
  int port_ = 0;
  std::string log_;
};

const Value::Array& items_of(const Value& v) {
  static const Value::Array none;
  const Value* f = v.find("items");
  return f && f->is_array() ? f->as_array() : none;
}

// component version -> state, for the releases listing.
std::map<std::string, std::string> catalogue(Stack& s) {
  std::map<std::string, std::string> out;
  Value r = s.call("update.control", "releases");
  for (const Value& item : items_of(r))
    out[str(item, "component") + " " + str(item, "version")] = str(item, "state");
  return out;
}

// Starts a sync or import and waits for its job to finish; the sync record.
Value run_job(Stack& s, const std::string& op, Value::Map fields = {}) {
  Value started = s.call("update.control", op, std::move(fields));
  EXPECT_TRUE(ok(started)) << to_json(started);
  const std::string job = str(started, "job");
  Value record;
  EXPECT_TRUE(wait_until(
      [&] {
        Value r = s.call("update.control", "releases");
        const Value* sync = r.find("sync");
        if (!sync || str(*sync, "job") != job || str(*sync, "state") != "done") return false;
        record = *sync;
        return true;
      },
      60s, 50ms))
      << op << " job " << job << " did not finish; updater log:\n"
      << read_file(s.dir().file("updater.log"));
  return record;
}

std::vector<std::string> log_types(Stack& s) {
  std::vector<std::string> out;
  Value r = s.call("admin", "log", {{"limit", Value(1000)}});
  for (const Value& e : items_of(r)) out.push_back(str(e, "type"));
  return out;
}

// Events of one type from the activity log, read straight from the stream.
std::vector<Value> events_of(Stack& s, const std::string& type) {
  std::vector<Value> out;
  Redis redis(*parse_redis_url(s.redis().url()));
  auto r = redis.command({"XRANGE", "ps:events", "-", "+"});
  if (!r || !r->is_array()) return out;
  for (const auto& entry : r->elements) {
    const auto& kv = entry.elements[1].elements;
    std::string t, data;
    for (size_t i = 0; i + 1 < kv.size(); i += 2) {
      if (kv[i].str == "type") t = kv[i + 1].str;
      if (kv[i].str == "data") data = kv[i + 1].str;
    }
    if (t != type) continue;
    auto v = unpack_value(data);
    if (v) out.push_back(*v);
  }
  return out;
}

size_t stored_objects(const std::string& store) {
  size_t n = 0;
  std::error_code ec;
  for (auto it = fs::directory_iterator(store + "/objects", ec); !ec && it != fs::directory_iterator(); ++it) ++n;
  return n;
}

client::UpdateOptions agent_options(Stack& s) {
  client::UpdateOptions o;
  o.endpoints = {s.front()};
  o.vendor_key = read_file(s.vendor_pub_file());
  while (!o.vendor_key.empty() && std::isspace(static_cast<unsigned char>(o.vendor_key.back()))) o.vendor_key.pop_back();
  o.timeout = 10s;
  return o;
}

class UpdateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    StackOptions o;
    o.admin_workers = 1;
    // The 20-client download queues 80 chunk requests for one updater; on a
    // slow build (ASan, a loaded CI machine) the last ones wait longer than
    // the broker's default 5 s and are answered UNAVAILABLE. No test here is
    // about that deadline, so it is long enough not to depend on speed.
    o.broker_args = {"--request-timeout-ms", "60000"};
    stack_ = std::make_unique<Stack>(o);
    ASSERT_TRUE(stack_->ok());
    rel_.dir = stack_->dir().file("releases");
    fs::create_directories(rel_.dir);
    work_ = stack_->dir().file("feedwork");
    fs::create_directories(work_);
    store_ = stack_->dir().file("updates");
  }
  void start_updater(const std::vector<std::string>& extra) {
    stack_->start_updater_worker(extra);
    ASSERT_TRUE(stack_->wait_workers("update.control", static_cast<int64_t>(stack_->updater_workers.size())));
  }
  // Signs the release folder into DIR/feed (issued `issued`, 0: now).
  void sign(int64_t issued = 0, int64_t expires_days = 30, const std::string& out = "") {
    std::vector<std::string> args = {"sign-feed", "--key", stack_->vendor_key_file(), "--dir", rel_.dir,
                                     "--out", out.empty() ? rel_.dir + "/feed" : out,
                                     "--expires-days", std::to_string(expires_days)};
    if (issued) args.insert(args.end(), {"--issued", std::to_string(issued)});
    ASSERT_EQ(vendor(args), 0);
  }

  std::unique_ptr<Stack> stack_;
  ReleaseDir rel_;
  FeedServer feed_;
  std::string work_, store_;
};

TEST_F(UpdateTest, SyncsTwoComponentsAndRefusesTamperedOlderAndExpiredFeeds) {
  Stack& s = *stack_;
  rel_.add("client", "1.0.0", 200000);
  rel_.add("client", "1.1.0", 300000);
  rel_.add("vault", "2.0.0", 100000);
  const int64_t t0 = now_ms() - 60000;
  sign(t0);
  feed_.start(rel_.dir, work_);
  start_updater({"--update-feed", feed_.url("feed"), "--sync-interval-s", "0"});

  Value rec = run_job(s, "sync");
  EXPECT_EQ(str(rec, "result"), "ok") << to_json(rec);
  auto cat = catalogue(s);
  ASSERT_EQ(cat.size(), 3u);
  for (const auto& [k, state] : cat) EXPECT_EQ(state, "held") << k;
  EXPECT_EQ(stored_objects(store_), 3u);
  // Stored bytes equal the vendor's.
  Value list = s.call("update.control", "releases");
  for (const Value& item : items_of(list)) {
    EXPECT_TRUE(item.find("stored")->as_bool());
    EXPECT_EQ(*sha256_file_hex(store_ + "/objects/" + str(item, "sha256")), str(item, "sha256"));
  }
  EXPECT_EQ(events_of(s, "update.available").size(), 3u);
  EXPECT_EQ(events_of(s, "update.synced").size(), 1u);
  // Held releases are not offered.
  Value none = s.call("update", "check", {{"component", Value("client")}, {"version", Value("1.0.0")}});
  ASSERT_TRUE(ok(none));
  EXPECT_TRUE(none.find("update")->is_nil());

  // A second sync of the same feed adds nothing.
  rec = run_job(s, "sync");
  EXPECT_EQ(str(rec, "result"), "ok");
  EXPECT_EQ(events_of(s, "update.available").size(), 3u);

  auto refused_reason = [&](size_t before) {
    auto r = events_of(s, "update.refused");
    return r.size() > before ? str(r.back(), "reason") : std::string();
  };

  // Tampered manifest: one byte of the signed manifest changed.
  rel_.add("client", "1.2.0", 50000);
  sign(t0 + 1000);
  std::string feed = read_file(rel_.dir + "/feed");
  const size_t at = feed.find("client");
  ASSERT_NE(at, std::string::npos);
  feed[at] = 'k';
  { std::ofstream(rel_.dir + "/feed", std::ios::binary) << feed; }
  rec = run_job(s, "sync");
  EXPECT_EQ(str(rec, "result"), "refused");
  EXPECT_NE(refused_reason(0).find("signature"), std::string::npos) << refused_reason(0);

  // An older manifest (a replay) is refused.
  sign(t0 - 1000);
  rec = run_job(s, "sync");
  EXPECT_EQ(str(rec, "result"), "refused");
  EXPECT_NE(refused_reason(1).find("older"), std::string::npos) << refused_reason(1);

  // An expired manifest is refused.
  sign(now_ms() - 3 * 86400 * 1000LL, 1);
  rec = run_job(s, "sync");
  EXPECT_EQ(str(rec, "result"), "refused");
  EXPECT_NE(refused_reason(2).find("expired"), std::string::npos) << refused_reason(2);

  // Nothing of the refused feeds was stored.
  EXPECT_EQ(catalogue(s).size(), 3u);
  EXPECT_EQ(stored_objects(store_), 3u);

  // A tampered file (same size, other bytes): the release is refused, the
  // rest of the feed goes through.
  sign(t0 + 2000);
  {
    std::string data = read_file(rel_.path("client", "1.2.0"));
    data[100] = static_cast<char>(data[100] ^ 0x5a);
    std::ofstream(rel_.path("client", "1.2.0"), std::ios::binary) << data;
  }
  rec = run_job(s, "sync");
  EXPECT_EQ(str(rec, "result"), "partial");
  auto failed = events_of(s, "update.download_failed");
  ASSERT_EQ(failed.size(), 1u);
  EXPECT_EQ(str(failed[0], "version"), "1.2.0");
  EXPECT_NE(str(failed[0], "reason").find("sha256 mismatch"), std::string::npos) << str(failed[0], "reason");
  EXPECT_EQ(catalogue(s).size(), 3u);
  EXPECT_EQ(stored_objects(store_), 3u);
  EXPECT_FALSE(fs::exists(store_ + "/partial/" + str(failed[0], "sha256")));

  // A job id that happens to be all digits is still the same string.
  {
    Redis redis(*parse_redis_url(s.redis().url()));
    ASSERT_TRUE(redis.command({"HSET", "ps:upd:sync", "job", "2382341196647891"}));
    Value r = s.call("update.control", "releases");
    EXPECT_EQ(str(*r.find("sync"), "job"), "2382341196647891");
  }

  // Every step is in the activity log as admin.log shows it.
  auto types = log_types(s);
  for (const char* t : {"update.available", "update.synced", "update.refused", "update.download_failed"})
    EXPECT_NE(std::find(types.begin(), types.end(), t), types.end()) << t;
}

// libcurl and libarchive (and their thirty-odd libraries) live in a module
// the updater loads at its first sync or import: an idle updater maps none
// of them, and an installation without the module stops at start-up.
bool maps_library(pid_t pid, const std::string& name) {
  return read_file("/proc/" + std::to_string(pid) + "/maps").find(name) != std::string::npos;
}

TEST_F(UpdateTest, NetworkLibrariesAreLoadedAtTheFirstSyncOnly) {
  Stack& s = *stack_;
  rel_.add("client", "1.0.0", 1000);
  sign();
  feed_.start(rel_.dir, work_);
  start_updater({"--update-feed", feed_.url("feed"), "--sync-interval-s", "0"});
  const pid_t pid = s.updater_workers.back().pid();
  EXPECT_FALSE(maps_library(pid, "libcurl")) << "an idle updater maps libcurl";
  EXPECT_FALSE(maps_library(pid, "primary-updater-net.so"));
  ASSERT_EQ(str(run_job(s, "sync"), "result"), "ok");
  EXPECT_TRUE(maps_library(pid, "primary-updater-net.so"));
  EXPECT_TRUE(maps_library(pid, "libcurl"));
  EXPECT_TRUE(maps_library(pid, "libarchive"));

  // The executable alone, without the module beside it: one clear line.
  TempDir lone("lone-updater");
  fs::copy_file(bin("primary-updater"), lone.file("primary-updater"));
  int code = 0;
  const std::string out = run_capture(
      {"sh", "-c", lone.file("primary-updater") + " --update-dir " + lone.file("store") + " --redis " +
                       "unix://" + lone.file("none.sock") + " 2>&1"},
      &code);
  EXPECT_NE(code, 0) << out;
  EXPECT_NE(out.find("network module " + lone.file("primary-updater-net.so")), std::string::npos) << out;
  EXPECT_EQ(out.find('\n'), std::string::npos) << out;
}

TEST_F(UpdateTest, ApprovalHoldAndRolloutDecideWhatCheckOffers) {
  Stack& s = *stack_;
  rel_.add("client", "1.0.0", 1000);
  rel_.add("client", "1.1.0", 2000);
  rel_.add("client", "2.0.0-beta.1", 3000, "beta");
  sign();
  feed_.start(rel_.dir, work_);
  start_updater({"--update-feed", feed_.url("feed"), "--sync-interval-s", "0", "--auto-approve", "beta"});
  ASSERT_EQ(str(run_job(s, "sync"), "result"), "ok");
  auto cat = catalogue(s);
  EXPECT_EQ(cat["client 2.0.0-beta.1"], "approved");  // auto-approved channel
  EXPECT_EQ(cat["client 1.1.0"], "held");

  auto offered = [&](const std::string& version, const std::string& computer, const std::string& channel = "stable") {
    Value::Map f = {{"component", Value("client")}, {"version", Value(version)}, {"channel", Value(channel)}};
    if (!computer.empty()) f.emplace_back("computer", Value(computer));
    Value r = s.call("update", "check", std::move(f));
    EXPECT_TRUE(ok(r)) << to_json(r);
    const Value* u = r.find("update");
    return u && u->is_map() ? str(*u, "version") : std::string();
  };
  EXPECT_EQ(offered("0.9.0", "PC-1"), "");
  EXPECT_EQ(offered("1.9.0", "PC-1", "beta"), "2.0.0-beta.1");

  ASSERT_TRUE(ok(s.call("update.control", "approve", {{"component", Value("client")}, {"version", Value("1.0.0")}})));
  EXPECT_EQ(offered("0.9.0", "PC-1"), "1.0.0");
  EXPECT_EQ(offered("1.0.0", "PC-1"), "");

  // 1.1.0 at 30%: between 20% and 40% of 1,000 names take it; the others
  // still get 1.0.0 when they run something older.
  Value ap = s.call("update.control", "approve",
                    {{"component", Value("client")}, {"version", Value("1.1.0")}, {"rollout", Value(30)}});
  ASSERT_TRUE(ok(ap)) << to_json(ap);
  EXPECT_EQ(num(ap, "rollout"), 30);
  int newest = 0, older = 0;
  auto c = s.client(10000);
  for (int i = 0; i < 1000; ++i) {
    auto r = c->call("update", "check",
                     {{"component", Value("client")}, {"version", Value("0.5.0")}, {"computer", Value("PC-" + std::to_string(i))}});
    ASSERT_TRUE(r && ok(*r));
    const std::string v = str(*r->find("update"), "version");
    newest += v == "1.1.0";
    older += v == "1.0.0";
  }
  std::printf("rollout 30%%: %d of 1000 offered 1.1.0, %d offered 1.0.0\n", newest, older);
  EXPECT_GE(newest, 200);
  EXPECT_LE(newest, 400);
  EXPECT_EQ(newest + older, 1000);
  // The same computer always gets the same answer.
  const std::string first = offered("0.5.0", "PC-7");
  for (int i = 0; i < 5; ++i) EXPECT_EQ(offered("0.5.0", "PC-7"), first);
  // Without a name, only a full rollout is offered.
  EXPECT_EQ(offered("0.5.0", ""), "1.0.0");

  // Hold takes it back.
  ASSERT_TRUE(ok(s.call("update.control", "hold", {{"component", Value("client")}, {"version", Value("1.1.0")}})));
  for (int i = 0; i < 50; ++i) EXPECT_NE(offered("0.5.0", "PC-" + std::to_string(i)), "1.1.0");
  EXPECT_EQ(events_of(s, "update.held").size(), 1u);
  EXPECT_GE(events_of(s, "update.approved").size(), 3u);

  // Unknown releases and bad versions get error codes.
  Value unknown = s.call("update.control", "approve", {{"component", Value("client")}, {"version", Value("9.9.9")}});
  EXPECT_EQ(str(unknown, "code"), "NOT_FOUND");
  Value bad = s.call("update", "check", {{"component", Value("client")}, {"version", Value("not-a-version")}});
  EXPECT_EQ(str(bad, "code"), "BAD_REQUEST");
  EXPECT_NE(str(bad, "message").find("version"), std::string::npos);
  Value bad_fetch = s.call("update", "fetch", {{"sha256", Value(std::string(64, 'a'))}, {"offset", Value(0)}, {"length", Value(10)}});
  EXPECT_EQ(str(bad_fetch, "code"), "NOT_FOUND");
}

TEST_F(UpdateTest, InterruptedFeedDownloadResumesWithARangeRequest) {
  Stack& s = *stack_;
  const int64_t size = 8 << 20;
  rel_.add("client", "3.0.0", size);
  sign();
  feed_.start(rel_.dir, work_, 0, 3 << 20);  // dies 3 MiB into any response
  start_updater({"--update-feed", feed_.url("feed"), "--sync-interval-s", "0"});
  Value rec = run_job(s, "sync");
  EXPECT_EQ(str(rec, "result"), "partial") << to_json(rec);
  EXPECT_TRUE(catalogue(s).empty());
  Value list = s.call("update.control", "releases");
  const std::string sha = *sha256_file_hex(rel_.path("client", "3.0.0"));
  struct stat st {};
  ASSERT_EQ(::stat((store_ + "/partial/" + sha).c_str(), &st), 0) << "the partial download was not kept";
  const int64_t kept = st.st_size;
  std::printf("interrupted after %lld of %lld bytes\n", static_cast<long long>(kept), static_cast<long long>(size));
  EXPECT_GT(kept, 0);
  EXPECT_LT(kept, size);

  // The server comes back on the same port; the next sync resumes.
  const int port = feed_.port();
  feed_.stop();
  feed_.start(rel_.dir, work_, port);
  rec = run_job(s, "sync");
  EXPECT_EQ(str(rec, "result"), "ok") << to_json(rec);
  EXPECT_NE(feed_.log().find("range=bytes=" + std::to_string(kept) + "-"), std::string::npos) << feed_.log();
  EXPECT_EQ(*sha256_file_hex(store_ + "/objects/" + sha), sha);
  EXPECT_FALSE(fs::exists(store_ + "/partial/" + sha));
  EXPECT_EQ(catalogue(s).size(), 1u);
}

TEST_F(UpdateTest, OfflineBundleGivesTheSameCatalogueAsTheFeed) {
  Stack& s = *stack_;
  rel_.add("client", "1.0.0", 150000);
  rel_.add("vault", "1.0.0", 80000, "beta");
  const int64_t issued = now_ms() - 1000;
  sign(issued);
  feed_.start(rel_.dir, work_);
  start_updater({"--update-feed", feed_.url("feed"), "--sync-interval-s", "0"});
  ASSERT_EQ(str(run_job(s, "sync"), "result"), "ok");
  Value from_feed = s.call("update.control", "releases");

  // A second server, offline: the same releases from a bundle.
  StackOptions o;
  Stack offline(o);
  ASSERT_TRUE(offline.ok());
  // Same vendor key as the first stack.
  fs::copy_file(s.vendor_pub_file(), offline.dir().file("vendor-copy.pub"));
  offline.start_updater_worker({"--vendor-key", offline.dir().file("vendor-copy.pub"), "--sync-interval-s", "0"});
  ASSERT_TRUE(offline.wait_workers("update.control", 1));
  const std::string bundle = s.dir().file("updates.bundle");
  ASSERT_EQ(vendor({"bundle", "--key", s.vendor_key_file(), "--dir", rel_.dir, "--out", bundle, "--issued",
                    std::to_string(issued)}),
            0);
  Value rec = run_job(offline, "import", {{"path", Value(bundle)}});
  EXPECT_EQ(str(rec, "result"), "ok") << to_json(rec);
  Value from_bundle = offline.call("update.control", "releases");
  auto key_fields = [](const Value& r) {
    std::set<std::string> out;
    for (const Value& i : items_of(r))
      out.insert(str(i, "component") + "|" + str(i, "version") + "|" + str(i, "channel") + "|" +
                 std::to_string(num(i, "size")) + "|" + str(i, "sha256") + "|" + str(i, "signature") + "|" +
                 str(i, "state"));
    return out;
  };
  EXPECT_EQ(key_fields(from_feed), key_fields(from_bundle));
  EXPECT_EQ(key_fields(from_feed).size(), 2u);

  // A corrupt bundle and a missing path are refused without changes.
  {
    std::string b = read_file(bundle);
    b.resize(b.size() / 2);
    std::ofstream(s.dir().file("half.bundle"), std::ios::binary) << b;
  }
  rec = run_job(offline, "import", {{"path", Value(s.dir().file("half.bundle"))}});
  EXPECT_EQ(str(rec, "result"), "refused") << to_json(rec);
  EXPECT_EQ(str(offline.call("update.control", "import", {{"path", Value("/nonexistent/x.bundle")}}), "code"), "NOT_FOUND");
  EXPECT_EQ(str(offline.call("update.control", "import", {{"path", Value("relative.bundle")}}), "code"), "BAD_REQUEST");
  EXPECT_EQ(key_fields(offline.call("update.control", "releases")), key_fields(from_bundle));
}

TEST_F(UpdateTest, AgentDownloadsThroughTheBrokerAndResumesAPartialFile) {
  Stack& s = *stack_;
  rel_.add("client", "4.0.0", (5 << 20) + 12345);
  sign();
  feed_.start(rel_.dir, work_);
  start_updater({"--update-feed", feed_.url("feed"), "--sync-interval-s", "0"});
  ASSERT_EQ(str(run_job(s, "sync"), "result"), "ok");
  ASSERT_TRUE(ok(s.call("update.control", "approve", {{"component", Value("client")}, {"version", Value("4.0.0")}})));

  client::UpdateAgent agent(agent_options(s));
  auto offer = agent.check("client", "3.2.1", "stable", "PC-1");
  ASSERT_TRUE(offer) << offer.error();
  ASSERT_TRUE(offer->has_value());
  const client::UpdateInfo u = **offer;
  EXPECT_EQ(u.version, "4.0.0");

  // A partial file from an earlier attempt: the agent fetches only the rest.
  const std::string out = s.dir().file("client-4.0.0.bin");
  const std::string original = read_file(rel_.path("client", "4.0.0"));
  { std::ofstream(out + ".part", std::ios::binary) << original.substr(0, 2 << 20); }
  int64_t last_progress = 0;
  client::UpdateOptions o = agent_options(s);
  o.window = 4;
  o.on_progress = [&](int64_t done, int64_t) { last_progress = done; };
  client::UpdateAgent resuming(o);
  auto got = resuming.download(u, out);
  ASSERT_TRUE(got) << got.error();
  EXPECT_EQ(*got, u.size - (2 << 20));
  EXPECT_EQ(last_progress, u.size);
  EXPECT_EQ(read_file(out), original);
  EXPECT_FALSE(fs::exists(out + ".part"));

  // A forged offer (signature of another release) is refused before any byte moves.
  client::UpdateInfo forged = u;
  forged.version = "4.0.1";
  auto refused = resuming.download(forged, s.dir().file("forged.bin"));
  EXPECT_FALSE(refused);
  EXPECT_FALSE(fs::exists(s.dir().file("forged.bin")));
}

int64_t rss_kib(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::atoll(line.c_str() + 6);
  return -1;
}

TEST_F(UpdateTest, TwentyClientsDownloadA64MiBArtifactWithBoundedMemory) {
  Stack& s = *stack_;
  const int64_t size = int64_t{64} << 20;
  rel_.add("client", "5.0.0", size);
  sign();
  const std::string sha = *sha256_file_hex(rel_.path("client", "5.0.0"));
  feed_.start(rel_.dir, work_);
  start_updater({"--update-feed", feed_.url("feed"), "--sync-interval-s", "0"});
  ASSERT_EQ(str(run_job(s, "sync"), "result"), "ok");
  ASSERT_TRUE(ok(s.call("update.control", "approve", {{"component", Value("client")}, {"version", Value("5.0.0")}})));
  client::UpdateAgent probe(agent_options(s));
  auto offer = probe.check("client", "1.0.0");
  ASSERT_TRUE(offer && offer->has_value());
  const client::UpdateInfo u = **offer;

  const pid_t broker = s.broker.pid(), updater = s.updater_workers[0].pid();
  const int64_t broker_before = rss_kib(broker), updater_before = rss_kib(updater);
  std::atomic<int64_t> broker_peak{0}, updater_peak{0};
  std::atomic<bool> done{false};
  std::thread sampler([&] {
    while (!done) {
      broker_peak = std::max<int64_t>(broker_peak, rss_kib(broker));
      updater_peak = std::max<int64_t>(updater_peak, rss_kib(updater));
      std::this_thread::sleep_for(20ms);
    }
  });
  const int clients = 20;
  std::vector<std::string> errors(clients);
  std::vector<std::thread> pool;
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < clients; ++i)
    pool.emplace_back([&, i] {
      client::UpdateOptions o = agent_options(s);
      o.window = 4;
      o.timeout = 30s;
      client::UpdateAgent agent(o);
      const std::string out = s.dir().file("dl-" + std::to_string(i) + ".bin");
      auto got = agent.download(u, out);
      if (!got) errors[i] = got.error();
      else if (*sha256_file_hex(out) != sha) errors[i] = "hash mismatch";
      ::unlink(out.c_str());
    });
  for (auto& t : pool) t.join();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  done = true;
  sampler.join();
  for (int i = 0; i < clients; ++i) EXPECT_EQ(errors[i], "") << "client " << i;
  std::printf("20 clients x 64 MiB in %.1f s (%.0f MB/s aggregate); resident KiB: broker %lld -> peak %lld, "
              "updater %lld -> peak %lld\n",
              seconds, clients * 64.0 * 1.048576 / seconds, static_cast<long long>(broker_before),
              static_cast<long long>(broker_peak.load()), static_cast<long long>(updater_before),
              static_cast<long long>(updater_peak.load()));
  // In flight at most: 20 clients x 4 chunks x 1 MiB, in the broker and the
  // updater's queues; whole-file copies per client would be 1.28 GiB.
  EXPECT_LT(broker_peak.load(), 320 * 1024);
  EXPECT_LT(updater_peak.load(), 320 * 1024);
}


// The whole server as shipped: primary-server starts the updater with its
// data dir and a file:// feed; primaryctl drives it.
TEST(UpdateServerTest, PrimaryServerSyncsAFileFeedAndPrimaryctlManagesUpdates) {
  TempDir dir("updsrv");
  ASSERT_EQ(vendor({"keygen", "--out", dir.file("vendor")}), 0);
  ASSERT_EQ(vendor({"keygen", "--out", dir.file("other")}), 0);
  ReleaseDir rel{dir.file("releases"), {}};
  fs::create_directories(rel.dir);
  rel.add("client", "1.0.0", 100000);
  rel.add("client", "1.1.0", (3 << 20) + 7);
  ASSERT_EQ(vendor({"sign-feed", "--key", dir.file("vendor/vendor.key"), "--dir", rel.dir, "--out", rel.dir + "/feed"}), 0);
  const std::string data = dir.file("data");
  Process server = Process::start(
      {bin("primary-server"), "--data-dir", data, "--insecure", "--no-web", "--front", "tcp://127.0.0.1:*", "--events",
       "tcp://127.0.0.1:*", "--vendor-key", dir.file("vendor/vendor.pub"), "--update-feed", "file://" + rel.dir + "/feed",
       "--sync-interval-s", "0", "--license-workers", "1", "--admin-workers", "1", "--updater-workers", "1",
       "--heartbeat-ms", "200"},
      {}, dir.file("server.log"));
  std::string front;
  ASSERT_TRUE(wait_until(
      [&] {
        front = endpoints_file_value(data + "/run/endpoints", "front").value_or("");
        return !front.empty();
      },
      20s))
      << read_file(dir.file("server.log"));
  auto ctl = [&](std::vector<std::string> args, int* code) {
    args.insert(args.begin(), {bin("primaryctl"), "--server", front});
    return run_capture(args, code);
  };
  int code = -1;
  std::string out;
  ASSERT_TRUE(wait_until(
      [&] {
        out = ctl({"updates", "sync"}, &code);
        return code == 0;
      },
      20s, 200ms))
      << out << " / " << read_file(dir.file("server.log"));
  EXPECT_NE(out.find("sync ok: 2 added, 0 failed"), std::string::npos) << out;
  EXPECT_TRUE(fs::exists(data + "/updates/objects/" + *sha256_file_hex(rel.path("client", "1.1.0"))));

  out = ctl({"updates", "list", "--json"}, &code);
  EXPECT_EQ(code, 0);
  EXPECT_NE(out.find("\"version\":\"1.1.0\""), std::string::npos) << out;
  EXPECT_NE(out.find("\"state\":\"held\""), std::string::npos) << out;
  out = ctl({"updates", "list"}, &code);
  EXPECT_NE(out.find("COMPONENT"), std::string::npos) << out;

  out = ctl({"updates", "approve", "client", "1.1.0", "--percent", "30"}, &code);
  EXPECT_EQ(code, 0) << out;
  EXPECT_NE(out.find("approved for 30%"), std::string::npos) << out;
  ctl({"updates", "approve", "client", "9.9.9"}, &code);
  EXPECT_EQ(code, 1);

  const std::string dl = dir.file("client-1.1.0.bin");
  out = ctl({"updates", "download", "client", "1.1.0", "--out", dl, "--vendor-key", dir.file("vendor/vendor.pub")}, &code);
  EXPECT_EQ(code, 0) << out;
  EXPECT_EQ(read_file(dl), read_file(rel.path("client", "1.1.0")));
  ctl({"updates", "download", "client", "1.1.0", "--out", dir.file("x.bin"), "--vendor-key", dir.file("other/vendor.pub")},
      &code);
  EXPECT_EQ(code, 1);
  EXPECT_FALSE(fs::exists(dir.file("x.bin")));
  ctl({"updates", "hold", "client", "1.1.0"}, &code);
  EXPECT_EQ(code, 0);

  server.signal(SIGTERM);
  EXPECT_EQ(server.wait_exit(20s), 0);
}

}  // namespace
}  // namespace primary::test
