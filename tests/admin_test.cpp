// The admin service against the real processes: broker, licensing and admin
// workers, Redis. What an administrator sees must agree with what happened.
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "common/codec.hpp"
#include "common/redis.hpp"
#include "tests/support/stack.hpp"
#include "tests/support/util.hpp"

namespace primary::test {
namespace {

const Value::Array& items_of(const Value& v) {
  static const Value::Array none;
  const Value* f = v.find("items");
  return f && f->is_array() ? f->as_array() : none;
}

const std::vector<std::string> kShort = {"--check-interval-s", "1", "--grace-s", "1"};

// Stream ids order as "ms-seq" pairs of numbers.
bool stream_id_before(const std::string& a, const std::string& b) {
  auto parse = [](const std::string& id) {
    const auto dash = id.find('-');
    return std::make_pair(std::stoull(id.substr(0, dash)),
                          dash == std::string::npos ? 0ull : std::stoull(id.substr(dash + 1)));
  };
  return parse(a) < parse(b);
}

std::string pc(int i) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "PC-%05d", i);
  return buf;
}

// Runs fn(client, i) for i in [0, n) over `threads` clients; returns failures.
int in_parallel(Stack& s, int n, int threads,
                const std::function<bool(MdpClient&, int)>& fn) {
  std::atomic<int> failures{0};
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
      auto c = s.client(20000);
      for (int i = t; i < n; i += threads)
        if (!fn(*c, i)) ++failures;
    });
  for (auto& th : pool) th.join();
  return failures.load();
}

// Reserves names[i] for every i; returns name -> license.
std::map<std::string, std::string> reserve_all(Stack& s, const std::vector<std::string>& names,
                                               int threads = 8) {
  std::mutex mu;
  std::map<std::string, std::string> out;
  std::string first_error;
  const int failures = in_parallel(s, static_cast<int>(names.size()), threads, [&](MdpClient& c, int i) {
    auto r = c.call("license.control", "reserve", {{"computer", Value(names[i])}});
    std::lock_guard<std::mutex> lock(mu);
    if (!r || !ok(*r)) {
      if (first_error.empty()) first_error = names[i] + ": " + (r ? to_json(*r) : r.error().message);
      return false;
    }
    out[str(*r, "computer")] = str(*r, "license");
    return true;
  });
  EXPECT_EQ(failures, 0) << "first: " << first_error;
  return out;
}

// Heartbeats each computer once with its license; every one must be licensed.
void heartbeat_all(Stack& s, const std::vector<std::string>& names,
                   const std::map<std::string, std::string>& licenses, int threads = 8) {
  const int failures = in_parallel(s, static_cast<int>(names.size()), threads, [&](MdpClient& c, int i) {
    auto r = c.call("license", "heartbeat",
                    {{"computer", Value(names[i])}, {"license", Value(licenses.at(names[i]))},
                     {"version", Value("2.0.1")}});
    return r && str(*r, "status") == "licensed";
  });
  EXPECT_EQ(failures, 0);
}

// A reply as JSON, cut short for failure messages.
std::string brief(const Value& v) {
  std::string json = to_json(v);
  return json.size() > 400 ? json.substr(0, 400) + "..." : json;
}

Value admin(Stack& s, const std::string& op, Value::Map fields = {}) {
  return s.call("admin", op, std::move(fields));
}

struct Listing {
  std::vector<Value> items;
  int pages = 0;
  std::string error;  // the first error reply, as JSON
};

// Follows `computers` cursors to the end; limit_of(page) gives each page's limit.
Listing list_all(Stack& s, const Value::Map& base, const std::function<int64_t(int)>& limit_of) {
  Listing out;
  std::string cursor;
  for (int page = 0; page < 100000; ++page) {
    Value::Map fields = base;
    const int64_t limit = limit_of(page);
    fields.emplace_back("limit", limit);
    if (!cursor.empty()) fields.emplace_back("cursor", cursor);
    Value r = admin(s, "computers", std::move(fields));
    ++out.pages;
    if (!ok(r)) {
      out.error = brief(r);
      return out;
    }
    const auto& items = items_of(r);
    if (static_cast<int64_t>(items.size()) > limit_of(page)) {
      out.error = "page " + std::to_string(page) + " longer than its limit";
      return out;
    }
    out.items.insert(out.items.end(), items.begin(), items.end());
    const Value* c = r.find("cursor");
    if (!c || c->is_nil()) return out;
    if (!c->is_str() || c->as_str().empty() || c->as_str() == cursor) {
      out.error = "bad cursor in " + brief(r);
      return out;
    }
    cursor = c->as_str();
  }
  out.error = "cursor never ended";
  return out;
}

std::vector<std::string> names_of(const std::vector<Value>& items) {
  std::vector<std::string> out;
  for (const auto& it : items) out.push_back(str(it, "computer"));
  return out;
}

std::set<std::string> once_each(const std::vector<std::string>& names) {
  std::set<std::string> set(names.begin(), names.end());
  EXPECT_EQ(set.size(), names.size()) << "some computer listed more than once";
  return set;
}

// Receives one event from a SUB socket within timeout_ms; nil when none.
Value recv_event(zmq::socket_t& sub, int timeout_ms) {
  sub.set(zmq::sockopt::rcvtimeo, timeout_ms);
  zmq::message_t topic, body;
  if (!sub.recv(topic)) return {};
  if (!sub.recv(body)) return {};
  auto ev = unpack_map(std::string_view(static_cast<char*>(body.data()), body.size()));
  return ev ? *ev : Value();
}

std::vector<std::string> stream_ids(Redis& redis) {
  std::vector<std::string> out;
  auto r = redis.command({"XRANGE", "ps:events", "-", "+"});
  if (r && r->is_array())
    for (const auto& e : r->elements) out.push_back(e.elements[0].str);
  return out;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) out.push_back(line);
  return out;
}

// "<time> <type> id=<id> ..." -> id
std::string id_of(const std::string& line) {
  static const std::regex re(R"(^\S+ \S+ id=(\S+))");
  std::smatch m;
  return std::regex_search(line, m, re) ? m[1].str() : std::string();
}

std::vector<std::string> ids_in(const std::vector<std::string>& lines) {
  std::vector<std::string> out;
  for (const auto& l : lines) out.push_back(id_of(l));
  return out;
}

TEST(Admin, StatusCountsAgreeWithReservationsAndHeartbeats) {
  StackOptions o;
  o.admin_workers = 1;
  Stack s(o);
  ASSERT_TRUE(s.ok());
  Value before = admin(s, "status");
  ASSERT_TRUE(ok(before)) << to_json(before);
  EXPECT_EQ(num(before, "purchased"), 0);
  EXPECT_EQ(num(before, "reserved"), 0);
  EXPECT_EQ(before.find("serial"), nullptr) << to_json(before);

  ASSERT_TRUE(ok(s.unlock("SN-ADMIN", 50)));
  std::vector<std::string> names;
  for (int i = 0; i < 30; ++i) names.push_back(pc(i));
  auto licenses = reserve_all(s, names, 4);
  ASSERT_EQ(licenses.size(), 30u);
  heartbeat_all(s, std::vector<std::string>(names.begin(), names.begin() + 12), licenses, 4);

  Value st = admin(s, "status");
  ASSERT_TRUE(ok(st)) << to_json(st);
  EXPECT_EQ(str(st, "serial"), "SN-ADMIN");
  EXPECT_EQ(num(st, "purchased"), 50);
  EXPECT_EQ(num(st, "reserved"), 30);
  EXPECT_EQ(num(st, "active"), 12);
  EXPECT_EQ(num(st, "lost"), 0);
  EXPECT_EQ(num(st, "never_seen"), 18);
  EXPECT_FALSE(str(st, "version").empty());
  EXPECT_GE(num(st, "uptime_s"), 0);
  const Value* services = st.find("services");
  ASSERT_TRUE(services && services->is_map()) << to_json(st);
  for (const char* name : {"license", "license.control", "admin"}) {
    const Value* n = services->find(name);
    EXPECT_TRUE(n && n->is_int() && n->as_int() > 0) << name << " in " << to_json(st);
  }
}

TEST(Admin, OneComputerEverythingKnown) {
  StackOptions o;
  o.admin_workers = 1;
  Stack s(o);
  ASSERT_TRUE(s.ok());
  ASSERT_TRUE(ok(s.unlock("SN-ONE", 5)));
  auto licenses = reserve_all(s, {pc(1), pc(2)}, 1);
  heartbeat_all(s, {pc(1)}, licenses, 1);
  ASSERT_TRUE(ok(s.call("license.control", "command",
                        {{"computer", Value(pc(2))}, {"command", Value("restart")}})));
  Value seen = admin(s, "computer", {{"computer", Value(pc(1))}});
  ASSERT_TRUE(ok(seen)) << to_json(seen);
  EXPECT_EQ(str(seen, "computer"), pc(1));
  EXPECT_EQ(str(seen, "license"), licenses.at(pc(1)));
  EXPECT_EQ(str(seen, "state"), "active");
  EXPECT_GT(num(seen, "last_seen"), 0);
  EXPECT_GT(num(seen, "first_seen"), 0);
  EXPECT_EQ(num(seen, "commands_pending"), 0);
  Value never = admin(s, "computer", {{"computer", Value(pc(2))}});
  EXPECT_EQ(str(never, "state"), "reserved") << to_json(never);
  EXPECT_EQ(never.find("last_seen"), nullptr);
  EXPECT_EQ(num(never, "commands_pending"), 1);
  EXPECT_EQ(str(admin(s, "computer", {{"computer", Value("nobody")}}), "code"), "NOT_FOUND");
}

// A Client whose clock is hours off is licensed all the same; the skew of
// its heartbeat is recorded on the computer, counted in status and reported
// once per window (client.clock_skew); a heartbeat on time clears it.
TEST(Admin, ClockSkewIsRecordedCountedAndReportedNeverRefused) {
  StackOptions o;
  o.admin_workers = 1;
  Stack s(o);
  ASSERT_TRUE(s.ok());
  ASSERT_TRUE(ok(s.unlock("SN-SKEW", 5)));
  auto licenses = reserve_all(s, {pc(1), pc(2)}, 1);
  const int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                          std::chrono::system_clock::now().time_since_epoch()).count();
  auto beat = [&](const std::string& name, int64_t client_time) {
    return s.call("license", "heartbeat", {{"computer", Value(name)}, {"license", Value(licenses.at(name))},
                                           {"client_time", Value(client_time)}});
  };
  for (int i = 0; i < 3; ++i) {
    Value hb = beat(pc(1), now + 6 * 3600 + i);  // 6 h ahead
    ASSERT_EQ(str(hb, "status"), "licensed") << to_json(hb);
    EXPECT_FALSE(str(hb, "lease").empty());
  }
  ASSERT_EQ(str(beat(pc(2), now + 10), "status"), "licensed");  // within 300 s: not skewed
  Value one = admin(s, "computer", {{"computer", Value(pc(1))}});
  ASSERT_TRUE(ok(one)) << to_json(one);
  const int64_t skew = num(one, "clock_skew_s");
  EXPECT_GE(skew, 6 * 3600 + 2 - 5);
  EXPECT_LE(skew, 6 * 3600 + 2 + 5);
  EXPECT_EQ(admin(s, "computer", {{"computer", Value(pc(2))}}).find("clock_skew_s"), nullptr);
  EXPECT_EQ(num(admin(s, "status"), "clock_skewed"), 1);
  Redis redis(*parse_redis_url(s.redis().url()));
  auto skew_events = [&] {
    int n = 0;
    auto log = redis.command({"XRANGE", "ps:events", "-", "+"});
    for (const auto& entry : log->elements)
      for (const auto& f : entry.elements[1].elements)
        if (f.str == "client.clock_skew") ++n;
    return n;
  };
  EXPECT_EQ(skew_events(), 1);  // three skewed heartbeats, one event per window

  ASSERT_EQ(str(beat(pc(1), now), "status"), "licensed");  // the clock was fixed
  EXPECT_EQ(admin(s, "computer", {{"computer", Value(pc(1))}}).find("clock_skew_s"), nullptr);
  EXPECT_EQ(num(admin(s, "status"), "clock_skewed"), 0);
  // Behind, by as much: the same.
  ASSERT_EQ(str(beat(pc(2), now - 6 * 3600), "status"), "licensed");
  Value two = admin(s, "computer", {{"computer", Value(pc(2))}});
  EXPECT_LE(num(two, "clock_skew_s"), -6 * 3600 + 5) << to_json(two);
  EXPECT_EQ(num(admin(s, "status"), "clock_skewed"), 1);
  EXPECT_EQ(skew_events(), 2);
}

TEST(Admin, SweptComputersCountAsLost) {
  StackOptions o;
  o.admin_workers = 1;
  o.licensed_args = kShort;
  o.admin_args = kShort;
  Stack s(o);
  ASSERT_TRUE(s.ok());
  ASSERT_TRUE(ok(s.unlock("SN-LOST", 50)));
  std::vector<std::string> names;
  for (int i = 0; i < 30; ++i) names.push_back(pc(i));
  auto licenses = reserve_all(s, names, 4);
  ASSERT_EQ(licenses.size(), 30u);
  const std::vector<std::string> seen(names.begin(), names.begin() + 12);
  heartbeat_all(s, seen, licenses, 4);

  Value st = admin(s, "status");
  ASSERT_TRUE(ok(st)) << to_json(st);
  EXPECT_EQ(num(st, "active") + num(st, "lost"), 12) << to_json(st);
  EXPECT_EQ(num(st, "never_seen"), 18);

  // Silent for longer than check + grace (2 s): the sweep marks them lost.
  ASSERT_TRUE(wait_until(
      [&] {
        st = admin(s, "status");
        return num(st, "lost") == 12;
      },
      15s, 100ms))
      << to_json(st);
  EXPECT_EQ(num(st, "active"), 0);
  EXPECT_EQ(num(st, "reserved"), 30);
  EXPECT_EQ(num(st, "never_seen"), 18);
  EXPECT_EQ(num(st, "purchased"), 50);

  Listing lost = list_all(s, {{"state", Value("lost")}}, [](int) { return 5; });
  ASSERT_TRUE(lost.error.empty()) << lost.error;
  EXPECT_EQ(once_each(names_of(lost.items)), std::set<std::string>(seen.begin(), seen.end()));
  for (const auto& it : lost.items) EXPECT_GT(num(it, "last_seen"), 0) << to_json(it);
}

// Stale flags with shrunk intervals (never seen 2 s after reservation; lost
// and silent 6 s): flagged in the rows, found by the filter and by
// primaryctl computers --stale; a heartbeat clears it, nothing else changes.
TEST(Admin, StaleFlagsForNeverSeenAndLongLostComputers) {
  StackOptions o;
  o.admin_workers = 1;
  o.licensed_args = kShort;
  // The never-seen count of admin.status is recounted a reservation per
  // second (a pass of several batches), at most a second after the last.
  o.admin_args = {"--check-interval-s", "1", "--grace-s", "1", "--stale-unseen-s", "2", "--stale-lost-s", "6",
                  "--stale-recount-s", "1", "--stale-count-batch", "1"};
  Stack s(o);
  ASSERT_TRUE(s.ok());
  ASSERT_TRUE(ok(s.unlock("SN-STALE", 10)));
  auto lic = reserve_all(s, {"NEVER", "SILENT", "ALIVE"}, 1);
  ASSERT_EQ(lic.size(), 3u);
  const auto beat = [&](const std::string& name) {
    return str(s.call("license", "heartbeat", {{"computer", Value(name)}, {"license", Value(lic[name])}}), "status");
  };
  ASSERT_EQ(beat("SILENT"), "licensed");
  ASSERT_EQ(beat("ALIVE"), "licensed");
  const auto stale_names = [&] {
    Listing l = list_all(s, {{"stale", Value(true)}}, [](int) { return 2; });
    EXPECT_TRUE(l.error.empty()) << l.error;
    return once_each(names_of(l.items));
  };
  // admin.status's count equals the flagged computers of admin.computers
  // once the recount caught up (the lost part is exact at once).
  int64_t count = -1;
  size_t flagged = 0;
  // Waits for count == flagged, with `least` to `most` flagged, beating
  // the computers of `alive` meanwhile.
  const auto count_matches = [&](size_t least, size_t most, const std::vector<std::string>& alive) {
    return wait_until([&] {
      for (const auto& name : alive) beat(name);
      count = num(admin(s, "status"), "stale");
      flagged = stale_names().size();
      return count == static_cast<int64_t>(flagged) && flagged >= least && flagged <= most;
    }, 20s, 200ms);
  };
  Listing all = list_all(s, {}, [](int) { return 100; });
  ASSERT_EQ(all.items.size(), 3u);
  for (const auto& it : all.items) EXPECT_FALSE(it.find("stale")->as_bool()) << to_json(it);
  EXPECT_TRUE(stale_names().empty());
  EXPECT_EQ(num(admin(s, "status"), "stale"), 0);

  // Never seen for 2 s: stale. SILENT is lost by then, but silent < 6 s.
  std::set<std::string> got;
  ASSERT_TRUE(wait_until([&] {
    beat("ALIVE");
    got = stale_names();
    return got.count("NEVER") == 1;
  }, 15s, 100ms));
  EXPECT_EQ(got, std::set<std::string>{"NEVER"});
  EXPECT_EQ(str(admin(s, "computer", {{"computer", Value("SILENT")}}), "state"), "lost");
  EXPECT_TRUE(count_matches(1, 2, {"ALIVE"})) << "status stale " << count << ", flagged " << flagged;
  // Lost and silent for 6 s: stale too; ALIVE never.
  ASSERT_TRUE(wait_until([&] {
    beat("ALIVE");
    got = stale_names();
    return got.count("SILENT") == 1;
  }, 20s, 100ms));
  EXPECT_EQ(got, (std::set<std::string>{"NEVER", "SILENT"}));
  EXPECT_TRUE(count_matches(2, 2, {"ALIVE"})) << "status stale " << count << ", flagged " << flagged;
  Value silent = admin(s, "computer", {{"computer", Value("SILENT")}});
  EXPECT_TRUE(silent.find("stale")->as_bool()) << to_json(silent);
  // The same through the state filter and the last-seen order.
  Listing lost = list_all(s, {{"stale", Value(true)}, {"state", Value("lost")}, {"sort", Value("last-seen")}},
                          [](int) { return 1; });
  EXPECT_EQ(once_each(names_of(lost.items)), std::set<std::string>{"SILENT"});

  int rc = -1;
  const std::string table = run_capture({bin("primaryctl"), "--server", s.front(), "computers", "--stale"}, &rc);
  EXPECT_EQ(rc, 0);
  EXPECT_NE(table.find("NEVER"), std::string::npos) << table;
  EXPECT_NE(table.find("SILENT"), std::string::npos) << table;
  EXPECT_EQ(table.find("ALIVE"), std::string::npos) << table;
  const std::string status = run_capture({bin("primaryctl"), "--server", s.front(), "status"}, &rc);
  EXPECT_EQ(rc, 0);
  EXPECT_TRUE(std::regex_search(status, std::regex("\\bstale +2\\b"))) << status;

  // The flag changes nothing: the stale computer is still licensed when it
  // comes back, and then is not stale any more.
  EXPECT_EQ(beat("SILENT"), "licensed");
  EXPECT_EQ(stale_names(), std::set<std::string>{"NEVER"});
  EXPECT_EQ(num(admin(s, "status"), "stale"), 1);  // the lost part is counted live
  EXPECT_EQ(num(admin(s, "status"), "reserved"), 3);
  // NEVER's first heartbeat: the next recount leaves it out.
  EXPECT_EQ(beat("NEVER"), "licensed");
  EXPECT_TRUE(count_matches(0, 0, {"ALIVE", "SILENT", "NEVER"})) << "status stale " << count << ", flagged " << flagged;
}

// 10,000 computers: a third lost, a third active, a third never seen.
class Paging : public ::testing::Test {
 protected:
  static constexpr int kCount = 10000;

  void SetUp() override {
    StackOptions o;
    o.license_workers = 2;
    o.licensed_args = kShort;  // only while the first third goes lost
    o.admin_workers = 1;       // default intervals: the active third stays active
    s = std::make_unique<Stack>(o);
    ASSERT_TRUE(s->ok());
    ASSERT_TRUE(ok(s->unlock("SN-PAGE", kCount)));
    std::vector<std::string> names, lost, active;
    for (int i = 0; i < kCount; ++i) {
      names.push_back(pc(i));
      const char* state = i % 3 == 0 ? "lost" : i % 3 == 1 ? "active" : "reserved";
      expected[pc(i)] = state;
      (i % 3 == 0 ? lost : i % 3 == 1 ? active : never).push_back(pc(i));
    }
    licenses = reserve_all(*s, names, 8);
    ASSERT_EQ(licenses.size(), static_cast<size_t>(kCount));

    // The first third is seen once and then swept lost by the short-interval
    // licensing workers; those are then replaced by ones with the default
    // intervals, under which the second third, seen now, stays active.
    heartbeat_all(*s, lost, licenses, 8);
    Value st;
    ASSERT_TRUE(wait_until(
        [&] {
          st = admin(*s, "status");
          return num(st, "lost") == static_cast<int64_t>(lost.size());
        },
        60s, 200ms))
        << to_json(st);
    for (auto& w : s->license_workers) w.signal(SIGTERM);
    for (auto& w : s->license_workers) ASSERT_TRUE(w.wait_exit(5s).has_value());
    s->license_workers.clear();
    s->start_license_worker({});
    s->start_license_worker({});
    ASSERT_TRUE(s->wait_workers("license", 16));
    heartbeat_all(*s, active, licenses, 8);

    st = admin(*s, "status");
    ASSERT_EQ(num(st, "reserved"), kCount) << to_json(st);
    ASSERT_EQ(num(st, "lost"), static_cast<int64_t>(lost.size())) << to_json(st);
    ASSERT_EQ(num(st, "active"), static_cast<int64_t>(active.size())) << to_json(st);
    ASSERT_EQ(num(st, "never_seen"), static_cast<int64_t>(never.size())) << to_json(st);
  }

  std::set<std::string> with_state(const std::string& state) const {
    std::set<std::string> out;
    for (const auto& [name, st] : expected)
      if (st == state) out.insert(name);
    return out;
  }

  // Every item is what the test made: its license, its state, its times.
  void check_items(const std::vector<Value>& items) const {
    int bad = 0;
    for (const auto& it : items) {
      const std::string name = str(it, "computer");
      const auto e = expected.find(name);
      if (e == expected.end() || str(it, "state") != e->second || str(it, "license") != licenses.at(name) ||
          num(it, "reserved_at") <= 0 || (e->second == "reserved") != (it.find("last_seen") == nullptr) ||
          (e->second == "reserved") != (it.find("first_seen") == nullptr) ||
          (e->second != "reserved" && str(it, "version") != "2.0.1")) {
        if (++bad <= 5) ADD_FAILURE() << "wrong item " << to_json(it);
      }
    }
    EXPECT_EQ(bad, 0);
  }

  // Seen computers first, newest first (ties allowed), then never-seen ones by name.
  void check_last_seen_order(const std::vector<Value>& items) const {
    bool unseen_phase = false;
    int64_t prev = INT64_MAX;
    std::string prev_name;
    int bad = 0;
    for (const auto& it : items) {
      const Value* ls = it.find("last_seen");
      if (!ls) {
        if (unseen_phase && str(it, "computer") <= prev_name) ++bad;
        unseen_phase = true;
        prev_name = str(it, "computer");
        continue;
      }
      if (unseen_phase || !ls->is_int() || ls->as_int() > prev) {
        if (++bad <= 5) ADD_FAILURE() << "out of order: " << to_json(it);
      }
      if (ls->is_int()) prev = ls->as_int();
    }
    EXPECT_EQ(bad, 0);
  }

  std::unique_ptr<Stack> s;
  std::map<std::string, std::string> expected;  // name -> state
  std::map<std::string, std::string> licenses;
  std::vector<std::string> never;
};

TEST_F(Paging, ByNameEveryComputerExactlyOnce) {
  for (auto limit_of : std::vector<std::function<int64_t(int)>>{
           [](int) { return 1000; }, [](int page) { return page < 5 ? 7 : 997; }}) {
    Listing all = list_all(*s, {}, limit_of);
    ASSERT_TRUE(all.error.empty()) << all.error;
    const auto names = names_of(all.items);
    ASSERT_EQ(names.size(), static_cast<size_t>(kCount));
    EXPECT_TRUE(std::is_sorted(names.begin(), names.end()));
    EXPECT_EQ(once_each(names).size(), static_cast<size_t>(kCount));
    check_items(all.items);
  }
  // Explicit sort=name is the default.
  Listing named = list_all(*s, {{"sort", Value("name")}}, [](int) { return 1000; });
  ASSERT_TRUE(named.error.empty()) << named.error;
  EXPECT_EQ(named.items.size(), static_cast<size_t>(kCount));
}

TEST_F(Paging, ByNameStateFilters) {
  for (const char* state : {"active", "reserved", "lost"}) {
    for (int64_t limit : {1000, 7}) {
      Listing l = list_all(*s, {{"state", Value(state)}}, [&](int) { return limit; });
      ASSERT_TRUE(l.error.empty()) << state << ": " << l.error;
      const auto names = names_of(l.items);
      EXPECT_TRUE(std::is_sorted(names.begin(), names.end())) << state;
      EXPECT_EQ(once_each(names), with_state(state)) << state << " limit " << limit;
      check_items(l.items);
    }
  }
}

TEST_F(Paging, ByLastSeen) {
  for (auto limit_of : std::vector<std::function<int64_t(int)>>{
           [](int) { return 1000; }, [](int page) { return page < 5 ? 7 : 997; }}) {
    Listing all = list_all(*s, {{"sort", Value("last-seen")}}, limit_of);
    ASSERT_TRUE(all.error.empty()) << all.error;
    const auto names = names_of(all.items);
    ASSERT_EQ(names.size(), static_cast<size_t>(kCount));
    EXPECT_EQ(once_each(names).size(), static_cast<size_t>(kCount));
    check_last_seen_order(all.items);
    check_items(all.items);
    // The active third was seen after the lost third.
    for (int i = 0; i < kCount / 3; ++i) EXPECT_EQ(str(all.items[i], "state"), "active") << i;
  }
  for (const char* state : {"active", "lost", "reserved"}) {
    for (auto limit_of : std::vector<std::function<int64_t(int)>>{
             [](int) { return 1000; }, [](int page) { return page < 5 ? 7 : 997; }}) {
      Listing l = list_all(*s, {{"sort", Value("last-seen")}, {"state", Value(state)}}, limit_of);
      ASSERT_TRUE(l.error.empty()) << state << ": " << l.error;
      EXPECT_EQ(once_each(names_of(l.items)), with_state(state)) << state;
      check_last_seen_order(l.items);
      check_items(l.items);
    }
  }
}

TEST_F(Paging, BadCursorsAreRefusedNotFatal) {
  for (const char* cursor : {"S|x", "S|abc|PC-00001", "S||PC-1", "garbage", "S|12|"}) {
    Value r = admin(*s, "computers", {{"sort", Value("last-seen")}, {"cursor", Value(cursor)}});
    EXPECT_FALSE(ok(r)) << cursor << ": " << brief(r);
    EXPECT_EQ(str(r, "code"), "BAD_REQUEST") << cursor << ": " << brief(r);
  }
  Value st = admin(*s, "status");
  EXPECT_TRUE(ok(st)) << to_json(st);
  EXPECT_EQ(num(st, "reserved"), kCount);
}

TEST(Admin, EventStreamResumesFromTheLog) {
  StackOptions o;
  o.admin_workers = 1;
  Stack s(o);
  ASSERT_TRUE(s.ok());
  Redis redis(*parse_redis_url(s.redis().url()));
  // A refusal before the unlock: another type for the filter below.
  EXPECT_EQ(str(s.call("license.control", "reserve", {{"computer", Value("early")}}), "code"), "NOT_UNLOCKED");
  ASSERT_TRUE(ok(s.unlock("SN-EV", 1000)));

  std::string last_id;
  {
    zmq::socket_t sub(s.ctx(), zmq::socket_type::sub);
    sub.set(zmq::sockopt::subscribe, "");
    sub.connect(s.events());
    // The subscription takes a moment to reach the publisher.
    Value ev;
    for (int i = 0; i < 100 && ev.is_nil(); ++i) {
      ASSERT_TRUE(ok(s.call("license.control", "reserve", {{"computer", Value("warm-" + std::to_string(i))}})));
      ev = recv_event(sub, 100);
    }
    ASSERT_FALSE(ev.is_nil()) << "no live event";
    for (int i = 0; i < 5; ++i)
      ASSERT_TRUE(ok(s.call("license.control", "reserve", {{"computer", Value("pre-" + std::to_string(i))}})));
    std::vector<std::string> live;
    for (; !ev.is_nil(); ev = recv_event(sub, 500)) {
      EXPECT_FALSE(str(ev, "id").empty());
      EXPECT_GT(num(ev, "ts"), 0);
      if (!live.empty()) {
        EXPECT_TRUE(stream_id_before(live.back(), str(ev, "id")));
      }
      live.push_back(str(ev, "id"));
    }
    last_id = live.back();
    const auto ids = stream_ids(redis);
    ASSERT_EQ(ids.back(), last_id) << "the subscriber saw the latest event";
  }  // disconnected

  std::vector<std::string> bulk;
  for (int i = 0; i < 500; ++i) bulk.push_back(pc(i));
  ASSERT_EQ(reserve_all(s, bulk, 4).size(), 500u);

  std::vector<Value> caught;
  std::string since = last_id;
  int pages = 0;
  for (; pages < 100; ++pages) {
    Value r = admin(s, "log", {{"since", Value(since)}, {"limit", Value(100)}});
    ASSERT_TRUE(ok(r)) << brief(r);
    const auto& items = items_of(r);
    ASSERT_LE(items.size(), 100u);
    if (items.empty()) {
      EXPECT_EQ(str(r, "next"), since);
      break;
    }
    caught.insert(caught.end(), items.begin(), items.end());
    ASSERT_NE(str(r, "next"), since);
    since = str(r, "next");
  }
  EXPECT_EQ(pages, 5);
  ASSERT_EQ(caught.size(), 500u);
  std::set<std::string> computers;
  std::string prev = last_id;
  for (const auto& ev : caught) {
    EXPECT_EQ(str(ev, "type"), "license.reserved") << to_json(ev);
    EXPECT_TRUE(stream_id_before(prev, str(ev, "id"))) << prev << " then " << str(ev, "id");
    prev = str(ev, "id");
    computers.insert(str(ev, "computer"));
  }
  EXPECT_EQ(computers, std::set<std::string>(bulk.begin(), bulk.end()));
  EXPECT_EQ(prev, stream_ids(redis).back());

  // A subscriber that comes back gets live events again, newer than the log.
  {
    zmq::socket_t sub(s.ctx(), zmq::socket_type::sub);
    sub.set(zmq::sockopt::subscribe, "license.");
    sub.connect(s.events());
    Value ev;
    for (int i = 0; i < 100 && ev.is_nil(); ++i) {
      ASSERT_TRUE(ok(s.call("license.control", "reserve", {{"computer", Value("live-" + std::to_string(i))}})));
      ev = recv_event(sub, 100);
    }
    ASSERT_FALSE(ev.is_nil()) << "no live event after reconnecting";
    EXPECT_EQ(str(ev, "type"), "license.reserved");
    EXPECT_TRUE(stream_id_before(prev, str(ev, "id")));
  }

  // A type filter keeps only those types, however the pages fall.
  for (int64_t limit : {1000, 1}) {
    std::vector<std::string> types;
    since.clear();
    for (int page = 0; page < 50; ++page) {
      Value::Map fields{{"limit", Value(limit)},
                        {"types", Value(Value::Array{Value("license.refused"), Value("serial.unlocked")})}};
      if (!since.empty()) fields.emplace_back("since", Value(since));
      Value r = admin(s, "log", std::move(fields));
      ASSERT_TRUE(ok(r)) << brief(r);
      for (const auto& ev : items_of(r)) types.push_back(str(ev, "type") + ":" + str(ev, "computer"));
      if (items_of(r).empty() && str(r, "next") == since) break;
      since = str(r, "next");
    }
    EXPECT_EQ(types, (std::vector<std::string>{"license.refused:EARLY", "serial.unlocked:"})) << limit;
  }
  EXPECT_EQ(str(admin(s, "log", {{"since", Value("not-an-id")}}), "code"), "BAD_REQUEST");
}

TEST(Admin, FirewallRulesForTheConfiguredEndpoints) {
  StackOptions o;
  o.admin_workers = 1;
  o.admin_args = {"--front", "tcp://*:16770", "--events", "tcp://*:16771"};
  Stack s(o);
  ASSERT_TRUE(s.ok());
  Value fw = admin(s, "firewall");
  ASSERT_TRUE(ok(fw)) << to_json(fw);
  std::vector<int64_t> ports;
  const Value* port_list = fw.find("ports");
  ASSERT_TRUE(port_list && port_list->is_array()) << to_json(fw);
  for (const auto& p : port_list->as_array()) {
    EXPECT_EQ(str(p, "protocol"), "tcp");
    ports.push_back(num(p, "port"));
  }
  EXPECT_EQ(ports, (std::vector<int64_t>{16770, 16771})) << to_json(fw);
  const Value* rules = fw.find("rules");
  ASSERT_TRUE(rules && rules->is_map()) << to_json(fw);
  for (const char* tool : {"nftables", "iptables", "firewalld", "ufw"}) {
    const std::string text = str(*rules, tool);
    EXPECT_NE(text.find("16770"), std::string::npos) << tool << ": " << text;
    EXPECT_NE(text.find("16771"), std::string::npos) << tool << ": " << text;
  }
  // Its view of the front door is only for the rules: worker counts still
  // come from the real broker, found through the endpoints file.
  Value st = admin(s, "status");
  const Value* services = st.find("services");
  ASSERT_TRUE(services && services->find("admin")) << to_json(st);
  EXPECT_GT(services->find("admin")->as_int(), 0);
}

// The activity log file: one line per event, exactly once, whichever admin
// worker writes it and however often they are killed.
TEST(Admin, ActivityLogFileHasEveryEventOnce) {
  StackOptions o;
  o.license_workers = 1;
  Stack s(o);
  ASSERT_TRUE(s.ok());
  Redis redis(*parse_redis_url(s.redis().url()));
  const std::string path = s.dir().file("log/activity.log");
  const std::vector<std::string> args = {"--log-file", path};
  s.start_admin_worker(args);
  s.start_admin_worker(args);  // two running; only one may write
  ASSERT_TRUE(s.wait_admin(2));

  auto file_matches_stream = [&] {
    return ids_in(lines_of(read_file(path))) == stream_ids(redis);
  };
  auto explain = [&] {
    const auto file = ids_in(lines_of(read_file(path)));
    const auto stream = stream_ids(redis);
    return "file has " + std::to_string(file.size()) + " lines, " +
           std::to_string(std::set<std::string>(file.begin(), file.end()).size()) + " distinct; stream has " +
           std::to_string(stream.size());
  };

  ASSERT_TRUE(ok(s.unlock("SN-FILE", 100)));
  std::vector<std::string> first;
  for (int i = 0; i < 20; ++i) first.push_back(pc(i));
  auto licenses = reserve_all(s, first, 4);
  // A command whose result detail has spaces, for the quoting.
  Value q = s.call("license.control", "command", {{"computer", Value(pc(0))}, {"command", Value("collect-logs")}});
  ASSERT_TRUE(ok(q)) << to_json(q);
  heartbeat_all(s, {pc(0)}, licenses, 1);
  Value hb = s.call("license", "heartbeat",
                    {{"computer", Value(pc(0))}, {"license", Value(licenses[pc(0)])},
                     {"results", Value(Value::Array{Value(Value::Map{
                                     {"id", Value(str(q, "id"))}, {"ok", Value(true)},
                                     {"detail", Value("12 files, 3 MB")}})})}});
  ASSERT_EQ(str(hb, "status"), "licensed") << to_json(hb);
  ASSERT_TRUE(wait_until(file_matches_stream, 10s, 50ms)) << explain();

  const auto lines = lines_of(read_file(path));
  ASSERT_EQ(lines.size(), 1u + 1u + 20u + 1u + 1u + 1u);  // registered, unlocked, reserved, queued, licensed, done
  const std::regex line_re(R"(^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z [a-z.]+ id=\d+-\d+( \S+=("([^"\\]|\\.)*"|\S+))*$)");
  for (const auto& l : lines) EXPECT_TRUE(std::regex_match(l, line_re)) << l;
  EXPECT_NE(lines[0].find(" serial.registered id="), std::string::npos) << lines[0];
  EXPECT_NE(lines[1].find(" serial.unlocked id="), std::string::npos) << lines[1];
  EXPECT_NE(lines[1].find(" serial=SN-FILE"), std::string::npos) << lines[1];
  EXPECT_NE(lines[1].find(" purchased=100"), std::string::npos) << lines[1];
  EXPECT_NE(lines[1].find(" actor=local"), std::string::npos) << lines[1];
  EXPECT_NE(lines[2].find(" license.reserved id="), std::string::npos) << lines[2];
  EXPECT_NE(lines[2].find(" computer=PC-000"), std::string::npos) << lines[2];
  EXPECT_NE(lines.back().find(" command.done id="), std::string::npos) << lines.back();
  EXPECT_NE(lines.back().find(" detail=\"12 files, 3 MB\""), std::string::npos) << lines.back();
  EXPECT_NE(lines.back().find(" ok=true"), std::string::npos) << lines.back();

  // Kill the writer outright (no chance to give the lock up), make events
  // while nobody may write, bring it back: the other worker or the new one
  // continues where the file ends.
  auto lock = redis.command({"GET", "ps:logfile:lock"});
  ASSERT_TRUE(lock && lock->is_str());
  size_t writer = s.admin_workers.size();
  for (size_t i = 0; i < s.admin_workers.size(); ++i)
    if (lock->str.find(":" + std::to_string(s.admin_workers[i].pid()) + ":") != std::string::npos) writer = i;
  ASSERT_LT(writer, s.admin_workers.size()) << lock->str;
  s.admin_workers[writer].kill();
  std::vector<std::string> second;
  for (int i = 20; i < 40; ++i) second.push_back(pc(i));
  reserve_all(s, second, 4);
  s.start_admin_worker(args);
  std::vector<std::string> third;
  for (int i = 40; i < 60; ++i) third.push_back(pc(i));
  reserve_all(s, third, 4);
  ASSERT_TRUE(wait_until(file_matches_stream, 30s, 100ms)) << explain();

  // Now kill every admin worker, and make it look as if the writer died
  // after writing lines but before recording them in Redis: the file's own
  // last line must keep the next writer from repeating them.
  for (auto& w : s.admin_workers) w.kill();
  s.admin_workers.clear();
  const auto written = ids_in(lines_of(read_file(path)));
  ASSERT_GT(written.size(), 30u);
  ASSERT_TRUE(redis.command({"SET", "ps:logfile:last", written[written.size() - 30]}).ok());
  std::vector<std::string> fourth;
  for (int i = 60; i < 80; ++i) fourth.push_back(pc(i));
  reserve_all(s, fourth, 4);
  s.start_admin_worker(args);
  ASSERT_TRUE(wait_until(file_matches_stream, 30s, 100ms)) << explain();
  EXPECT_EQ(lines_of(read_file(path)).size(), 25u + 60u);

  // A stop (SIGTERM) hands the lock over at once.
  for (auto& w : s.admin_workers) w.signal(SIGTERM);
  for (auto& w : s.admin_workers) w.wait_exit(5s);
  EXPECT_FALSE(redis.command({"EXISTS", "ps:logfile:lock"})->integer);
}

TEST(Admin, ActivityLogFileRotates) {
  Stack s;
  ASSERT_TRUE(s.ok());
  Redis redis(*parse_redis_url(s.redis().url()));
  const std::string path = s.dir().file("activity.log");
  s.start_admin_worker({"--log-file", path, "--log-file-size", "4096", "--log-file-count", "2"});
  ASSERT_TRUE(s.wait_admin(1));
  ASSERT_TRUE(ok(s.unlock("SN-ROT", 1000)));
  std::vector<std::string> names;
  for (int i = 0; i < 300; ++i) names.push_back(pc(i));
  reserve_all(s, names, 4);
  const std::string rotated1 = s.dir().file("activity.1.log"), rotated2 = s.dir().file("activity.2.log");
  auto all_lines = [&] {
    auto out = lines_of(read_file(rotated2));
    for (const auto& f : {rotated1, path}) {
      auto more = lines_of(read_file(f));
      out.insert(out.end(), more.begin(), more.end());
    }
    return out;
  };
  const auto ids = stream_ids(redis);
  ASSERT_EQ(ids.size(), 302u);  // registered, unlocked, 300 reserved
  // The last lines, in order, are the stream's last events.
  ASSERT_TRUE(wait_until([&] { return !all_lines().empty() && id_of(all_lines().back()) == ids.back(); }, 10s));
  const auto kept = ids_in(all_lines());
  ASSERT_LT(kept.size(), ids.size());
  EXPECT_TRUE(std::equal(kept.begin(), kept.end(), ids.end() - static_cast<long>(kept.size())));
  for (const auto& f : {path, rotated1, rotated2}) {
    EXPECT_LE(read_file(f).size(), 4096u) << f;
    EXPECT_FALSE(read_file(f).empty()) << f;
  }
  EXPECT_TRUE(read_file(s.dir().file("activity.3.log")).empty());
}

}  // namespace
}  // namespace primary::test
