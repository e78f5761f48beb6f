// The fleet's history (admin/include/admin/history.hpp) on a real stack:
// two licensing and two admin workers (one killed and replaced half way), a
// scripted load, and the counts admin.history gives must be exactly the
// load's, at both resolutions; a state change sampled at once; the op's
// paging, retention and bad ranges; and primaryctl history.
#include <gtest/gtest.h>
#include <signal.h>

#include <map>
#include <string>
#include <thread>
#include <vector>

#include "common/keys.hpp"
#include "common/names.hpp"
#include "common/redis.hpp"
#include "tests/support/stack.hpp"
#include "tests/support/util.hpp"

namespace primary::test {
namespace {

using namespace std::chrono_literals;

constexpr int64_t kHour = 3600 * 1000, kDay = 24 * kHour;

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

const std::vector<std::string> kCounters = {field::kHeartbeats, field::kFirstVerifications, field::kRejections,
                                            field::kWentLost,   field::kReturned,           field::kReservations,
                                            field::kRefusals,   field::kUpdateChecks,       field::kBytesServed};

// Every page of admin.history for `fields`; the points, or the error reply.
std::vector<Value> all_points(Stack& s, Value::Map fields, int* pages = nullptr, Value* error = nullptr) {
  std::vector<Value> points;
  for (int page = 0; page < 1000; ++page) {
    Value r = s.call(svc::kAdmin, opname::kHistory, fields);
    if (!ok(r)) {
      if (error) *error = r;
      return points;
    }
    if (pages) ++*pages;
    for (const Value& p : r.find(field::kPoints)->as_array()) points.push_back(p);
    const Value* next = r.find(field::kNext);
    if (!next || !next->is_int()) break;
    bool set = false;
    for (auto& [k, v] : fields)
      if (k == field::kFrom) v = *next, set = true;
    if (!set) fields.emplace_back(field::kFrom, *next);
  }
  return points;
}

// The counters summed over every point of `resolution` around now.
std::map<std::string, int64_t> sums(Stack& s, const std::string& resolution) {
  const int64_t now = now_ms();
  std::map<std::string, int64_t> out;
  for (const Value& p : all_points(s, {{field::kResolution, Value(resolution)},
                                       {field::kFrom, Value(now - 2 * kDay)},
                                       {field::kTo, Value(now + kDay)}}))
    for (const auto& c : kCounters) out[c] += num(p, c);
  return out;
}

Value latest_point(Stack& s) {
  auto points = all_points(s, {{field::kFrom, Value(now_ms() - 2 * kHour)}, {field::kTo, Value(now_ms() + kHour)}});
  return points.empty() ? Value() : points.back();
}

Value heartbeat(Stack& s, const std::string& computer, const std::string& license) {
  return s.call(svc::kLicense, opname::kHeartbeat,
                {{field::kComputer, Value(computer)}, {field::kLicense, Value(license)}, {field::kVersion, Value("1.0")}});
}

TEST(History, CountsAreExactWithTwoAdminAndTwoLicensingWorkersAndARestart) {
  StackOptions o;
  o.license_workers = 2;
  o.licensed_args = {"--metrics-interval-ms", "100", "--check-interval-s", "1", "--grace-s", "0"};
  o.admin_workers = 2;
  o.admin_args = {"--history-interval-ms", "200", "--metrics-interval-ms", "100", "--check-interval-s", "1",
                  "--grace-s", "0"};
  o.updater_workers = 1;
  o.updater_args = {"--metrics-interval-ms", "100", "--sync-interval-s", "0"};
  Stack s(o);
  ASSERT_TRUE(s.ok());
  ASSERT_TRUE(s.wait_workers(svc::kUpdate, 1));
  // The first sample takes the baselines; the load starts after it.
  ASSERT_TRUE(wait_until([&] { return latest_point(s).is_map(); }, 10s));
  ASSERT_TRUE(ok(s.unlock("SN-HIST", 5)));

  // 7 names for 5 licenses: 5 reservations, 2 refusals.
  std::map<std::string, std::string> license;
  for (int i = 0; i < 7; ++i) {
    const std::string name = "PC-" + std::to_string(i);
    Value r = s.call(svc::kLicenseControl, opname::kReserve, {{field::kComputer, Value(name)}});
    if (i < 5) license[name] = str(r, field::kLicense);
    EXPECT_EQ(ok(r), i < 5) << to_json(r);
  }
  // 3 heartbeats from each reserved computer (5 first verifications), 4
  // from a computer with no license (4 rejections), 3 update checks.
  for (int round = 0; round < 3; ++round)
    for (const auto& [name, lic] : license) EXPECT_EQ(str(heartbeat(s, name, lic), field::kStatus), status::kLicensed);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(str(heartbeat(s, "STRANGER", "L-0"), field::kStatus), status::kUnlicensed);
  for (int i = 0; i < 3; ++i) {
    Value r = s.call(svc::kUpdate, opname::kCheck, {{field::kComponent, Value("client")}, {field::kVersion, Value("1.0.0")}});
    EXPECT_TRUE(ok(r)) << to_json(r);
  }

  // An admin worker dies and another takes its place.
  s.admin_workers[0].kill();
  s.start_admin_worker();

  // Silent for over a second: the sweep marks all 5 lost; two come back,
  // then are marked lost again.
  Redis redis(*parse_redis_url(s.redis().url()));
  auto marked_lost = [&] { return redis.command({"ZCARD", keys::kLost})->integer; };
  ASSERT_TRUE(wait_until([&] { return marked_lost() == 5; }, 15s));
  for (const char* name : {"PC-0", "PC-1"}) EXPECT_EQ(str(heartbeat(s, name, license[name]), field::kStatus), status::kLicensed);
  ASSERT_TRUE(wait_until([&] { return marked_lost() == 3; }, 5s));
  ASSERT_TRUE(wait_until([&] { return marked_lost() == 5; }, 15s));

  const std::map<std::string, int64_t> expected = {
      {field::kHeartbeats, 15 + 4 + 2}, {field::kFirstVerifications, 5}, {field::kRejections, 4},
      {field::kWentLost, 7},            {field::kReturned, 2},           {field::kReservations, 5},
      {field::kRefusals, 2},            {field::kUpdateChecks, 3},       {field::kBytesServed, 0}};
  std::map<std::string, int64_t> got;
  EXPECT_TRUE(wait_until([&] { return (got = sums(s, resolution::kHour)) == expected; }, 15s))
      << to_json(latest_point(s));
  // Many more samples by the two admin workers change nothing.
  std::this_thread::sleep_for(1500ms);
  for (const auto& res : {resolution::kHour, resolution::kDay}) {
    got = sums(s, res);
    for (const auto& [name, n] : expected) EXPECT_EQ(got[name], n) << res << " " << name;
  }
  const Value last = latest_point(s);
  EXPECT_EQ(num(last, field::kPurchased), 5) << to_json(last);
  EXPECT_EQ(num(last, field::kReserved), 5) << to_json(last);
  EXPECT_EQ(num(last, field::kLost), 5) << to_json(last);
  EXPECT_EQ(num(last, field::kActive), 0) << to_json(last);
  EXPECT_EQ(num(last, field::kNeverSeen), 0) << to_json(last);
  EXPECT_GT(num(last, field::kSampledAt), now_ms() - 5000) << to_json(last);

  // The history is in Redis with its expiry: hourly 14 days, daily 2 years.
  const int64_t hour_s = (now_ms() / kHour) * 3600, day_s = (now_ms() / kDay) * 86400;
  auto ttl = [&](const std::string& key) { return redis.command({"TTL", key})->integer; };
  EXPECT_GT(ttl(keys::history_key(false, hour_s)), 14 * 86400 - 10);
  EXPECT_LE(ttl(keys::history_key(false, hour_s)), 14 * 86400 + 3600);
  EXPECT_GT(ttl(keys::history_key(true, day_s)), 730 * 86400);
  EXPECT_LE(ttl(keys::history_key(true, day_s)), 732 * 86400);
  std::cout << "history bytes: hour key " << redis.command({"MEMORY", "USAGE", keys::history_key(false, hour_s)})->integer
            << ", day key " << redis.command({"MEMORY", "USAGE", keys::history_key(true, day_s)})->integer
            << ", last " << redis.command({"MEMORY", "USAGE", keys::kHistLast})->integer << "\n";

  // primaryctl history: a line per hour with a sample, the same counts.
  int rc = -1;
  const std::string out = run_capture({bin("primaryctl"), "--server", s.front(), "history", "--resolution", "day", "--json"}, &rc);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("\"reservations\":5"), std::string::npos) << out;
  const std::string table = run_capture({bin("primaryctl"), "--server", s.front(), "history"}, &rc);
  EXPECT_EQ(rc, 0) << table;
  EXPECT_TRUE(table.starts_with("PERIOD")) << table;
  EXPECT_EQ(run_capture({bin("primaryctl"), "--server", s.front(), "history", "--from", "yesterday"}, &rc), "");
  EXPECT_EQ(rc, 2);
  EXPECT_EQ(run_capture({bin("primaryctl"), "--server", s.front(), "history", "--from", "2030-01-01", "--to", "2029-01-01"}, &rc), "");
  EXPECT_EQ(rc, 1);
}

TEST(History, PagesAreBoundedRetentionHoldsAndBadRangesAreRefused) {
  StackOptions o;
  o.admin_workers = 1;
  Stack s(o);
  ASSERT_TRUE(s.ok());
  Redis redis(*parse_redis_url(s.redis().url()));
  const int64_t now = now_ms(), today = now / kDay * kDay;
  // Daily points 1 to 40 days ago, and one older than the 2 years kept.
  for (int d = 1; d <= 40; ++d)
    ASSERT_TRUE(redis.command({"HSET", keys::history_key(true, (today - d * kDay) / 1000), field::kReserved,
                               std::to_string(d), field::kHeartbeats, std::to_string(100 + d)}));
  ASSERT_TRUE(redis.command({"HSET", keys::history_key(true, (today - 800 * kDay) / 1000), field::kReserved, "1"}));

  int pages = 0;
  auto points = all_points(s, {{field::kResolution, Value(resolution::kDay)}, {field::kFrom, Value(today - 900 * kDay)},
                               {field::kTo, Value(today - kDay)}, {field::kLimit, Value(100)}},
                           &pages);
  ASSERT_EQ(points.size(), 40u);
  EXPECT_EQ(pages, 8);  // 731 days kept, 100 a page
  for (size_t i = 0; i < points.size(); ++i) {
    const int64_t d = 40 - static_cast<int64_t>(i);
    EXPECT_EQ(num(points[i], field::kTs), today - d * kDay);
    EXPECT_EQ(num(points[i], field::kReserved), d);
    EXPECT_EQ(num(points[i], field::kHeartbeats), 100 + d);
    EXPECT_EQ(num(points[i], field::kReservations), 0);
    EXPECT_EQ(points[i].find(field::kPurchased), nullptr);
  }
  // One page: `limit` periods looked at from `from`; `next` goes on after them.
  Value r = s.call(svc::kAdmin, opname::kHistory, {{field::kResolution, Value(resolution::kDay)},
                                                    {field::kFrom, Value(today - 40 * kDay + 5)},
                                                    {field::kTo, Value(today - kDay)}, {field::kLimit, Value(7)}});
  ASSERT_TRUE(ok(r)) << to_json(r);
  EXPECT_EQ(r.find(field::kPoints)->as_array().size(), 7u);
  EXPECT_EQ(num(r, field::kNext), today - 33 * kDay);
  EXPECT_EQ(str(r, field::kResolution), resolution::kDay);
  // The last page has no `next`.
  r = s.call(svc::kAdmin, opname::kHistory, {{field::kResolution, Value(resolution::kDay)},
                                              {field::kFrom, Value(today - 3 * kDay)}, {field::kTo, Value(today - kDay)}});
  ASSERT_TRUE(ok(r)) << to_json(r);
  EXPECT_EQ(r.find(field::kPoints)->as_array().size(), 3u);
  EXPECT_TRUE(r.find(field::kNext) == nullptr || r.find(field::kNext)->is_nil()) << to_json(r);
  // Hourly by default: the last 48 hours, the admin worker's own samples.
  r = s.call(svc::kAdmin, opname::kHistory);
  ASSERT_TRUE(ok(r)) << to_json(r);
  EXPECT_EQ(str(r, field::kResolution), resolution::kHour);
  EXPECT_GE(r.find(field::kPoints)->as_array().size(), 1u) << to_json(r);

  for (const auto& bad : std::vector<Value::Map>{
           {{field::kFrom, Value(now)}, {field::kTo, Value(now - 1)}},
           {{field::kFrom, Value(-1)}},
           {{field::kTo, Value("now")}},
           {{field::kResolution, Value("week")}},
           {{field::kLimit, Value(0)}},
           {{field::kLimit, Value(1001)}}}) {
    Value e = s.call(svc::kAdmin, opname::kHistory, bad);
    EXPECT_FALSE(ok(e)) << to_json(Value(bad));
    EXPECT_EQ(str(e, field::kCode), "BAD_REQUEST") << to_json(e);
  }
}

TEST(History, AStateChangeIsSampledWithoutWaitingForTheInterval) {
  StackOptions o;
  o.admin_workers = 1;
  o.admin_args = {"--history-interval-ms", "3600000"};  // an hour: only a change samples
  Stack s(o);
  ASSERT_TRUE(s.ok());
  ASSERT_TRUE(wait_until([&] { return latest_point(s).is_map(); }, 10s));
  ASSERT_TRUE(ok(s.unlock("SN-CHANGE", 3)));
  ASSERT_TRUE(ok(s.call(svc::kLicenseControl, opname::kReserve, {{field::kComputer, Value("PC-1")}})));
  Value last;
  EXPECT_TRUE(wait_until([&] {
    last = latest_point(s);
    return num(last, field::kReserved) == 1 && num(last, field::kPurchased) == 3;
  }, 5s)) << to_json(last);
  EXPECT_EQ(sums(s, resolution::kHour)[field::kReservations], 1);
}

}  // namespace
}  // namespace primary::test
