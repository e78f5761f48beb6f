// The web console (primary-web) over real HTTP (libcurl) against a real
// stack: broker, licensing and admin workers, Redis. It must refuse every
// page without a session, throttle password guessing, refuse forms without
// the session's CSRF token, show what the server holds, and follow the
// event stream live and across reconnects without gaps or duplicates.
// primary-server must start it by default and not with --no-web.
#include <gtest/gtest.h>
#include <curl/curl.h>
#include <signal.h>

#include <algorithm>
#include <condition_variable>
#include <filesystem>
#include <atomic>
#include <map>
#include <mutex>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "common/process.hpp"
#include "primary/client/setup.hpp"
#include "tests/support/http.hpp"
#include "tests/support/procfs.hpp"
#include "tests/support/stack.hpp"
#include "tests/support/util.hpp"
#include "web/connection_pool.hpp"

namespace primary::test {
namespace {

const std::string kPassword = "correct horse battery";

// One Server-Sent Events connection read on its own thread.
class EventStream {
 public:
  EventStream(const std::string& url, std::vector<std::string> headers) {
    thread_ = std::thread([this, url, headers = std::move(headers)] {
      CURL* c = curl_easy_init();
      curl_easy_setopt(c, CURLOPT_URL, url.c_str());
      curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, +[](char* d, size_t s, size_t n, void* self) {
        auto* me = static_cast<EventStream*>(self);
        std::lock_guard<std::mutex> lock(me->mu_);
        me->text_.append(d, s * n);
        return s * n;
      });
      curl_easy_setopt(c, CURLOPT_WRITEDATA, this);
      curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
      curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, +[](void* self, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
        return static_cast<EventStream*>(self)->stop_.load() ? 1 : 0;
      });
      curl_easy_setopt(c, CURLOPT_XFERINFODATA, this);
      curl_slist* list = nullptr;
      for (const auto& h : headers) list = curl_slist_append(list, h.c_str());
      curl_easy_setopt(c, CURLOPT_HTTPHEADER, list);
      curl_easy_perform(c);
      long status = 0;
      curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
      status_ = status;
      curl_slist_free_all(list);
      curl_easy_cleanup(c);
    });
  }
  ~EventStream() { close(); }
  void close() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  std::string text() {
    std::lock_guard<std::mutex> lock(mu_);
    return text_;
  }
  // (id, data) of every complete event so far.
  std::vector<std::pair<std::string, std::string>> events() {
    std::vector<std::pair<std::string, std::string>> out;
    const std::string t = text();
    size_t start = 0;
    for (size_t end; (end = t.find("\n\n", start)) != std::string::npos; start = end + 2) {
      std::string id, data;
      std::istringstream block(t.substr(start, end - start));
      for (std::string line; std::getline(block, line);) {
        if (line.rfind("id: ", 0) == 0) id = line.substr(4);
        if (line.rfind("data: ", 0) == 0) data = line.substr(6);
      }
      if (!data.empty()) out.emplace_back(id, data);
    }
    return out;
  }
  long status() const { return status_; }

 private:
  std::thread thread_;
  std::mutex mu_;
  std::string text_;
  std::atomic<bool> stop_{false};
  std::atomic<long> status_{0};
};

// Events of one computer in a stream, by data.
std::vector<std::string> ids_for(const std::vector<std::pair<std::string, std::string>>& events,
                                 const std::string& computer) {
  std::vector<std::string> out;
  for (const auto& [id, data] : events)
    if (data.find("\"computer\":\"" + computer + "\"") != std::string::npos) out.push_back(id);
  return out;
}

int set_password(const std::string& data_dir, const std::string& password) {
  int rc = -1;
  run_capture({"/bin/sh", "-c",
               "printf \"%s\\n\" \"$0\" | \"$1\" web-password --data-dir \"$2\" >/dev/null", password,
               bin("primaryctl"), data_dir},
              &rc);
  return rc;
}

// Starts primary-web on 127.0.0.1:0 for `stack` with `data_dir`; waits for its address.
Process start_web(Stack& stack, const std::string& data_dir, const std::string& log,
                  std::vector<std::string> extra = {}) {
  ::unlink((data_dir + "/run/web.address").c_str());
  std::vector<std::string> argv = {bin("primary-web"), "--web", "127.0.0.1:0", "--data-dir", data_dir,
                                   "--front", stack.front(), "--events", stack.events()};
  argv.insert(argv.end(), extra.begin(), extra.end());
  Process p = Process::start(argv, {}, log);
  EXPECT_TRUE(wait_until([&] { return !web_address(data_dir).empty(); }, 15s)) << read_file(log);
  return p;
}

// Stream ids "<ms>-<seq>" in order.
bool id_less(const std::string& a, const std::string& b) {
  auto parts = [](const std::string& id) {
    const auto dash = id.find('-');
    return std::make_pair(std::stoull(id.substr(0, dash)), std::stoull(id.substr(dash + 1)));
  };
  return parts(a) < parts(b);
}

int count_of(const std::string& page, const std::string& key) {
  const std::regex re("id=\"count-" + key + "\"><b>([0-9]+)</b>");
  std::smatch m;
  return std::regex_search(page, m, re) ? std::stoi(m[1].str()) : -1;
}

class WebConsole : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    curl_global_init(CURL_GLOBAL_ALL);
    StackOptions o;
    o.admin_workers = 1;
    stack_ = new Stack(o);
    ASSERT_TRUE(stack_->ok());
    ASSERT_TRUE(ok(stack_->unlock("SN-WEB-1", 50)));
    data_ = stack_->dir().file("web");
    ASSERT_EQ(set_password(data_, kPassword), 0);
    web_ = new Process(start_web(*stack_, data_, stack_->dir().file("web.log")));
  }
  static void TearDownTestSuite() {
    delete web_;
    delete stack_;
    web_ = nullptr;
    stack_ = nullptr;
  }
  void TearDown() override {
    ASSERT_TRUE(web_->alive()) << "primary-web died: " << read_file(stack_->dir().file("web.log"));
  }
  static Browser browser() { return Browser(web_address(data_)); }
  static Browser logged_in() {
    Browser b = browser();
    Http r = b.login(kPassword);
    EXPECT_EQ(r.status, 303) << r.body;
    return b;
  }

  static Stack* stack_;
  static Process* web_;
  static std::string data_;
};
Stack* WebConsole::stack_ = nullptr;
Process* WebConsole::web_ = nullptr;
std::string WebConsole::data_;

size_t thread_count() {
  size_t n = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator("/proc/self/task")) ++n;
  return n;
}

// primary-web's task queue: a thread per open connection, started when one
// is needed and never more than its maximum; the time with no connection
// open is what --idle-exit-s reads.
TEST(ConnectionPool, StartsThreadsAsConnectionsNeedThemUpToItsMaximum) {
  web::ConnectionActivity activity;
  const size_t before = thread_count();
  web::ConnectionPool pool(3, activity);
  EXPECT_EQ(thread_count(), before) << "no thread before the first connection";

  std::mutex mu;
  std::condition_variable cv;
  bool release = false;
  int running = 0, peak = 0;
  std::set<std::thread::id> threads;
  std::atomic<int> done{0};
  for (int i = 0; i < 5; ++i)
    pool.enqueue([&] {
      std::unique_lock<std::mutex> lock(mu);
      ++running;
      peak = std::max(peak, running);
      threads.insert(std::this_thread::get_id());
      cv.notify_all();
      cv.wait(lock, [&] { return release; });
      --running;
      ++done;
    });
  {
    std::unique_lock<std::mutex> lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, 10s, [&] { return running == 3; }));
  }
  EXPECT_EQ(activity.idle_for(), std::chrono::steady_clock::duration::zero());
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(thread_count(), before + 3);
  {
    std::lock_guard<std::mutex> lock(mu);
    EXPECT_EQ(running, 3) << "a fourth connection ran beside the maximum";
    release = true;
  }
  cv.notify_all();
  ASSERT_TRUE(wait_until([&] { return done == 5; }, 10s));
  EXPECT_TRUE(wait_until([&] { return activity.idle_for() > std::chrono::steady_clock::duration::zero(); }, 5s));
  EXPECT_EQ(peak, 3);
  EXPECT_EQ(threads.size(), 3u) << "the queued connections reuse the threads";
  pool.shutdown();
  EXPECT_EQ(thread_count(), before);
}

TEST_F(WebConsole, NoPageWithoutASession) {
  Browser b = browser();
  for (const std::string path : {"/", "/computers", "/computers/PC-1", "/computers/PC-1/setup.json",
                                 "/activity", "/updates", "/firewall"}) {
    Http r = b.get(path);
    EXPECT_EQ(r.status, 303) << path;
    EXPECT_EQ(r.header("location"), "/login") << path;
    EXPECT_EQ(r.body.find("SN-WEB-1"), std::string::npos) << path;
  }
  EXPECT_EQ(b.get("/events/stream").status, 401);
  // A made-up session id is no session.
  b.cookies()["ps_session"] = "forged-session-id";
  EXPECT_EQ(b.get("/").status, 303);
  EXPECT_EQ(b.post("/computers/reserve", {{"csrf", "x"}, {"computer", "NOSESSION"}}).status, 403);
  EXPECT_EQ(stack_->call("admin", "computer", {{"computer", Value("NOSESSION")}}).find("code")->as_str(),
            "NOT_FOUND");

  Http login = b.get("/login");
  EXPECT_EQ(login.status, 200);
  EXPECT_NE(login.body.find("name=\"password\""), std::string::npos);
  EXPECT_EQ(login.header("x-frame-options"), "DENY");
  EXPECT_NE(login.header("content-security-policy").find("script-src 'self'"), std::string::npos);
  EXPECT_EQ(login.header("cache-control"), "no-store");
  EXPECT_NE(login.body.find("href=\"/static/icon.svg\""), std::string::npos);
  // The icon needs no session (browsers ask for /favicon.ico on their own).
  for (const std::string path : {"/static/icon.svg", "/favicon.ico"}) {
    Http icon = b.get(path);
    EXPECT_EQ(icon.status, 200) << path;
    EXPECT_EQ(icon.header("content-type"), "image/svg+xml") << path;
    EXPECT_EQ(icon.body.rfind("<svg", 0), 0u) << path;
  }
}

TEST_F(WebConsole, LoginGivesAProtectedSessionCookieAndRealValues) {
  Browser b = browser();
  Http r = b.login(kPassword);
  ASSERT_EQ(r.status, 303) << r.body;
  EXPECT_EQ(r.header("location"), "/");
  const std::string cookie = r.header("set-cookie");
  EXPECT_NE(cookie.find("ps_session="), std::string::npos) << cookie;
  EXPECT_NE(cookie.find("HttpOnly"), std::string::npos) << cookie;
  EXPECT_NE(cookie.find("SameSite=Strict"), std::string::npos) << cookie;
  EXPECT_EQ(cookie.find("Secure"), std::string::npos) << "plain HTTP: " << cookie;
  EXPECT_GE(b.cookies()["ps_session"].size(), 40u);

  Http page = b.get("/");
  ASSERT_EQ(page.status, 200) << page.body;
  EXPECT_NE(page.body.find("<span id=\"serial\" class=\"code\">SN-WEB-1</span>"), std::string::npos);
  const Value status = stack_->call("admin", "status");
  EXPECT_EQ(count_of(page.body, "purchased"), 50);
  EXPECT_EQ(count_of(page.body, "reserved"), num(status, "reserved"));
  const Value reg = stack_->call("license.control", "registration");
  EXPECT_NE(page.body.find(str(reg, "registration_code")), std::string::npos);
  EXPECT_NE(page.body.find("<td>license</td>"), std::string::npos) << "services and worker counts";

  Http fw = b.get("/firewall");
  EXPECT_EQ(fw.status, 200);
  const std::string front_port = stack_->front().substr(stack_->front().rfind(':') + 1);
  EXPECT_NE(fw.body.find("nft add rule inet filter input tcp dport " + front_port), std::string::npos) << fw.body;
}

TEST_F(WebConsole, FormsWithoutTheRightTokenAreRefused) {
  Browser b = logged_in();
  const std::string token = b.token("/computers");
  ASSERT_FALSE(token.empty());
  EXPECT_EQ(b.post("/computers/reserve", {{"computer", "CSRF-1"}}).status, 403);
  EXPECT_EQ(b.post("/computers/reserve", {{"csrf", token + "x"}, {"computer", "CSRF-1"}}).status, 403);
  EXPECT_EQ(b.post("/computers/reserve", {{"csrf", ""}, {"computer", "CSRF-1"}}).status, 403);
  // Another session's token is no good either.
  Browser other = logged_in();
  EXPECT_EQ(b.post("/computers/reserve", {{"csrf", other.token("/computers")}, {"computer", "CSRF-1"}}).status, 403);
  EXPECT_EQ(b.post("/updates/sync", {}).status, 403);
  EXPECT_EQ(b.post("/logout", {}).status, 403);
  EXPECT_EQ(str(stack_->call("admin", "computer", {{"computer", Value("CSRF-1")}}), "code"), "NOT_FOUND");
  // The login form has its own token.
  Browser fresh = browser();
  fresh.get("/login");
  EXPECT_EQ(fresh.post("/login", {{"password", kPassword}}).status, 403);
  EXPECT_EQ(fresh.cookies().count("ps_session"), 0u);
}

TEST_F(WebConsole, ReserveThroughTheFormThenComputerPageAndSetupFile) {
  Browser b = logged_in();
  const int before = count_of(b.get("/").body, "reserved");
  ASSERT_GE(before, 0);
  Http r = b.post("/computers/reserve", {{"csrf", b.token("/computers")}, {"computer", "web-pc-1"}});
  ASSERT_EQ(r.status, 303) << r.body;
  EXPECT_EQ(r.header("location"), "/computers/WEB-PC-1");

  const Value info = stack_->call("license.control", "setup_info", {{"computer", Value("WEB-PC-1")}});
  ASSERT_TRUE(ok(info));
  Http page = b.get("/computers/WEB-PC-1");
  ASSERT_EQ(page.status, 200) << page.body;
  EXPECT_NE(page.body.find("<span id=\"license\" class=\"code\">" + str(info, "license") + "</span>"),
            std::string::npos) << page.body;
  EXPECT_NE(page.body.find("Reserved license " + str(info, "license")), std::string::npos) << "flash";
  EXPECT_NE(page.body.find("<td>license.reserved</td><td>WEB-PC-1</td>"), std::string::npos) << "recent events";
  EXPECT_EQ(count_of(b.get("/").body, "reserved"), before + 1);
  EXPECT_EQ(page.body.find("id=\"clock-skew\""), std::string::npos);  // never seen: no skew
  // A heartbeat from a clock 2 h behind: licensed, and the page says so.
  const int64_t now_s = std::chrono::duration_cast<std::chrono::seconds>(
                            std::chrono::system_clock::now().time_since_epoch()).count();
  const Value hb = stack_->call("license", "heartbeat", {{"computer", Value("WEB-PC-1")},
                                                         {"license", Value(str(info, "license"))},
                                                         {"client_time", Value(now_s - 7200)}});
  ASSERT_EQ(str(hb, "status"), "licensed");
  page = b.get("/computers/WEB-PC-1");
  EXPECT_NE(page.body.find("<span id=\"clock-skew\">-7"), std::string::npos) << page.body;
  Http listing = b.get("/computers?sort=name&limit=1000");
  EXPECT_NE(listing.body.find(">WEB-PC-1</a>"), std::string::npos);
  EXPECT_EQ(b.get("/computers/find?name=web-pc-1").header("location"), "/computers/WEB-PC-1");

  Http setup = b.get("/computers/WEB-PC-1/setup.json");
  ASSERT_EQ(setup.status, 200);
  EXPECT_NE(setup.header("content-type").find("application/json"), std::string::npos);
  EXPECT_NE(setup.header("content-disposition").find("attachment"), std::string::npos);
  auto parsed = client::parse_setup(setup.body);
  ASSERT_TRUE(parsed) << parsed.error() << "\n" << setup.body;
  EXPECT_EQ(parsed->computer, "WEB-PC-1");
  EXPECT_EQ(parsed->license, str(info, "license"));
  EXPECT_EQ(parsed->lease_key, str(info, "lease_key"));
  EXPECT_EQ(setup.body.find("\"ok\""), std::string::npos);
}

// The computer page shows what the vendor needs for a seat code and
// applies the code the vendor sends back (CSRF as every form).
TEST_F(WebConsole, ComputerPageShowsTheSeatRequestAndAppliesASeatCode) {
  Browser b = logged_in();
  const Value r = stack_->call("license.control", "reserve", {{"computer", Value("SEAT-PC-1")}});
  ASSERT_TRUE(ok(r));
  const std::string registration =
      str(stack_->call("license.control", "registration", {}), "registration_code");
  Http page = b.get("/computers/SEAT-PC-1");
  ASSERT_EQ(page.status, 200);
  EXPECT_NE(page.body.find("<pre id=\"seat-request\">registration  " + registration + "\ncomputer      SEAT-PC-1\n"
                           "license       " + str(r, "license") + "</pre>"),
            std::string::npos)
      << page.body;
  const std::string code =
      run_capture({bin("primary-vendor"), "transfer", "--key", stack_->vendor_key_file(), "--registration",
                   registration, "--computer", "SEAT-PC-1", "--license", str(r, "license"), "--to", "seat-pc-2"});
  EXPECT_EQ(b.post("/computers/seat-code", {{"op", "transfer"}, {"code", code}}).status, 403);
  const std::string t = b.token("/computers/SEAT-PC-1");
  EXPECT_EQ(b.post("/computers/seat-code", {{"csrf", t}, {"op", "retire"}, {"code", code}}).status, 400);
  EXPECT_EQ(b.post("/computers/seat-code", {{"csrf", t}, {"op", "nope"}, {"code", code}}).status, 400);
  Http done = b.post("/computers/seat-code", {{"csrf", t}, {"op", "transfer"}, {"code", code + "\n"}});
  ASSERT_EQ(done.status, 303) << done.body;
  EXPECT_EQ(done.header("location"), "/computers/SEAT-PC-2");
  page = b.get("/computers/SEAT-PC-2");
  EXPECT_NE(page.body.find("Moved the seat of SEAT-PC-1 to SEAT-PC-2"), std::string::npos) << page.body;
  EXPECT_EQ(b.get("/computers/SEAT-PC-1").status, 404);
  Http again = b.post("/computers/seat-code", {{"csrf", t}, {"op", "transfer"}, {"code", code}});
  EXPECT_EQ(again.status, 400);
  EXPECT_NE(again.body.find("INVALID_SEAT_CODE"), std::string::npos) << again.body;
  // Nothing is stale with the default settings (30 and 90 days).
  Http stale = b.get("/computers?stale=1");
  ASSERT_EQ(stale.status, 200);
  EXPECT_NE(stale.body.find("name=\"stale\" value=\"1\" checked"), std::string::npos) << stale.body;
  EXPECT_NE(stale.body.find("No computers on this page."), std::string::npos) << stale.body;
  EXPECT_EQ(b.get("/computers").body.find("class=\"stale\""), std::string::npos);
}

TEST_F(WebConsole, MalformedInputGetsA4xxAndTheConsoleKeepsServing) {
  Browser b = logged_in();
  const std::string t = b.token("/computers");
  Http bad = b.post("/computers/reserve", {{"csrf", t}, {"computer", "bad name<script>"}});
  EXPECT_EQ(bad.status, 400);
  EXPECT_NE(bad.body.find("BAD_REQUEST"), std::string::npos) << bad.body;
  EXPECT_EQ(bad.body.find("<script>"), std::string::npos) << "echoed input must be escaped";
  EXPECT_EQ(b.get("/computers?state=bogus").status, 400);
  EXPECT_EQ(b.get("/computers?limit=0").status, 400);
  EXPECT_EQ(b.get("/computers/has%20space").status, 400);
  EXPECT_EQ(b.get("/computers/NO-SUCH-PC").status, 404);
  EXPECT_EQ(b.get("/activity?since=garbage").status, 400);
  EXPECT_EQ(b.get("/activity?type=%3Cb%3E").status, 400);
  EXPECT_EQ(b.get("/events/stream", {"Last-Event-ID: 12x"}).status, 400);
  EXPECT_EQ(b.post("/unlock", {{"csrf", t}, {"unlock_code", "not-a-code"}}).status, 400);
  EXPECT_EQ(b.post("/updates/approve", {{"csrf", t}, {"component", "c"}, {"version", "1"}, {"rollout", "101"}}).status, 400);
  EXPECT_EQ(b.post("/computers/reserve", {{"csrf", t}, {"computer", std::string(100 * 1024, 'A')}}).status, 413);
  EXPECT_EQ(b.get("/no-such-page").status, 404);
  EXPECT_EQ(b.get("/").status, 200);
}

TEST_F(WebConsole, UpdatesPageShowsAMissingUpdaterCleanly) {
  Browser b = logged_in();
  Http page = b.get("/updates");
  EXPECT_EQ(page.status, 503);
  EXPECT_NE(page.body.find("id=\"updates-error\""), std::string::npos) << page.body;
  EXPECT_NE(page.body.find("UNAVAILABLE"), std::string::npos);
  EXPECT_NE(page.body.find("action=\"/updates/import\""), std::string::npos) << "the page is still whole";
  Http sync = b.post("/updates/sync", {{"csrf", b.token("/updates")}});
  EXPECT_EQ(sync.status, 503);
  EXPECT_NE(sync.body.find("UNAVAILABLE"), std::string::npos);
}

TEST_F(WebConsole, ActivityListsTheReservationAndFiltersByType) {
  Browser b = logged_in();
  ASSERT_EQ(b.post("/computers/reserve", {{"csrf", b.token("/computers")}, {"computer", "ACT-PC-1"}}).status, 303);
  Http page = b.get("/activity");
  ASSERT_EQ(page.status, 200);
  EXPECT_NE(page.body.find("<td>license.reserved</td><td>ACT-PC-1</td>"), std::string::npos) << page.body;
  EXPECT_NE(page.body.find("data-stream=\"/events/stream?since="), std::string::npos);
  Http only = b.get("/activity?type=serial.unlocked");
  ASSERT_EQ(only.status, 200);
  EXPECT_NE(only.body.find("<td>serial.unlocked</td>"), std::string::npos);
  EXPECT_EQ(only.body.find("<td>license.reserved</td>"), std::string::npos);
  Http all = b.get("/activity?since=0-0");
  EXPECT_NE(all.body.find("<td>serial.unlocked</td>"), std::string::npos);
}

// The Actor column and filter: a seat code refused for the stack's own
// (insecure, loopback) client is logged with actor "local".
TEST_F(WebConsole, ActivityShowsWhoActedAndFiltersByActor) {
  Browser b = logged_in();
  const Value r = stack_->call("license.control", "reserve", {{"computer", Value("ACTOR-PC-1")}});
  ASSERT_TRUE(ok(r));
  const std::string registration = str(stack_->call("license.control", "registration", {}), "registration_code");
  const std::string code =
      run_capture({bin("primary-vendor"), "transfer", "--key", stack_->vendor_key_file(), "--registration",
                   registration, "--computer", "ACTOR-PC-1", "--license", str(r, "license"), "--to", "actor-pc-2"});
  EXPECT_EQ(str(stack_->call("license.control", "retire", {{"code", Value(code)}}), "code"), "INVALID_SEAT_CODE");
  const std::string row = "<td>seat_code.refused</td><td>ACTOR-PC-1</td><td>local</td><td>";
  Http page = b.get("/activity");
  ASSERT_EQ(page.status, 200);
  EXPECT_NE(page.body.find("<th>Computer</th><th>Actor</th><th>Details</th>"), std::string::npos) << page.body;
  EXPECT_NE(page.body.find(row), std::string::npos) << page.body;
  EXPECT_NE(page.body.find("<input type=\"text\" name=\"actor\" value=\"\""), std::string::npos) << page.body;
  Http mine = b.get("/activity?actor=local&type=seat_code.refused");
  ASSERT_EQ(mine.status, 200);
  EXPECT_NE(mine.body.find(row), std::string::npos) << mine.body;
  EXPECT_NE(mine.body.find("name=\"actor\" value=\"local\""), std::string::npos) << "the filter stays in the form";
  const auto stream = mine.body.find("data-stream=\"/events/stream?since=");
  ASSERT_NE(stream, std::string::npos) << mine.body;
  EXPECT_NE(mine.body.substr(stream, mine.body.find('"', stream + 13) - stream).find("&amp;actor=local"),
            std::string::npos)
      << "live rows follow the filter too";
  Http none = b.get("/activity?actor=mallory");
  ASSERT_EQ(none.status, 200);
  EXPECT_EQ(none.body.find("ACTOR-PC-1"), std::string::npos) << none.body;
  EXPECT_NE(none.body.find("No events."), std::string::npos) << none.body;
  Http paged = b.get("/activity?since=0-0&actor=local&type=seat_code.refused");
  EXPECT_NE(paged.body.find(row), std::string::npos) << paged.body;
  EXPECT_EQ(b.get("/activity?since=0-0&actor=mallory").body.find("ACTOR-PC-1"), std::string::npos);
  Http computer = b.get("/computers/ACTOR-PC-1");  // its recent events, with the same columns
  EXPECT_NE(computer.body.find(row), std::string::npos) << computer.body;
  EXPECT_EQ(b.get("/activity?actor=" + std::string(129, 'a')).status, 400);
  EXPECT_EQ(b.get("/activity?actor=%01").status, 400);
  EXPECT_EQ(b.get("/events/stream?actor=%01").status, 400);

  // The live stream keeps to the filter, for what it reads from the log and
  // for live events.
  const std::vector<std::string> cookie = {"Cookie: " + b.cookie_header()};
  EventStream local(b.base() + "/events/stream?since=0-0&type=seat_code.refused&actor=local", cookie);
  EventStream other(b.base() + "/events/stream?since=0-0&type=seat_code.refused&actor=mallory", cookie);
  ASSERT_TRUE(wait_until([&] { return ids_for(local.events(), "ACTOR-PC-1").size() == 1; }, 15s)) << local.text();
  EXPECT_EQ(str(stack_->call("license.control", "retire", {{"code", Value(code)}}), "code"), "INVALID_SEAT_CODE");
  ASSERT_TRUE(wait_until([&] { return ids_for(local.events(), "ACTOR-PC-1").size() == 2; }, 15s)) << local.text();
  for (const auto& [id, data] : local.events()) EXPECT_NE(data.find("\"actor\":\"local\""), std::string::npos) << data;
  std::this_thread::sleep_for(300ms);
  EXPECT_TRUE(other.events().empty()) << other.text();
}

TEST_F(WebConsole, EventStreamIsLiveAndResumesWithoutGapsOrDuplicates) {
  Browser b = logged_in();
  Http page = b.get("/activity");
  ASSERT_EQ(page.status, 200) << page.body;
  static const std::regex re(R"re(data-stream="([^"]+)")re");
  std::smatch m;
  ASSERT_TRUE(std::regex_search(page.body, m, re)) << page.body;
  const std::string url = b.base() + std::regex_replace(m[1].str(), std::regex("&amp;"), "&");
  const std::vector<std::string> cookie = {"Cookie: " + b.cookie_header()};
  auto reserve = [&](const std::string& name) {
    ASSERT_EQ(b.post("/computers/reserve", {{"csrf", b.token("/computers")}, {"computer", name}}).status, 303);
  };

  std::string first_id;
  {
    EventStream live(url, cookie);
    // Reserve until the stream has shown one (the first may be read from
    // the log if it raced the connection; either way it must come).
    reserve("SSE-1");
    ASSERT_TRUE(wait_until([&] { return ids_for(live.events(), "SSE-1").size() == 1; }, 15s)) << live.text();
    first_id = ids_for(live.events(), "SSE-1").front();
    reserve("SSE-2");
    ASSERT_TRUE(wait_until([&] { return ids_for(live.events(), "SSE-2").size() == 1; }, 15s)) << live.text();
    EXPECT_TRUE(id_less(first_id, ids_for(live.events(), "SSE-2").front()));
  }
  // Events while nobody listens, then a reconnect from the first one.
  reserve("SSE-3");
  reserve("SSE-4");
  EventStream resumed(url, {cookie[0], "Last-Event-ID: " + first_id});
  reserve("SSE-5");  // live after the resume
  ASSERT_TRUE(wait_until([&] { return ids_for(resumed.events(), "SSE-5").size() == 1; }, 15s)) << resumed.text();
  std::this_thread::sleep_for(300ms);  // anything duplicated would be here by now
  const auto events = resumed.events();
  EXPECT_TRUE(ids_for(events, "SSE-1").empty()) << "the last id seen is not sent again";
  std::vector<std::string> order;
  for (const auto& [id, data] : events)
    for (const std::string name : {"SSE-2", "SSE-3", "SSE-4", "SSE-5"})
      if (data.find("\"computer\":\"" + name + "\"") != std::string::npos) order.push_back(name);
  EXPECT_EQ(order, (std::vector<std::string>{"SSE-2", "SSE-3", "SSE-4", "SSE-5"})) << resumed.text();
  std::vector<std::string> ids;
  for (const auto& [id, data] : events) ids.push_back(id);
  EXPECT_TRUE(std::is_sorted(ids.begin(), ids.end(), id_less)) << resumed.text();
  EXPECT_EQ(std::set<std::string>(ids.begin(), ids.end()).size(), ids.size()) << "duplicates: " << resumed.text();
  resumed.close();
}

TEST_F(WebConsole, LogoutEndsTheSession) {
  Browser b = logged_in();
  const std::string session = b.cookies()["ps_session"];
  Http out = b.post("/logout", {{"csrf", b.token("/")}});
  EXPECT_EQ(out.status, 303);
  EXPECT_EQ(out.header("location"), "/login");
  EXPECT_EQ(b.get("/").status, 303);
  b.cookies()["ps_session"] = session;  // replaying the old cookie
  EXPECT_EQ(b.get("/").status, 303);
}

TEST_F(WebConsole, WrongPasswordsAreCountedAndRateLimited) {
  // A console of its own, so that its lockout does not touch the other tests.
  const std::string data = stack_->dir().file("web-throttle");
  ASSERT_EQ(set_password(data, "another password"), 0);
  Process web = start_web(*stack_, data, stack_->dir().file("web-throttle.log"));
  Browser b(web_address(data));
  for (int i = 0; i < 5; ++i) {
    Http r = b.login("wrong password " + std::to_string(i));
    EXPECT_EQ(r.status, 401) << "attempt " << i;
    EXPECT_NE(r.body.find("Wrong password"), std::string::npos);
    EXPECT_EQ(b.cookies().count("ps_session"), 0u);
  }
  // Locked out now: even the right password is not checked.
  Http locked = b.login("another password");
  EXPECT_EQ(locked.status, 429);
  EXPECT_FALSE(locked.header("retry-after").empty());
  EXPECT_EQ(b.cookies().count("ps_session"), 0u);
  // The lock is short after five failures; then the right password works.
  long last = 0;
  EXPECT_TRUE(wait_until([&] { return (last = b.login("another password").status) == 303; }, 20s, 250ms))
      << "last status " << last;
  EXPECT_EQ(b.get("/").status, 200);
  // A changed password ends open sessions.
  ASSERT_EQ(set_password(data, "a third password"), 0);
  EXPECT_EQ(b.get("/").status, 303);
}

TEST_F(WebConsole, RefusesANonLoopbackAddressWithoutAPassword) {
  const std::string data = stack_->dir().file("web-nopass");
  const std::string log = stack_->dir().file("web-nopass.log");
  Process p = Process::start({bin("primary-web"), "--web", "0.0.0.0:0", "--data-dir", data, "--front",
                              stack_->front()},
                             {}, log);
  auto code = p.wait_exit(15s);
  ASSERT_TRUE(code.has_value()) << read_file(log);
  EXPECT_NE(*code, 0);
  const std::string text = read_file(log);
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 1) << text;
  EXPECT_NE(text.find("without a password"), std::string::npos) << text;
  // On loopback it serves, and says how to set the password.
  Process local = start_web(*stack_, data, log);
  Browser b(web_address(data));
  Http login = b.get("/login");
  EXPECT_EQ(login.status, 200);
  EXPECT_NE(login.body.find("primaryctl web-password"), std::string::npos);
  EXPECT_EQ(b.login("anything at all").status, 503);
}

TEST_F(WebConsole, HttpsWithACertificateGivesSecureCookies) {
  const std::string data = stack_->dir().file("web-tls");
  const std::string log = stack_->dir().file("web-tls.log");
  ASSERT_EQ(set_password(data, kPassword), 0);
  int rc = 0;
  run_capture({"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", data + "/key.pem", "-out",
               data + "/cert.pem", "-days", "1", "-subj", "/CN=localhost"},
              &rc);
  ASSERT_EQ(rc, 0) << "openssl could not make a test certificate";
  Process web = start_web(*stack_, data, log, {"--tls-cert", data + "/cert.pem", "--tls-key", data + "/key.pem"});
  const std::string url = web_address(data);
  ASSERT_EQ(url.rfind("https://127.0.0.1:", 0), 0u) << url;
  Browser b(url);
  Http r = b.login(kPassword);
  ASSERT_EQ(r.status, 303) << r.body;
  EXPECT_NE(r.header("set-cookie").find("; Secure"), std::string::npos) << r.header("set-cookie");
  EXPECT_EQ(b.get("/").status, 200);
  Browser plain("http" + url.substr(5));
  EXPECT_EQ(plain.get("/login").status, 0) << "no plain HTTP on the HTTPS port";

  // A certificate that cannot be loaded stops it with one line.
  const std::string bad_log = stack_->dir().file("web-tls-bad.log");
  Process bad = Process::start({bin("primary-web"), "--web", "127.0.0.1:0", "--data-dir", data, "--front",
                                stack_->front(), "--tls-cert", data + "/missing.pem", "--tls-key", data + "/key.pem"},
                               {}, bad_log);
  auto code = bad.wait_exit(15s);
  ASSERT_TRUE(code.has_value());
  EXPECT_NE(*code, 0);
  const std::string text = read_file(bad_log);
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 1) << text;
  EXPECT_NE(text.find("missing.pem"), std::string::npos) << text;

  // So does a --listen-fd that is not a listening socket.
  const std::string fd_log = stack_->dir().file("web-bad-fd.log");
  Process bad_fd = Process::start({bin("primary-web"), "--web", "127.0.0.1:0", "--data-dir", data, "--front",
                                   stack_->front(), "--listen-fd", "0"},
                                  {}, fd_log);
  code = bad_fd.wait_exit(15s);
  ASSERT_TRUE(code.has_value());
  EXPECT_NE(*code, 0);
  const std::string fd_text = read_file(fd_log);
  EXPECT_EQ(std::count(fd_text.begin(), fd_text.end(), '\n'), 1) << fd_text;
  EXPECT_NE(fd_text.find("not a listening TCP socket"), std::string::npos) << fd_text;
}

// primary-server serves the console by default, with the internal admin key
// in secure mode, and not with --no-web. It holds the console's port itself
// and starts primary-web at the first connection; an idle primary-web exits
// (--web-idle-exit-s) and the next connection starts it again.
TEST(WebSupervisor, StartedAtFirstConnectionIdleExitAndNotWithNoWeb) {
  curl_global_init(CURL_GLOBAL_ALL);
  TempDir dir("websv");
  const std::string data = dir.file("data");
  ASSERT_EQ(set_password(data, kPassword), 0);
  {
    Process server = Process::start({bin("primary-server"), "--data-dir", data, "--front", "tcp://127.0.0.1:*",
                                     "--events", "tcp://127.0.0.1:*", "--web", "127.0.0.1:0",
                                     "--web-idle-exit-s", "2", "--license-workers", "1", "--heartbeat-ms", "200"},
                                    {}, dir.file("server.log"));
    ASSERT_TRUE(wait_until([&] { return !web_address(data).empty(); }, 20s)) << read_file(dir.file("server.log"));
    ASSERT_TRUE(wait_until([&] { return children_named(server.pid(), "primary-admin").size() == 1; }, 20s));
    EXPECT_TRUE(children_named(server.pid(), "primary-web").empty()) << "started before any connection";
    {
      Browser b(web_address(data));
      ASSERT_EQ(b.login(kPassword).status, 303);
      EXPECT_EQ(children_named(server.pid(), "primary-web").size(), 1u);
      // The overview needs admin.status: the console holds an admin key.
      Http page;
      EXPECT_TRUE(wait_until([&] { return (page = b.get("/")).status == 200; }, 15s, 200ms)) << page.body;
      EXPECT_NE(page.body.find("id=\"count-purchased\""), std::string::npos);
    }
    // Connections closed: it goes after 2 s idle, and comes back with the
    // next connection (sessions are in its memory: a new login).
    EXPECT_TRUE(wait_until([&] { return children_named(server.pid(), "primary-web").empty(); }, 20s))
        << read_file(dir.file("server.log"));
    Browser again(web_address(data));
    EXPECT_EQ(again.get("/login").status, 200);
    EXPECT_EQ(again.login(kPassword).status, 303);
    EXPECT_EQ(children_named(server.pid(), "primary-web").size(), 1u);
    // Killed while idle or not, it is restarted like any worker.
    const auto web = children_named(server.pid(), "primary-web");
    ASSERT_EQ(web.size(), 1u);
    ::kill(*web.begin(), SIGKILL);
    Browser after_kill(web_address(data));
    EXPECT_EQ(after_kill.get("/login").status, 200) << "the connection waits in the backlog during a restart";
    const std::string log = read_file(dir.file("server.log"));
    EXPECT_NE(log.find("exited, idle; it starts again at the next connection"), std::string::npos) << log;
    ASSERT_TRUE(server.signal(SIGTERM));
    auto code = server.wait_exit(15s);
    ASSERT_TRUE(code.has_value());
    EXPECT_EQ(*code, 0) << read_file(dir.file("server.log"));
  }
  ::unlink((data + "/run/web.address").c_str());
  {
    Process server = Process::start({bin("primary-server"), "--data-dir", data, "--front", "tcp://127.0.0.1:*",
                                     "--events", "tcp://127.0.0.1:*", "--insecure", "--no-web",
                                     "--license-workers", "0", "--heartbeat-ms", "200"},
                                    {}, dir.file("server2.log"));
    // The console would start right after the admin worker.
    ASSERT_TRUE(wait_until([&] { return children_named(server.pid(), "primary-admin").size() == 1; }, 20s))
        << read_file(dir.file("server2.log"));
    EXPECT_TRUE(children_named(server.pid(), "primary-web").empty());
    EXPECT_TRUE(web_address(data).empty());
  }
  // Without a password, a non-loopback console stops primary-server at once.
  TempDir bare("websv2");
  Process refused = Process::start({bin("primary-server"), "--data-dir", bare.file("data"), "--insecure",
                                    "--web", "0.0.0.0:16772"},
                                   {}, bare.file("refused.log"));
  auto code = refused.wait_exit(15s);
  ASSERT_TRUE(code.has_value());
  EXPECT_NE(*code, 0);
  const std::string text = read_file(bare.file("refused.log"));
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 1) << text;
  EXPECT_NE(text.find("without a password"), std::string::npos) << text;
}

// The Overview and GET /metrics show admin.status's count of stale
// computers (shrunk: never seen 1 s after reservation, recount every
// second), which is the number flagged in admin.computers.
TEST(WebOverview, ShowsTheCountOfStaleComputers) {
  curl_global_init(CURL_GLOBAL_ALL);
  StackOptions o;
  o.admin_workers = 1;
  o.admin_args = {"--stale-unseen-s", "1", "--stale-recount-s", "1"};
  Stack s(o);
  ASSERT_TRUE(s.ok());
  ASSERT_TRUE(ok(s.unlock("SN-WEB-STALE", 10)));
  for (const char* name : {"STALE-A", "STALE-B", "STALE-C"})
    ASSERT_TRUE(ok(s.call("license.control", "reserve", {{"computer", Value(name)}})));
  const std::string data = s.dir().file("web");
  ASSERT_EQ(set_password(data, kPassword), 0);
  Process web = start_web(s, data, s.dir().file("web.log"));
  Browser b(web_address(data));
  ASSERT_EQ(b.login(kPassword).status, 303);
  static const std::regex on_page(R"re(<b id="stale-count">([0-9]+)</b> stale computers)re");
  static const std::regex in_metrics(R"re(\nprimary_computers_stale ([0-9]+)\n)re");
  std::string page, metrics;
  int64_t flagged = -1;
  ASSERT_TRUE(wait_until([&] {
    page = b.get("/").body;
    metrics = b.get("/metrics").body;
    const Value rows = s.call("admin", "computers", {{"stale", Value(true)}});
    const Value* items = rows.find("items");
    flagged = items && items->is_array() ? static_cast<int64_t>(items->as_array().size()) : -1;
    std::smatch m1, m2;
    return flagged == 3 && std::regex_search(page, m1, on_page) && m1[1].str() == "3" &&
           std::regex_search(metrics, m2, in_metrics) && m2[1].str() == "3";
  }, 15s, 250ms)) << "flagged " << flagged << "\n" << page << "\n" << metrics;
  EXPECT_EQ(num(s.call("admin", "status"), "stale"), 3);
}

}  // namespace
}  // namespace primary::test
