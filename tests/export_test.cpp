// The fleet export: `primaryctl computers --csv` and `--jsonl` and the
// console's "Export CSV" against a real stack of 10,000 computers. The CSV
// must parse with Python's csv module, hold one row per computer plus the
// header, guard a cell a spreadsheet would evaluate, and be the same bytes
// from primaryctl and from the console; every JSON line must parse.
#include <gtest/gtest.h>
#include <curl/curl.h>
#include <unistd.h>
#include <sys/wait.h>

#include <cstdio>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <iostream>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "common/fleet_export.hpp"
#include "common/keys.hpp"
#include "common/names.hpp"
#include "common/redis.hpp"
#include "tests/support/http.hpp"
#include "tests/support/stack.hpp"
#include "tests/support/util.hpp"

namespace primary::test {
namespace {

using namespace std::chrono_literals;

TEST(FleetExportFormat, CellsAreQuotedAndGuarded) {
  EXPECT_EQ(csv_cell("PC-1"), "PC-1");
  EXPECT_EQ(csv_cell(""), "");
  EXPECT_EQ(csv_cell("a,b"), "\"a,b\"");
  EXPECT_EQ(csv_cell("say \"hi\""), "\"say \"\"hi\"\"\"");
  EXPECT_EQ(csv_cell("two\nlines"), "\"two\nlines\"");
  EXPECT_EQ(csv_cell("=1+2"), "'=1+2");
  EXPECT_EQ(csv_cell("+1"), "'+1");
  EXPECT_EQ(csv_cell("-PC"), "'-PC");
  EXPECT_EQ(csv_cell("@SUM(A1)"), "'@SUM(A1)");
  EXPECT_EQ(csv_cell("=HYPERLINK(\"x\",\"y\")"), "\"'=HYPERLINK(\"\"x\"\",\"\"y\"\")\"");
  EXPECT_EQ(csv_cell("1=1"), "1=1");
  EXPECT_EQ(iso_utc_seconds(0), "1970-01-01T00:00:00Z");
  EXPECT_EQ(iso_utc_seconds(1796688000123), "2026-12-08T00:00:00Z");
  const Value item(Value::Map{{field::kComputer, Value("PC-1")},
                              {field::kLicense, Value("L-1")},
                              {field::kState, Value("active")},
                              {field::kReservedAt, Value(int64_t{1796688000000})},
                              {field::kLastSeen, Value(int64_t{1796688060000})},
                              {field::kVersion, Value("=2,0")}});
  EXPECT_EQ(export_row(ExportFormat::Csv, item),
            "PC-1,active,L-1,2026-12-08T00:00:00Z,,2026-12-08T00:01:00Z,\"'=2,0\",\r\n");
  EXPECT_EQ(export_row(ExportFormat::Jsonl, item),
            "{\"name\":\"PC-1\",\"state\":\"active\",\"license\":\"L-1\",\"reserved_at\":\"2026-12-08T00:00:00Z\","
            "\"first_seen\":null,\"last_seen\":\"2026-12-08T00:01:00Z\",\"version\":\"=2,0\",\"peer\":null}\n");
}

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// Runs a shell command line; its exit status, and its stdout in `out`.
int sh(const std::string& line, std::string* out = nullptr) {
  FILE* p = ::popen(line.c_str(), "r");
  if (!p) return -1;
  std::string text;
  char buf[4096];
  for (size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) text.append(buf, n);
  const int status = ::pclose(p);
  if (out) *out = std::move(text);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

class FleetExportTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    curl_global_init(CURL_GLOBAL_ALL);
    StackOptions o;
    o.admin_workers = 1;
    stack_ = new Stack(o);
    ASSERT_TRUE(stack_->ok());
    ASSERT_TRUE(ok(stack_->unlock("SN-EXPORT", kFleet)));
    std::string names;
    for (int i = 0; i < kFleet; ++i) names += "pc-" + std::to_string(i) + "\n";
    const std::string list = stack_->dir().file("names.txt");
    std::ofstream(list) << names;
    ASSERT_EQ(sh(ctl() + " reserve --from " + shell_quote(list) + " >/dev/null"), 0);
    // One computer reports a version a spreadsheet would take for a formula,
    // another one with a comma and a quote.
    for (const auto& [name, version] : std::vector<std::pair<std::string, std::string>>{
             {"PC-7", "=HYPERLINK(\"http://x\",\"y\")"}, {"PC-8", "1,\"2\""}}) {
      Value r = stack_->call(svc::kLicenseControl, opname::kSetupInfo, {{field::kComputer, Value(name)}});
      ASSERT_TRUE(ok(r)) << to_json(r);
      Value hb = stack_->call(svc::kLicense, opname::kHeartbeat,
                              {{field::kComputer, Value(name)}, {field::kLicense, Value(str(r, field::kLicense))},
                               {field::kVersion, Value(version)}});
      ASSERT_EQ(str(hb, field::kStatus), status::kLicensed) << to_json(hb);
    }
  }
  static void TearDownTestSuite() {
    delete stack_;
    stack_ = nullptr;
  }
  static std::string ctl() {
    return shell_quote(bin("primaryctl")) + " --server " + shell_quote(stack_->front());
  }

  static constexpr int kFleet = 10000;
  static Stack* stack_;
};
Stack* FleetExportTest::stack_ = nullptr;

TEST_F(FleetExportTest, CsvOfTheWholeFleetParsesAndIsGuarded) {
  const std::string csv = stack_->dir().file("fleet.csv");
  ASSERT_EQ(sh(ctl() + " computers --csv >" + shell_quote(csv)), 0);
  // Python's csv module: 10,001 rows of 8 cells, each name once, the
  // guarded versions as text.
  const std::string check = R"py(
import csv, sys
rows = list(csv.reader(open(sys.argv[1], newline='')))
assert rows[0] == ['name','state','license','reserved_at','first_seen','last_seen','version','peer'], rows[0]
assert all(len(r) == 8 for r in rows), [r for r in rows if len(r) != 8][:3]
names = {r[0] for r in rows[1:]}
by = {r[0]: r for r in rows[1:]}
assert by['PC-7'][6] == '\'=HYPERLINK("http://x","y")', by['PC-7']
assert by['PC-8'][6] == '1,"2"', by['PC-8']
assert by['PC-7'][1] == 'active' and by['PC-7'][5].endswith('Z') and by['PC-7'][4].endswith('Z'), by['PC-7']
assert by['PC-9'][1] == 'reserved' and by['PC-9'][5] == '' and by['PC-9'][3].endswith('Z'), by['PC-9']
assert by['PC-7'][7] != '', by['PC-7']
bad = [c for r in rows[1:] for c in r if c[:1] in ('=', '+', '-', '@')]
assert not bad, bad[:3]
print(len(rows), len(names))
)py";
  std::ofstream(stack_->dir().file("check.py")) << check;
  std::string out;
  ASSERT_EQ(sh("/usr/bin/python3 " + shell_quote(stack_->dir().file("check.py")) + " " + shell_quote(csv) + " 2>&1", &out), 0)
      << out;
  EXPECT_EQ(out, "10001 10000\n");

  // Lines end in CRLF (RFC 4180).
  const std::string text = read_file(csv);
  EXPECT_TRUE(text.starts_with(std::string(kFleetCsvHeader) + "\r\n")) << text.substr(0, 100);

  // --state: only those computers.
  ASSERT_EQ(sh(ctl() + " computers --csv --state active", &out), 0);
  // The header, PC-7 and PC-8.
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 3) << out;
  EXPECT_NE(out.find("\r\nPC-7,active,"), std::string::npos) << out;

  // --csv goes with neither --json nor --limit, nor --jsonl.
  EXPECT_EQ(sh(ctl() + " computers --csv --json >/dev/null 2>&1"), 2);
  EXPECT_EQ(sh(ctl() + " computers --csv --limit 5 >/dev/null 2>&1"), 2);
  EXPECT_EQ(sh(ctl() + " computers --csv --jsonl >/dev/null 2>&1"), 2);
}

TEST_F(FleetExportTest, JsonLinesParse) {
  const std::string jsonl = stack_->dir().file("fleet.jsonl");
  ASSERT_EQ(sh(ctl() + " computers --jsonl >" + shell_quote(jsonl)), 0);
  const std::string check = R"py(
import json, sys
lines = open(sys.argv[1]).read().split('\n')
assert lines[-1] == ''
objs = [json.loads(l) for l in lines[:-1]]
by = {o['name']: o for o in objs}
assert by['PC-7']['version'] == '=HYPERLINK("http://x","y")', by['PC-7']
assert by['PC-9']['last_seen'] is None and by['PC-9']['state'] == 'reserved', by['PC-9']
assert list(objs[0].keys()) == ['name','state','license','reserved_at','first_seen','last_seen','version','peer']
print(len(objs), len(by))
)py";
  std::ofstream(stack_->dir().file("check_jsonl.py")) << check;
  std::string out;
  ASSERT_EQ(sh("/usr/bin/python3 " + shell_quote(stack_->dir().file("check_jsonl.py")) + " " + shell_quote(jsonl) + " 2>&1", &out), 0)
      << out;
  EXPECT_EQ(out, "10000 10000\n");
}

// primary-web for the stack, logged in: its base URL and the session cookie.
struct Console {
  Process web;
  std::string base, session;
};
void start_console(Stack& stack, Console* c) {
  const std::string data = stack.dir().file("web");
  const std::string password = "export test password";
  ASSERT_EQ(sh("printf '%s\\n' " + shell_quote(password) + " | " + shell_quote(bin("primaryctl")) +
               " web-password --data-dir " + shell_quote(data) + " >/dev/null"),
            0);
  ::unlink((data + "/run/web.address").c_str());
  c->web = Process::start({bin("primary-web"), "--web", "127.0.0.1:0", "--data-dir", data, "--front",
                           stack.front(), "--events", stack.events()},
                          {}, stack.dir().file("web.log"));
  ASSERT_TRUE(wait_until([&] { return !web_address(data).empty(); }, 15s)) << read_file(stack.dir().file("web.log"));
  c->base = web_address(data);

  // Log in: the login form's token and cookie, then the password.
  Http form = http_get(c->base + "/login");
  std::smatch m;
  static const std::regex token_re(R"re(name="csrf" value="([^"]+)")re");
  ASSERT_TRUE(std::regex_search(form.body, m, token_re)) << form.body;
  const std::string token = m[1].str();
  std::string login_cookie = form.header("set-cookie");
  login_cookie = login_cookie.substr(0, login_cookie.find(';'));
  char* escaped = curl_easy_escape(nullptr, password.c_str(), static_cast<int>(password.size()));
  const std::string body = "csrf=" + token + "&password=" + escaped;
  curl_free(escaped);
  Http login = http_request(c->base + "/login",
                            {"Cookie: " + login_cookie, "Content-Type: application/x-www-form-urlencoded"}, &body);
  ASSERT_EQ(login.status, 303) << login.body;
  c->session = login.header("set-cookie");
  c->session = c->session.substr(0, c->session.find(';'));
}

TEST_F(FleetExportTest, ConsoleExportIsTheSameBytesStreamed) {
  Console console;
  ASSERT_NO_FATAL_FAILURE(start_console(*stack_, &console));
  const std::string base = console.base, session = "Cookie: " + console.session;
  // Without a session: to the login page.
  EXPECT_EQ(http_get(base + "/computers.csv").status, 303);
  // The Computers page links to the export.
  Http page = http_get(base + "/computers", {session});
  EXPECT_NE(page.body.find("<a id=\"export\" href=\"/computers.csv?sort=name&amp;state=\" download>Export CSV</a>"),
            std::string::npos)
      << page.body;

  auto peak_rss = [&] {
    std::ifstream status("/proc/" + std::to_string(console.web.pid()) + "/status");
    for (std::string line; std::getline(status, line);)
      if (line.starts_with("VmHWM:")) return line.substr(6);
    return std::string("?");
  };
  const std::string peak_before = peak_rss();
  Http csv = http_get(base + "/computers.csv", {session});
  ASSERT_EQ(csv.status, 200);
  EXPECT_EQ(csv.header("content-type"), "text/csv; charset=utf-8");
  EXPECT_EQ(csv.header("transfer-encoding"), "chunked");
  EXPECT_EQ(csv.header("content-disposition"), "attachment; filename=\"computers.csv\"");
  EXPECT_EQ(csv.header("content-security-policy"),
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
            "form-action 'self'; frame-ancestors 'none'; base-uri 'none'");
  ASSERT_EQ(sh(ctl() + " computers --csv >" + shell_quote(stack_->dir().file("again.csv"))), 0);
  EXPECT_TRUE(csv.body == read_file(stack_->dir().file("again.csv")))
      << "the console's export differs from primaryctl's: " << csv.body.size() << " bytes against "
      << read_file(stack_->dir().file("again.csv")).size();
  EXPECT_EQ(std::count(csv.body.begin(), csv.body.end(), '\n'), kFleet + 1);
  // A figure, not a bound: the console's peak RSS before and after the export.
  std::cout << "primary-web peak RSS before the export:" << peak_before << ", after exporting " << kFleet
            << " computers:" << peak_rss() << "\n";

  Http lost = http_get(base + "/computers.csv?state=lost", {session});
  EXPECT_EQ(lost.status, 200);
  EXPECT_EQ(lost.body, std::string(kFleetCsvHeader) + "\r\n");
  EXPECT_EQ(http_get(base + "/computers.csv?state=bogus", {session}).status, 400);
  EXPECT_EQ(http_get(base + "/computers.csv?sort=bogus", {session}).status, 400);
}

// The Overview's charts (web/charts.hpp) over a known history: the number
// of points each chart draws, and its last value.
std::string figure(const std::string& page, const std::string& id) {
  const auto start = page.find("<figure class=\"chart\" id=\"chart-" + id + "\"");
  if (start == std::string::npos) return {};
  return page.substr(start, page.find("</figure>", start) - start);
}
std::string attr(const std::string& text, const std::string& name) {
  const auto at = text.find(name + "=\"");
  if (at == std::string::npos) return "(none)";
  const auto from = at + name.size() + 2;
  return text.substr(from, text.find('"', from) - from);
}
size_t count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

TEST(OverviewCharts, DrawTheKnownHistory) {
  curl_global_init(CURL_GLOBAL_ALL);
  StackOptions o;
  o.admin_workers = 1;
  o.admin_args = {"--history-interval-ms", "3600000"};  // the sample at start only
  Stack stack(o);
  ASSERT_TRUE(stack.ok());
  Redis redis(*parse_redis_url(stack.redis().url()));
  constexpr int64_t kHour = 3600 * 1000, kDay = 24 * kHour;
  const int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch()).count();
  // 48 hours, the 11th missing: purchased 100 + i, reserved 50 + i, i
  // active, 2 lost, 48 - i never seen, 10 i heartbeats.
  for (int64_t i = 1; i <= 48; ++i) {
    if (i == 11) continue;
    const int64_t start = (now / kHour - (48 - i)) * 3600;
    ASSERT_TRUE(redis.command({"HSET", keys::history_key(false, start), field::kPurchased, std::to_string(100 + i),
                               field::kReserved, std::to_string(50 + i), field::kActive, std::to_string(i),
                               field::kLost, "2", field::kNeverSeen, std::to_string(48 - i), field::kHeartbeats,
                               std::to_string(10 * i)}));
  }
  // 30 days: purchased 200 + d, d MiB served.
  for (int64_t d = 1; d <= 30; ++d)
    ASSERT_TRUE(redis.command({"HSET", keys::history_key(true, (now / kDay - (30 - d)) * 86400), field::kPurchased,
                               std::to_string(200 + d), field::kReserved, "5", field::kBytesServed,
                               std::to_string(d * 1024 * 1024)}));

  Console console;
  ASSERT_NO_FATAL_FAILURE(start_console(stack, &console));
  Http page = http_get(console.base + "/", {"Cookie: " + console.session});
  ASSERT_EQ(page.status, 200);
  EXPECT_EQ(page.body.find("<script"), page.body.find("<script src=\"/static/app.js\""));
  const std::string licenses = figure(page.body, "licenses");
  EXPECT_EQ(attr(licenses, "data-points"), "47") << licenses;
  EXPECT_EQ(attr(licenses, "data-last"), "148");
  EXPECT_EQ(count(licenses, "<circle class=\"dot\" data-series=\"purchased\""), 47u);
  EXPECT_EQ(count(licenses, "<circle class=\"dot\" data-series=\"reserved\""), 47u);
  EXPECT_NE(licenses.find("stroke-dasharray=\"6 4\""), std::string::npos) << "reserved is dashed, not only coloured";
  EXPECT_NE(licenses.find(">purchased 148</text>"), std::string::npos) << licenses;
  EXPECT_NE(licenses.find(": reserved 98 licenses</title>"), std::string::npos) << licenses;
  const std::string fleet = figure(page.body, "fleet");
  EXPECT_EQ(attr(fleet, "data-points"), "47");
  EXPECT_EQ(attr(fleet, "data-last"), "48");
  EXPECT_EQ(count(fleet, "<polygon class=\"series\""), 3u);
  EXPECT_NE(fleet.find("url(#fleet-p1)"), std::string::npos) << "lost is hatched";
  const std::string heartbeats = figure(page.body, "heartbeats");
  EXPECT_EQ(attr(heartbeats, "data-points"), "47");
  EXPECT_EQ(attr(heartbeats, "data-last"), "480");
  EXPECT_EQ(count(heartbeats, "<rect class=\"bar\""), 47u);
  const std::string downloads = figure(page.body, "downloads");
  EXPECT_EQ(attr(downloads, "data-points"), "30");
  EXPECT_EQ(attr(downloads, "data-last"), "30");
  EXPECT_NE(downloads.find(" MiB</title>"), std::string::npos) << downloads;

  // 30 days: the license chart by day.
  page = http_get(console.base + "/?period=30d", {"Cookie: " + console.session});
  ASSERT_EQ(page.status, 200);
  EXPECT_EQ(attr(figure(page.body, "licenses"), "data-points"), "30");
  EXPECT_EQ(attr(figure(page.body, "licenses"), "data-last"), "230");
  EXPECT_EQ(attr(figure(page.body, "heartbeats"), "data-points"), "47");
  EXPECT_NE(page.body.find("<option value=\"30d\" selected>"), std::string::npos);
  page = http_get(console.base + "/?period=1y", {"Cookie: " + console.session});
  EXPECT_EQ(attr(figure(page.body, "licenses"), "data-points"), "30");
  EXPECT_EQ(page.header("content-security-policy").find("default-src 'none'"), 0u);
}

}  // namespace
}  // namespace primary::test
