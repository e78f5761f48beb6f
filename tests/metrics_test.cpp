// Metrics: the worker runtime's op counters (OpMetrics) against a real
// Redis, their reading by admin.metrics, and GET /metrics of primary-web
// over real HTTP against a real stack. The exposition is parsed here by a
// strict reader of the text format 0.0.4, and its numbers are checked
// against what the test did. Who may scrape: loopback freely, anyone else
// with the bearer token; the decision is unit-tested, and the token path is
// exercised on loopback (--metrics-require-token) and, when this host has a
// non-loopback address, from it.
#include <gtest/gtest.h>
#include <curl/curl.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <signal.h>
#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <random>
#include <set>
#include <sstream>

#include "admin/admin_service.hpp"
#include "common/keys.hpp"
#include "common/metrics.hpp"
#include "common/redis.hpp"
#include "tests/support/http.hpp"
#include "tests/support/process.hpp"
#include "tests/support/redis_server.hpp"
#include "tests/support/stack.hpp"
#include "tests/support/util.hpp"
#include "web/metrics.hpp"
#include "web/password.hpp"

namespace primary::test {
namespace {

namespace fs = std::filesystem;
using web::MetricsAccess;

// ------------------------------------------------------------ a strict reader

// One scrape, read as Prometheus would: every line a comment, blank, or
// `name{labels} value [timestamp]`. Anything else is an error, and so is a
// sample before its family's TYPE, a family split in two, a TYPE given
// twice, or a histogram whose buckets are not cumulative or do not end with
// +Inf equal to _count.
struct Sample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};

struct Scrape {
  std::map<std::string, std::string> types;  // family -> counter, gauge, histogram, ...
  std::vector<Sample> samples;
  std::vector<std::string> errors;

  // The value of the one sample with this name whose labels include `match`; NaN if none.
  double value(const std::string& name, const std::map<std::string, std::string>& match = {}) const {
    double found = NAN;
    int n = 0;
    for (const auto& s : samples) {
      if (s.name != name) continue;
      bool all = true;
      for (const auto& [k, v] : match) {
        auto it = s.labels.find(k);
        if (it == s.labels.end() || it->second != v) all = false;
      }
      if (all && s.labels.size() == match.size()) {
        found = s.value;
        ++n;
      }
    }
    return n == 1 ? found : NAN;
  }
};

bool name_char(char c, bool first) {
  return std::isalpha(static_cast<unsigned char>(c)) || c == '_' || c == ':' ||
         (!first && std::isdigit(static_cast<unsigned char>(c)));
}

bool parse_number(const std::string& text, double& out) {
  if (text == "+Inf" || text == "Inf") return out = INFINITY, true;
  if (text == "-Inf") return out = -INFINITY, true;
  if (text == "NaN") return out = NAN, true;
  if (text.empty()) return false;
  char* end = nullptr;
  out = std::strtod(text.c_str(), &end);
  return end && *end == '\0';
}

// The family a sample belongs to: its name, or for a histogram's series the
// name without _bucket / _sum / _count.
std::string family_of(const std::string& name, const std::map<std::string, std::string>& types) {
  for (const char* suffix : {"_bucket", "_sum", "_count"}) {
    const std::string sfx(suffix);
    if (name.size() > sfx.size() && name.compare(name.size() - sfx.size(), sfx.size(), sfx) == 0) {
      const std::string base = name.substr(0, name.size() - sfx.size());
      auto it = types.find(base);
      if (it != types.end() && (it->second == "histogram" || it->second == "summary")) return base;
    }
  }
  return name;
}

Scrape parse_exposition(const std::string& text) {
  Scrape out;
  std::set<std::string> finished;  // families whose samples have ended
  std::string current;             // family of the previous sample
  std::istringstream in(text);
  std::string line;
  int number = 0;
  auto error = [&](const std::string& what) { out.errors.push_back("line " + std::to_string(number) + ": " + what + ": " + line); };
  if (!text.empty() && text.back() != '\n') out.errors.push_back("the last line does not end with a newline");
  while (std::getline(in, line)) {
    ++number;
    if (line.empty()) continue;
    if (line[0] == '#') {
      std::istringstream words(line.substr(1));
      std::string kind, name, rest;
      words >> kind >> name;
      if (kind == "TYPE") {
        words >> rest;
        static const std::set<std::string> kinds = {"counter", "gauge", "histogram", "summary", "untyped"};
        if (!kinds.count(rest)) error("unknown type");
        if (out.types.count(name)) error("second TYPE for " + name);
        bool sampled = finished.count(name) || current == name;
        if (sampled) error("TYPE after samples of " + name);
        out.types[name] = rest;
      } else if (kind == "HELP") {
        if (name.empty()) error("HELP without a name");
      }
      continue;
    }
    Sample s;
    size_t i = 0;
    while (i < line.size() && name_char(line[i], i == 0)) ++i;
    if (i == 0) {
      error("no metric name");
      continue;
    }
    s.name = line.substr(0, i);
    if (i < line.size() && line[i] == '{') {
      ++i;
      bool bad = false;
      while (i < line.size() && line[i] != '}') {
        size_t start = i;
        while (i < line.size() && name_char(line[i], i == start)) ++i;
        std::string label = line.substr(start, i - start);
        if (label.empty() || i + 1 >= line.size() || line[i] != '=' || line[i + 1] != '"') {
          bad = true;
          break;
        }
        i += 2;
        std::string value;
        bool closed = false;
        while (i < line.size()) {
          const char c = line[i++];
          if (c == '"') {
            closed = true;
            break;
          }
          if (c == '\\') {
            if (i >= line.size()) break;
            const char e = line[i++];
            if (e == 'n') value += '\n';
            else if (e == '\\' || e == '"') value += e;
            else {
              bad = true;
              break;
            }
          } else {
            value += c;
          }
        }
        if (!closed || bad) {
          bad = true;
          break;
        }
        if (s.labels.count(label)) bad = true;
        s.labels[label] = value;
        if (i < line.size() && line[i] == ',') ++i;
      }
      if (bad || i >= line.size() || line[i] != '}') {
        error("malformed labels");
        continue;
      }
      ++i;
    }
    if (i >= line.size() || line[i] != ' ') {
      error("no space before the value");
      continue;
    }
    std::istringstream rest(line.substr(i + 1));
    std::string value, timestamp, extra;
    rest >> value >> timestamp >> extra;
    if (!parse_number(value, s.value) || !extra.empty()) {
      error("bad value");
      continue;
    }
    const std::string family = family_of(s.name, out.types);
    if (!out.types.count(family)) error("sample before the TYPE of " + family);
    if (family != current) {
      if (finished.count(family)) error("family " + family + " split in two");
      if (!current.empty()) finished.insert(current);
      current = family;
    }
    out.samples.push_back(std::move(s));
  }

  // Histograms: per series, buckets by le ascending and cumulative, the last
  // +Inf, equal to _count; _sum present.
  for (const auto& [family, type] : out.types) {
    if (type != "histogram") continue;
    std::map<std::map<std::string, std::string>, std::vector<std::pair<double, double>>> buckets;
    std::map<std::map<std::string, std::string>, double> counts, sums;
    for (const auto& s : out.samples) {
      auto labels = s.labels;
      if (s.name == family + "_bucket") {
        auto le = labels.find("le");
        double bound = 0;
        if (le == labels.end() || !parse_number(le->second, bound)) {
          out.errors.push_back(family + ": a bucket without a numeric le");
          continue;
        }
        labels.erase("le");
        buckets[labels].emplace_back(bound, s.value);
      } else if (s.name == family + "_count") {
        counts[labels] = s.value;
      } else if (s.name == family + "_sum") {
        sums[labels] = s.value;
      }
    }
    for (const auto& [labels, series] : buckets) {
      std::string id = family;
      for (const auto& [k, v] : labels) id += " " + k + "=" + v;
      for (size_t k = 1; k < series.size(); ++k) {
        if (!(series[k].first > series[k - 1].first)) out.errors.push_back(id + ": le not ascending");
        if (series[k].second < series[k - 1].second) out.errors.push_back(id + ": buckets not cumulative");
      }
      if (series.empty() || !std::isinf(series.back().first)) out.errors.push_back(id + ": no +Inf bucket last");
      else if (!counts.count(labels) || counts[labels] != series.back().second)
        out.errors.push_back(id + ": +Inf bucket differs from _count");
      if (!sums.count(labels)) out.errors.push_back(id + ": no _sum");
    }
  }
  return out;
}

std::string errors_text(const Scrape& s) {
  std::string out;
  for (const auto& e : s.errors) out += e + "\n";
  return out;
}

// ------------------------------------------------------------ HTTP

// Starts primary-web for `stack` listening on `listen`; "" when it did not come up.
std::string start_web(Process& out, Stack& stack, const std::string& data_dir, const std::string& log,
                      const std::string& listen, std::vector<std::string> extra = {}) {
  ::unlink((data_dir + "/run/web.address").c_str());
  std::vector<std::string> argv = {bin("primary-web"), "--web",  listen,         "--data-dir", data_dir,
                                   "--front",          stack.front(), "--events", stack.events()};
  argv.insert(argv.end(), extra.begin(), extra.end());
  out = Process::start(argv, {}, log);
  wait_until([&] { return !web_address(data_dir).empty() || !out.alive(); }, 15s);
  return web_address(data_dir);
}

std::string write_token(const std::string& path, const std::string& token, mode_t mode) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path) << token << "\n";
  ::chmod(path.c_str(), mode);
  return path;
}

// A non-loopback IPv4 address of this host, or "".
std::string non_loopback_address() {
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) return "";
  std::string found;
  for (ifaddrs* a = list; a && found.empty(); a = a->ifa_next) {
    if (!a->ifa_addr || a->ifa_addr->sa_family != AF_INET) continue;
    char text[INET_ADDRSTRLEN];
    ::inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(a->ifa_addr)->sin_addr, text, sizeof text);
    if (std::string(text).rfind("127.", 0) != 0) found = text;
  }
  ::freeifaddrs(list);
  return found;
}

// ------------------------------------------------------------ unit tests

TEST(ExpositionReader, RefusesWhatPrometheusWouldRefuse) {
  EXPECT_TRUE(parse_exposition("# TYPE a counter\na 1\n").errors.empty());
  EXPECT_FALSE(parse_exposition("a 1\n").errors.empty()) << "no TYPE";
  EXPECT_FALSE(parse_exposition("# TYPE a counter\na{x=\"1} 1\n").errors.empty());
  EXPECT_FALSE(parse_exposition("# TYPE a counter\na 1\n# TYPE b gauge\nb 2\na 3\n").errors.empty());
  EXPECT_FALSE(parse_exposition("# TYPE h histogram\nh_bucket{le=\"1\"} 3\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 2\n")
                   .errors.empty())
      << "not cumulative";
  EXPECT_FALSE(parse_exposition("# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 3\n")
                   .errors.empty())
      << "+Inf differs from _count";
  EXPECT_TRUE(parse_exposition("# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 2\n")
                  .errors.empty());
}

TEST(MetricsAccessRule, LoopbackFreeOthersNeedTheToken) {
  const std::string token = "0123456789abcdef0123";
  EXPECT_EQ(web::metrics_access(true, false, "", ""), MetricsAccess::Allow);
  EXPECT_EQ(web::metrics_access(true, false, token, ""), MetricsAccess::Allow);
  EXPECT_EQ(web::metrics_access(false, false, "", ""), MetricsAccess::Forbidden);
  EXPECT_EQ(web::metrics_access(false, false, "", "Bearer anything-at-all"), MetricsAccess::Forbidden);
  EXPECT_EQ(web::metrics_access(false, false, token, ""), MetricsAccess::Unauthorized);
  EXPECT_EQ(web::metrics_access(false, false, token, "Bearer " + token), MetricsAccess::Allow);
  EXPECT_EQ(web::metrics_access(false, false, token, "bearer  " + token + " "), MetricsAccess::Allow);
  EXPECT_EQ(web::metrics_access(false, false, token, "Bearer " + token + "x"), MetricsAccess::Unauthorized);
  EXPECT_EQ(web::metrics_access(false, false, token, "Bearer " + token.substr(1)), MetricsAccess::Unauthorized);
  EXPECT_EQ(web::metrics_access(false, false, token, "Basic " + token), MetricsAccess::Unauthorized);
  EXPECT_EQ(web::metrics_access(false, false, token, "Bearer"), MetricsAccess::Unauthorized);
  EXPECT_EQ(web::metrics_access(false, false, token, token), MetricsAccess::Unauthorized);
  // --metrics-require-token: loopback too.
  EXPECT_EQ(web::metrics_access(true, true, token, ""), MetricsAccess::Unauthorized);
  EXPECT_EQ(web::metrics_access(true, true, token, "Bearer " + token), MetricsAccess::Allow);
  EXPECT_EQ(web::metrics_access(true, true, "", ""), MetricsAccess::Forbidden);
}

TEST(MetricsToken, FileMustBePrivateAndLongEnough) {
  TempDir dir("mtoken");
  const std::string good = write_token(dir.file("good"), "0123456789abcdef0123  ", 0600);
  auto t = web::read_metrics_token(good);
  ASSERT_TRUE(t) << t.error().message;
  EXPECT_EQ(*t, "0123456789abcdef0123");
  auto open = web::read_metrics_token(write_token(dir.file("open"), "0123456789abcdef0123", 0644));
  ASSERT_FALSE(open);
  EXPECT_NE(open.error().message.find("chmod 600"), std::string::npos) << open.error().message;
  EXPECT_FALSE(web::read_metrics_token(write_token(dir.file("short"), "short", 0600)));
  EXPECT_FALSE(web::read_metrics_token(dir.file("missing")));
}

TEST(Exposition, LabelsAreEscapedAndHistogramsComplete) {
  EXPECT_EQ(web::escape_label_value("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
  Value::Array buckets;
  buckets.push_back(Value(Value::Map{{"le", Value(0.0005)}, {"count", Value(1)}}));
  buckets.push_back(Value(Value::Map{{"le", Value(0.25)}, {"count", Value(3)}}));
  Value reply(Value::Map{
      {"ok", Value(true)},
      {"ops", Value(Value::Array{Value(Value::Map{{"service", Value("we\"ird\\svc\n")},
                                                  {"op", Value("op")},
                                                  {"requests", Value(4)},
                                                  {"errors", Value(Value::Map{{"BAD_REQUEST", Value(2)}})},
                                                  {"buckets", Value(buckets)},
                                                  {"sum", Value(0.75)},
                                                  {"count", Value(4)}})})},
      {"counters", Value(Value::Map{{"update_bytes_served", Value(123)}, {"Not a name!", Value(1)}})},
      {"licenses", Value(Value::Map{{"purchased", Value(10)}, {"reserved", Value(3)}})},
      {"events_written", Value(9)},
      {"broker", Value(Value::Map{{"services", Value(Value::Map{{"license", Value(Value::Map{
                                                                            {"queue", Value(2)},
                                                                            {"workers", Value(16)},
                                                                            {"routed", Value(40)},
                                                                            {"busy", Value(1)},
                                                                            {"unavailable", Value(0)}})}})}})}});
  const std::string text = web::render_prometheus(reply);
  Scrape s = parse_exposition(text);
  ASSERT_TRUE(s.errors.empty()) << errors_text(s) << text;
  const std::map<std::string, std::string> op = {{"service", "we\"ird\\svc\n"}, {"op", "op"}};
  EXPECT_EQ(s.value("primary_requests_total", op), 4);
  auto with = [&](std::string k, std::string v) {
    auto m = op;
    m[k] = v;
    return m;
  };
  EXPECT_EQ(s.value("primary_request_errors_total", with("code", "BAD_REQUEST")), 2);
  EXPECT_EQ(s.value("primary_request_duration_seconds_bucket", with("le", "0.0005")), 1);
  EXPECT_EQ(s.value("primary_request_duration_seconds_bucket", with("le", "0.25")), 3);
  EXPECT_EQ(s.value("primary_request_duration_seconds_bucket", with("le", "+Inf")), 4);
  EXPECT_EQ(s.value("primary_request_duration_seconds_sum", op), 0.75);
  EXPECT_EQ(s.value("primary_broker_queue_depth", {{"service", "license"}}), 2);
  EXPECT_EQ(s.value("primary_broker_workers", {{"service", "license"}}), 16);
  EXPECT_EQ(s.value("primary_broker_busy_total", {{"service", "license"}}), 1);
  EXPECT_EQ(s.value("primary_licenses_purchased"), 10);
  EXPECT_EQ(s.value("primary_licenses_never_seen"), 0);
  EXPECT_EQ(s.value("primary_events_written_total"), 9);
  EXPECT_EQ(s.value("primary_update_bytes_served_total"), 123);
  EXPECT_EQ(s.types["primary_request_duration_seconds"], "histogram");
  EXPECT_EQ(s.types["primary_requests_total"], "counter");
  EXPECT_EQ(s.types["primary_licenses_reserved"], "gauge");
  EXPECT_EQ(text.find("Not a name"), std::string::npos);
}

TEST(OpCounters, HashBecomesCumulativeHistogramsWithEveryBound) {
  auto c = op_counters_from_hash({{"license|heartbeat|requests", "5"},
                                  {"license|heartbeat|le|0.001", "2"},
                                  {"license|heartbeat|le|0.05", "2"},
                                  {"license|heartbeat|error|BAD_REQUEST", "1"},
                                  {"license|heartbeat|sum", "0.25"},
                                  {"counter|update_bytes_served", "77"},
                                  {"garbage", "1"}});
  ASSERT_EQ(c.ops.size(), 1u);
  const Value& op = c.ops[0];
  EXPECT_EQ(str(op, "service"), "license");
  EXPECT_EQ(num(op, "requests"), 5);
  EXPECT_EQ(num(op, "count"), 5);
  EXPECT_EQ(op.find("sum")->as_float(), 0.25);
  EXPECT_EQ(num(*op.find("errors"), "BAD_REQUEST"), 1);
  const auto& buckets = op.find("buckets")->as_array();
  ASSERT_EQ(buckets.size(), kLatencyBounds.size());
  int64_t previous = 0;
  for (const auto& b : buckets) {
    EXPECT_GE(num(b, "count"), previous);
    previous = num(b, "count");
  }
  EXPECT_EQ(num(buckets[0], "count"), 0);   // 0.0005
  EXPECT_EQ(num(buckets[1], "count"), 2);   // 0.001
  EXPECT_EQ(num(buckets[6], "count"), 4);   // 0.05
  EXPECT_EQ(num(buckets.back(), "count"), 4);  // one took longer than 10 s
  ASSERT_EQ(c.counters.size(), 1u);
  EXPECT_EQ(c.counters[0].second.as_int(), 77);
}

// Against a real Redis: deltas add up across flushes (and so across
// processes), a failed flush keeps them, and the next one sends them.
TEST(OpMetricsRedis, FlushAddsDeltasAndKeepsThemWhenRedisIsDown) {
  RedisServer server;
  ASSERT_TRUE(server.ok());
  auto url = parse_redis_url(server.url());
  ASSERT_TRUE(url);
  Redis redis(*url);
  auto hash = [&] {
    std::map<std::string, std::string> out;
    auto r = redis.command({"HGETALL", keys::kMetricsOps});
    if (r)
      for (size_t i = 0; i + 1 < r->elements.size(); i += 2) out[r->elements[i].str] = r->elements[i + 1].str;
    return out;
  };
  OpMetrics m;
  const size_t svc = m.add_service("license.control");
  const OpSpec* reserve = find_op("license.control", "reserve");
  m.record(svc, reserve, std::nullopt, 0.0001);
  m.record(svc, reserve, Code::BadRequest, 0.003);
  m.record(svc, nullptr, Code::UnknownOp, 20.0);
  m.add("update_bytes_served", 1000);
  ASSERT_TRUE(m.flush(redis));
  EXPECT_TRUE(m.pending().empty());
  auto h = hash();
  EXPECT_EQ(h["license.control|reserve|requests"], "2");
  EXPECT_EQ(h["license.control|reserve|error|BAD_REQUEST"], "1");
  EXPECT_EQ(h["license.control|reserve|le|0.0005"], "1");
  EXPECT_EQ(h["license.control|reserve|le|0.005"], "1");
  EXPECT_EQ(h["license.control|_invalid|requests"], "1");
  EXPECT_EQ(h["license.control|_invalid|error|UNKNOWN_OP"], "1");
  EXPECT_EQ(h.count("license.control|_invalid|le|10"), 0u) << "20 s is in no finite bucket";
  EXPECT_NEAR(std::stod(h["license.control|reserve|sum"]), 0.0031, 1e-9);
  EXPECT_EQ(h["counter|update_bytes_served"], "1000");

  // A second process's flush adds to the same fields.
  OpMetrics other;
  other.record(other.add_service("license.control"), reserve, std::nullopt, 0.0001);
  ASSERT_TRUE(other.flush(redis));
  EXPECT_EQ(hash()["license.control|reserve|requests"], "3");

  // Redis down: the flush fails and keeps the deltas; they go with the next.
  m.record(svc, reserve, std::nullopt, 0.0001);
  server.stop();
  EXPECT_FALSE(m.flush(redis));
  m.record(svc, reserve, std::nullopt, 0.0001);
  EXPECT_FALSE(m.pending().empty());
  server.restart();
  ASSERT_TRUE(server.ok());
  ASSERT_TRUE(m.flush(redis));
  EXPECT_EQ(hash()["license.control|reserve|requests"], "5");
  EXPECT_EQ(hash()["license.control|reserve|le|0.0005"], "4");
}

// ------------------------------------------------------------ the whole stack

// Workers flush every 100 ms here, so the test waits for numbers, not time.
class MetricsSystem : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    curl_global_init(CURL_GLOBAL_ALL);
    StackOptions o;
    o.licensed_args = {"--metrics-interval-ms", "100"};
    o.admin_workers = 1;
    o.admin_args = {"--metrics-interval-ms", "100"};
    o.updater_workers = 1;
    o.updater_args = {"--metrics-interval-ms", "100", "--sync-interval-s", "0"};
    stack_ = new Stack(o);
    ASSERT_TRUE(stack_->ok());
    ASSERT_TRUE(ok(stack_->unlock("SN-METRICS-1", 50)));
    data_ = stack_->dir().file("web");
    web_ = new Process();
    url_ = start_web(*web_, *stack_, data_, stack_->dir().file("web.log"), "127.0.0.1:0");
    ASSERT_FALSE(url_.empty()) << read_file(stack_->dir().file("web.log"));
  }
  static void TearDownTestSuite() {
    delete web_;
    delete stack_;
    web_ = nullptr;
    stack_ = nullptr;
  }
  // Scrapes until `done` holds for a scrape that parses; that scrape.
  static Scrape scrape_until(const std::function<bool(const Scrape&)>& done, Http* last = nullptr) {
    Scrape s;
    Http r;
    wait_until(
        [&] {
          r = http_get(url_ + "/metrics");
          if (r.status != 200) return false;
          s = parse_exposition(r.body);
          return s.errors.empty() && done(s);
        },
        60s, 100ms);
    if (last) *last = r;
    EXPECT_EQ(r.status, 200) << r.body;
    EXPECT_TRUE(s.errors.empty()) << errors_text(s) << r.body;
    return s;
  }

  static Stack* stack_;
  static Process* web_;
  static std::string data_, url_;
};
Stack* MetricsSystem::stack_ = nullptr;
Process* MetricsSystem::web_ = nullptr;
std::string MetricsSystem::data_, MetricsSystem::url_;

TEST_F(MetricsSystem, ScrapeAgreesWithWhatTheTestDid) {
  Stack& s = *stack_;
  constexpr int kReserved = 7, kBad = 3, kHeartbeats = 5;
  std::map<std::string, std::string> licenses;
  for (int i = 0; i < kReserved; ++i) {
    const std::string name = "MPC-" + std::to_string(i);
    Value r = s.call("license.control", "reserve", {{"computer", Value(name)}});
    ASSERT_TRUE(ok(r)) << to_json(r);
    licenses[name] = str(r, "license");
  }
  for (int i = 0; i < kBad; ++i) {
    Value r = s.call("license.control", "reserve", {{"computer", Value("not a name!")}});
    ASSERT_EQ(str(r, "code"), "BAD_REQUEST") << to_json(r);
  }
  Value unknown = s.call("license.control", "no-such-op");
  ASSERT_EQ(str(unknown, "code"), "UNKNOWN_OP");
  for (int i = 0; i < kHeartbeats; ++i) {
    const std::string name = "MPC-" + std::to_string(i);
    Value r = s.call("license", "heartbeat", {{"computer", Value(name)}, {"license", Value(licenses[name])}});
    ASSERT_EQ(str(r, "status"), "licensed") << to_json(r);
  }
  Value nf = s.call("update", "fetch", {{"sha256", Value(std::string(64, 'a'))}, {"offset", Value(0)},
                                        {"length", Value(10)}});
  ASSERT_EQ(str(nf, "code"), "NOT_FOUND") << to_json(nf);

  const std::map<std::string, std::string> reserve = {{"service", "license.control"}, {"op", "reserve"}};
  const std::map<std::string, std::string> heartbeat = {{"service", "license"}, {"op", "heartbeat"}};
  auto err = [](std::map<std::string, std::string> l, const std::string& code) {
    l["code"] = code;
    return l;
  };
  Http http;
  Scrape m = scrape_until(
      [&](const Scrape& x) {
        return x.value("primary_requests_total", reserve) >= kReserved + kBad &&
               x.value("primary_request_errors_total", err(reserve, "BAD_REQUEST")) >= kBad &&
               x.value("primary_requests_total", heartbeat) >= kHeartbeats &&
               x.value("primary_request_errors_total",
                       err({{"service", "update"}, {"op", "fetch"}}, "NOT_FOUND")) >= 1 &&
               x.value("primary_request_errors_total",
                       err({{"service", "license.control"}, {"op", "_invalid"}}, "UNKNOWN_OP")) >= 1 &&
               x.value("primary_leases_signed_ahead_used_total") >= kHeartbeats - 1;
      },
      &http);
  EXPECT_EQ(http.header("content-type"), "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_GE(m.value("primary_requests_total", reserve), kReserved + kBad);
  EXPECT_GE(m.value("primary_request_errors_total", err(reserve, "BAD_REQUEST")), kBad);
  EXPECT_TRUE(std::isnan(m.value("primary_request_errors_total", err(heartbeat, "BAD_REQUEST"))));
  EXPECT_GE(m.value("primary_request_duration_seconds_count", reserve), kReserved + kBad);
  EXPECT_EQ(m.value("primary_request_duration_seconds_count", reserve), m.value("primary_requests_total", reserve));
  EXPECT_EQ(m.value("primary_licenses_reserved"), kReserved);
  EXPECT_EQ(m.value("primary_licenses_purchased"), 50);
  EXPECT_EQ(m.value("primary_licenses_active"), kHeartbeats);
  EXPECT_EQ(m.value("primary_licenses_never_seen"), kReserved - kHeartbeats);
  EXPECT_EQ(m.value("primary_licenses_lost"), 0);
  EXPECT_EQ(m.value("primary_licenses_clock_skewed"), 0);
  // serial.unlocked, 7 license.reserved, 5 client.licensed at least.
  EXPECT_GE(m.value("primary_events_written_total"), 1 + kReserved + kHeartbeats);
  for (const std::string svc : {"license", "license.control", "admin", "update", "update.control"})
    EXPECT_GT(m.value("primary_broker_workers", {{"service", svc}}), 0) << svc;
  EXPECT_GE(m.value("primary_broker_routed_total", {{"service", "license.control"}}), kReserved + kBad + 1);
  EXPECT_EQ(m.value("primary_broker_queue_depth", {{"service", "license"}}), 0);
  EXPECT_EQ(m.value("primary_broker_busy_total", {{"service", "license"}}), 0);
  EXPECT_EQ(m.value("primary_update_bytes_served_total"), 0);
  // The one licensing worker knew the serial from the first heartbeat's
  // answer on, and signed each later one's lease while Redis ran it.
  EXPECT_GE(m.value("primary_leases_signed_ahead_total"), m.value("primary_leases_signed_ahead_used_total"));
  // The scrape itself is an admin.metrics request, counted like any other.
  Scrape again = scrape_until([](const Scrape& x) {
    return x.value("primary_requests_total", {{"service", "admin"}, {"op", "metrics"}}) >= 1;
  });
  EXPECT_GE(again.value("primary_requests_total", reserve), m.value("primary_requests_total", reserve));
}

// Counters are in Redis, not in a process: a licensing worker stopped in
// order gives its last counts on the way out (its flush interval here is an
// hour), and a new worker adds to them.
TEST_F(MetricsSystem, CountersSurviveAWorkerRestart) {
  Stack& s = *stack_;
  const std::map<std::string, std::string> setup = {{"service", "license.control"}, {"op", "setup_info"}};
  Scrape before = scrape_until([](const Scrape&) { return true; });
  double base = before.value("primary_requests_total", setup);
  if (std::isnan(base)) base = 0;
  ASSERT_TRUE(ok(s.call("license.control", "reserve", {{"computer", Value("MPC-RESTART")}})));

  // Only a slow-flushing worker serves licensing from here on.
  s.start_license_worker({"--metrics-interval-ms", "3600000"});
  const int64_t slots = 8;
  ASSERT_TRUE(s.wait_workers("license.control", static_cast<int64_t>(s.license_workers.size()) * slots));
  for (size_t i = 0; i + 1 < s.license_workers.size(); ++i) {
    s.license_workers[i].signal(SIGTERM);
    s.license_workers[i].wait_exit(10s);
  }
  ASSERT_TRUE(wait_until(
      [&] {
        Value r = s.call("broker.control", "workers");
        const Value* n = r.find("services") ? r.find("services")->find("license.control") : nullptr;
        return n && n->is_int() && n->as_int() == slots;
      },
      10s, 50ms));
  constexpr int kCalls = 4;
  for (int i = 0; i < kCalls; ++i)
    ASSERT_TRUE(ok(s.call("license.control", "setup_info", {{"computer", Value("MPC-RESTART")}})));
  s.license_workers.back().signal(SIGTERM);
  ASSERT_TRUE(s.license_workers.back().wait_exit(10s).has_value());
  // Nothing serves licensing now, yet the counts are there: flushed on the way out.
  Scrape after = scrape_until([&](const Scrape& x) {
    return x.value("primary_requests_total", setup) >= base + kCalls;
  });
  EXPECT_EQ(after.value("primary_requests_total", setup), base + kCalls);
  s.start_license_worker();
  ASSERT_TRUE(s.wait_workers("license.control", slots));
  ASSERT_TRUE(ok(s.call("license.control", "setup_info", {{"computer", Value("MPC-RESTART")}})));
  Scrape more = scrape_until([&](const Scrape& x) {
    return x.value("primary_requests_total", setup) >= base + kCalls + 1;
  });
  EXPECT_EQ(more.value("primary_requests_total", setup), base + kCalls + 1);
}

// A release imported from a bundle and fetched whole: its bytes are counted.
TEST_F(MetricsSystem, UpdateBytesServedCountsFetchedData) {
  Stack& s = *stack_;
  const std::string dir = s.dir().file("releases");
  fs::create_directories(dir);
  constexpr int64_t kSize = 300000;
  std::string data(kSize, '\0');
  std::mt19937_64 rng(7);
  for (auto& c : data) c = static_cast<char>(rng());
  std::ofstream(dir + "/agent-1.0.0.bin", std::ios::binary) << data;
  std::ofstream(dir + "/releases.toml") << "[[release]]\ncomponent = \"agent\"\nversion = \"1.0.0\"\n"
                                           "file = \"agent-1.0.0.bin\"\n";
  const std::string bundle = s.dir().file("agent.bundle");
  int rc = -1;
  run_capture({bin("primary-vendor"), "bundle", "--key", s.vendor_key_file(), "--dir", dir, "--out", bundle}, &rc);
  ASSERT_EQ(rc, 0);
  Value started = s.call("update.control", "import", {{"path", Value(bundle)}});
  ASSERT_TRUE(ok(started)) << to_json(started);
  std::string sha;
  ASSERT_TRUE(wait_until(
      [&] {
        Value r = s.call("update.control", "releases");
        const Value* items = r.find("items");
        if (!items || !items->is_array()) return false;
        for (const Value& it : items->as_array())
          if (str(it, "component") == "agent" && it.find("stored") && it.find("stored")->as_bool())
            sha = str(it, "sha256");
        return !sha.empty();
      },
      60s, 50ms))
      << read_file(s.dir().file("updater.log"));
  Scrape before = scrape_until([](const Scrape&) { return true; });
  const double base = before.value("primary_update_bytes_served_total");
  int64_t got = 0;
  for (int64_t offset = 0; offset < kSize; offset += 100000) {
    Value r = s.call("update", "fetch", {{"sha256", Value(sha)}, {"offset", Value(offset)},
                                         {"length", Value(100000)}});
    ASSERT_TRUE(ok(r)) << to_json(r);
    got += static_cast<int64_t>(r.find("data")->as_bin().bytes.size());
  }
  ASSERT_EQ(got, kSize);
  Scrape after = scrape_until([&](const Scrape& x) {
    return x.value("primary_update_bytes_served_total") >= base + kSize;
  });
  EXPECT_EQ(after.value("primary_update_bytes_served_total"), base + kSize);
}

TEST_F(MetricsSystem, NeedsNoSessionButTheTokenWhenRequired) {
  Stack& s = *stack_;
  const std::string token = "metrics-token-0123456789abcdef";
  const std::string file = write_token(s.dir().file("secrets/metrics.token"), token, 0600);
  const std::string data = s.dir().file("web-token");
  Process p;
  const std::string url = start_web(p, s, data, s.dir().file("web-token.log"), "127.0.0.1:0",
                                    {"--metrics-token-file", file, "--metrics-require-token"});
  ASSERT_FALSE(url.empty()) << read_file(s.dir().file("web-token.log"));
  Http none = http_get(url + "/metrics");
  EXPECT_EQ(none.status, 401);
  EXPECT_NE(none.header("www-authenticate").find("Bearer"), std::string::npos);
  EXPECT_EQ(http_get(url + "/metrics", {"Authorization: Bearer wrong-token-0123456789abcdef"}).status, 401);
  EXPECT_EQ(http_get(url + "/metrics", {"Authorization: Basic " + token}).status, 401);
  Http good = http_get(url + "/metrics", {"Authorization: Bearer " + token});
  ASSERT_EQ(good.status, 200) << good.body;
  Scrape m = parse_exposition(good.body);
  EXPECT_TRUE(m.errors.empty()) << errors_text(m);
  EXPECT_GT(m.value("primary_broker_workers", {{"service", "admin"}}), 0);
  // The console's pages still need a session.
  EXPECT_EQ(http_get(url + "/", {"Authorization: Bearer " + token}).status, 303);
}

TEST_F(MetricsSystem, BadTokenSettingsStopTheConsoleWithOneLine) {
  Stack& s = *stack_;
  struct Case {
    std::vector<std::string> args;
    std::string says;
  };
  const std::string open = write_token(s.dir().file("open.token"), "metrics-token-0123456789abcdef", 0644);
  for (const Case& c : {Case{{"--metrics-require-token"}, "needs --metrics-token-file"},
                        Case{{"--metrics-token-file", open}, "chmod 600"},
                        Case{{"--metrics-token-file", s.dir().file("missing.token")}, "missing.token"}}) {
    const std::string log = s.dir().file("web-bad.log");
    ::unlink(log.c_str());
    Process p;
    start_web(p, s, s.dir().file("web-bad"), log, "127.0.0.1:0", c.args);
    auto code = p.wait_exit(15s);
    ASSERT_TRUE(code.has_value());
    EXPECT_EQ(*code, 2);
    const std::string text = read_file(log);
    EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 1) << text;
    EXPECT_NE(text.find(c.says), std::string::npos) << text;
  }
}

// From a non-loopback peer: refused without a configured token (403), then
// 401 without or with a wrong token, 200 with the right one.
TEST_F(MetricsSystem, NonLoopbackPeersNeedTheBearerToken) {
  const std::string address = non_loopback_address();
  if (address.empty()) GTEST_SKIP() << "this host has no non-loopback IPv4 address";
  Stack& s = *stack_;
  // A console off loopback needs a password.
  const std::string data = s.dir().file("web-remote");
  int rc = -1;
  run_capture({"/bin/sh", "-c", "printf \"%s\\n\" \"$0\" | \"$1\" web-password --data-dir \"$2\" >/dev/null",
               "a long password", bin("primaryctl"), data},
              &rc);
  ASSERT_EQ(rc, 0);
  {
    Process p;
    const std::string url = start_web(p, s, data, s.dir().file("web-remote.log"), address + ":0");
    ASSERT_FALSE(url.empty()) << read_file(s.dir().file("web-remote.log"));
    Http r = http_get(url + "/metrics");
    EXPECT_EQ(r.status, 403) << r.body;
    EXPECT_EQ(http_get(url + "/metrics", {"Authorization: Bearer anything-0123456789"}).status, 403);
  }
  const std::string token = "remote-token-0123456789abcdef";
  const std::string file = write_token(s.dir().file("secrets/remote.token"), token, 0600);
  Process p;
  const std::string url =
      start_web(p, s, data, s.dir().file("web-remote2.log"), address + ":0", {"--metrics-token-file", file});
  ASSERT_FALSE(url.empty()) << read_file(s.dir().file("web-remote2.log"));
  EXPECT_EQ(http_get(url + "/metrics").status, 401);
  EXPECT_EQ(http_get(url + "/metrics", {"Authorization: Bearer " + token + "0"}).status, 401);
  Http good = http_get(url + "/metrics", {"Authorization: Bearer " + token});
  ASSERT_EQ(good.status, 200) << good.body;
  EXPECT_TRUE(parse_exposition(good.body).errors.empty());
}

// No broker behind the console: a short 503, and the console keeps serving.
TEST(MetricsWithoutBroker, Answers503) {
  curl_global_init(CURL_GLOBAL_ALL);
  TempDir dir("mnobroker");
  const std::string data = dir.file("web");
  Process p = Process::start({bin("primary-web"), "--web", "127.0.0.1:0", "--data-dir", data, "--front",
                              "ipc://" + dir.file("nothing.sock"), "--events", "ipc://" + dir.file("nothing-ev.sock")},
                             {}, dir.file("web.log"));
  ASSERT_TRUE(wait_until([&] { return !web_address(data).empty(); }, 15s)) << read_file(dir.file("web.log"));
  Http r = http_get(web_address(data) + "/metrics");
  EXPECT_EQ(r.status, 503) << r.body;
  EXPECT_NE(r.body.find("UNAVAILABLE"), std::string::npos) << r.body;
  EXPECT_LT(r.body.size(), 300u);
  EXPECT_TRUE(p.alive());
}

}  // namespace
}  // namespace primary::test
