#include "web/console.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <set>
#include <stdexcept>
#include <thread>

#include "common/crypto.hpp"
#include "common/fleet_export.hpp"
#include "common/text.hpp"
#include "common/process.hpp"
#include "common/schema.hpp"
#include "web/charts.hpp"
#include "web/metrics.hpp"
#include "web/pages.hpp"
#include "web/password.hpp"

namespace primary::web {
namespace {

using namespace std::chrono_literals;

constexpr const char* kSessionCookie = "ps_session";
constexpr const char* kLoginCookie = "ps_login";
constexpr size_t kMaxFormBody = 64 * 1024;
constexpr int64_t kComputersPage = 50;
constexpr size_t kActivityRows = 100;
constexpr size_t kComputerScan = 1000;  // log entries the computer page looks through

const std::vector<std::string> kEventTypes = {
    event::kSerialUnlocked, event::kLicenseReserved, event::kLicenseRefused, event::kClientLicensed,
    event::kClientRejected, event::kClientLost,      event::kClientReturned, event::kUpdateSynced,
    event::kUpdateAvailable, event::kUpdateApproved, event::kUpdateHeld,     event::kCommandQueued,
    event::kCommandDone, event::kLicenseRetired, event::kLicenseTransferred, event::kSeatCodeRefused};

bool ok_reply(const Result<Value>& r) { return r && reply_ok(*r); }
std::string code_of(const Result<Value>& r) {
  if (!r) return std::string(code_name(r.error().code));
  const std::string c = reply_str(*r, field::kCode);
  return c.empty() ? "INTERNAL" : c;
}
std::string message_of(const Result<Value>& r) {
  if (!r) return r.error().message;
  const std::string m = reply_str(*r, field::kMessage);
  return m.empty() ? "(no message)" : m;
}
// A value as the right-hand side of key=value.
std::string value_text(const Value& v) { return v.is_str() ? v.as_str() : to_json(v); }

constexpr const char* kNameRule = "a computer name is 1 to 63 of A-Z a-z 0-9 - _ .";
bool valid_name(const std::string& s) {
  return !s.empty() && s.size() <= 63 && std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
  });
}
// An actor filter: empty (none), or what admin.log takes (1..128), printable.
bool valid_actor(const std::string& s) {
  return s.size() <= 128 &&
         std::all_of(s.begin(), s.end(), [](unsigned char c) { return c >= 0x20 && c != 0x7f; });
}

bool valid_type(const std::string& s) {
  return !s.empty() && s.size() <= 64 && std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || c == '.' || c == '_';
  });
}
std::string upper(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

std::string cookie_value(const httplib::Request& req, const std::string& name) {
  for (size_t i = 0; i < req.get_header_value_count("Cookie"); ++i) {
    const std::string header = req.get_header_value("Cookie", i);
    size_t pos = 0;
    while (pos < header.size()) {
      size_t end = header.find(';', pos);
      if (end == std::string::npos) end = header.size();
      std::string part = header.substr(pos, end - pos);
      const auto first = part.find_first_not_of(' ');
      if (first != std::string::npos) part.erase(0, first);
      if (part.size() > name.size() && part.compare(0, name.size(), name) == 0 && part[name.size()] == '=')
        return part.substr(name.size() + 1);
      pos = end + 1;
    }
  }
  return {};
}

// One activity row: time, type, computer, actor, other fields, id.
PageData event_data(const Value& e) {
  std::string details;
  if (e.is_map()) {
    auto fields = e.as_map();
    std::sort(fields.begin(), fields.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    for (const auto& [k, v] : fields)
      if (k != field::kId && k != field::kTs && k != field::kType && k != field::kComputer &&
          k != field::kActor && k != field::kVia)
        details += (details.empty() ? "" : " ") + k + "=" + value_text(v);
  }
  PageData row;
  row.set("time", time_text(reply_int(e, field::kTs, 0)));
  row.set("type", reply_str(e, field::kType));
  row.set("computer", reply_str(e, field::kComputer));
  row.set("actor", event_actor(e));
  row.set("details", details);
  row.set("id", reply_str(e, field::kId));
  return row;
}

// The activity table (templates/events.mustache); with a stream URL, app.js
// follows it live.
std::string event_table(const std::vector<Value>& items, const std::string& stream_url) {
  PageList rows;
  for (const auto& e : items) rows.push_back(event_data(e));
  PageData data;
  data.set("events", rows);
  if (!stream_url.empty()) data.set("stream_url", stream_url);
  return render_page("events", data);
}

// (value, label) pairs as a list of {value, label, on}: `on` for the one
// whose value is `current` (a menu's page, a select's option).
PageList choice_list(const std::vector<std::pair<std::string, std::string>>& choices, const std::string& current) {
  PageList list;
  for (const auto& [value, label] : choices) {
    PageData choice;
    choice.set("value", value);
    choice.set("label", label);
    choice.set("on", value == current);
    list.push_back(choice);
  }
  return list;
}

// A map field of a reply as a list of {key, value}, the value as text.
PageList entry_list(const Value& reply, std::string_view name) {
  PageList list;
  if (const Value* map = reply.find(name); map && map->is_map())
    for (const auto& [key, value] : map->as_map()) {
      PageData entry;
      entry.set("key", key);
      entry.set("value", value_text(value));
      list.push_back(entry);
    }
  return list;
}

// `text`, or "-" when it is empty.
std::string or_dash(const std::string& text) { return text.empty() ? "-" : text; }

// What the computer list and a computer's page show of one computer (an
// admin.computers item or an admin.computer reply).
PageData computer_data(const Value& c) {
  const std::string name = reply_str(c, field::kComputer), state = reply_str(c, field::kState);
  PageData data;
  data.set("name", name);
  data.set("url_name", url_component(name));
  data.set("state", state);
  data.set("state_text", state == field::kReserved ? "never seen" : state);
  data.set("license", reply_str(c, field::kLicense));
  data.set("reserved", time_text(reply_int(c, field::kReservedAt, 0)));
  data.set("first_seen", time_text(reply_int(c, field::kFirstSeen, 0)));
  data.set("last_seen", time_text(reply_int(c, field::kLastSeen, 0)));
  data.set("version", or_dash(reply_str(c, field::kVersion)));
  const Value* stale = c.find(field::kStale);
  data.set("stale", stale && stale->is_bool() && stale->as_bool());
  return data;
}

// An integer form or query field within [min, max]; nullopt when absent.
Result<std::optional<int64_t>> int_param(const httplib::Request& req, const std::string& name,
                                         int64_t min, int64_t max) {
  if (!req.has_param(name) || req.get_param_value(name).empty()) return std::optional<int64_t>();
  const std::string text = req.get_param_value(name);
  int64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || v < min || v > max)
    return Error{Code::BadRequest, "'" + name + "' must be an integer from " + std::to_string(min) +
                                       " to " + std::to_string(max)};
  return std::optional<int64_t>(v);
}

}  // namespace

int http_status(const std::string& code) {
  if (code == "BAD_REQUEST" || code == "UNKNOWN_OP" || code == "INVALID_UNLOCK_CODE" ||
      code == "INVALID_SEAT_CODE")
    return 400;
  if (code == "NOT_FOUND") return 404;
  if (code == "NOT_UNLOCKED" || code == "NO_LICENSES_LEFT") return 409;
  if (code == "UNAVAILABLE" || code == "BUSY") return 503;
  return 502;  // UNAUTHORIZED (this console's key is not an admin's), INTERNAL, anything else
}

Console::Console(BrokerLink& link, EventFeed& feed, ConsoleOptions options)
    : link_(link),
      feed_(feed),
      options_(std::move(options)),
      sessions_(options_.session_idle, options_.session_max) {}

// ---------------------------------------------------------------- routes

namespace {
// The address of the browser whose request this server thread is serving
// (httplib serves each request on one thread, start to end).
thread_local std::string t_browser;
}  // namespace

void Console::install(httplib::Server& svr) {
  svr.set_payload_max_length(options_.max_upload);
  svr.set_pre_routing_handler([](const Req& req, Res& res) {
    t_browser = req.remote_addr;  // whom call() acts for, until the next request of this thread
    if (req.path == "/updates/import") return httplib::Server::HandlerResponse::Unhandled;
    const bool chunked = req.get_header_value("Transfer-Encoding").find("chunked") != std::string::npos;
    const auto length = req.get_header_value<uint64_t>("Content-Length");
    if (chunked || length > kMaxFormBody) {
      res.status = chunked ? 411 : 413;
      res.set_content(chunked ? "length required\n" : "request body too large\n", "text/plain");
      return httplib::Server::HandlerResponse::Handled;
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
  svr.set_post_routing_handler([](const Req&, Res& res) {
    res.set_header("Content-Security-Policy",
                   "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
                   "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'");
    res.set_header("X-Frame-Options", "DENY");
    res.set_header("X-Content-Type-Options", "nosniff");
    res.set_header("Referrer-Policy", "no-referrer");
    if (!res.has_header("Cache-Control")) res.set_header("Cache-Control", "no-store");
  });
  svr.set_error_handler([](const Req&, Res& res) {
    if (!res.body.empty()) return;
    PageData data;
    data.set("status", std::to_string(res.status));
    res.set_content(render_page("http_error", data), "text/html; charset=utf-8");
  });
  svr.set_exception_handler([](const Req& req, Res& res, std::exception_ptr ep) {
    try {
      if (ep) std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      spdlog::error("{} {}: {}", req.method, req.path, e.what());
    } catch (...) {
      spdlog::error("{} {}: unknown exception", req.method, req.path);
    }
    res.status = 500;
    res.set_content("internal error\n", "text/plain");
  });

  auto serve = [&svr](const std::string& path, std::string_view name, const char* cache) {
    const auto file = static_file(name);
    if (!file) throw std::logic_error("no static file " + std::string(name));
    svr.Get(path, [file = *file, cache](const Req&, Res& res) {
      res.set_header("Cache-Control", cache);
      res.set_content(file.text.data(), file.text.size(), std::string(file.content_type));
    });
  };
  serve("/static/style.css", "style.css", "no-cache");
  serve("/static/app.js", "app.js", "no-cache");
  serve("/static/icon.svg", "icon.svg", "max-age=86400");
  serve("/favicon.ico", "icon.svg", "max-age=86400");
  svr.Get("/login", [this](const Req& req, Res& res) { login_page(req, res, 200, ""); });
  svr.Post("/login", [this](const Req& req, Res& res) { login(req, res); });
  svr.Post("/logout", [this](const Req& req, Res& res) { logout(req, res); });
  svr.Get("/", [this](const Req& req, Res& res) { overview(req, res); });
  svr.Post("/register", [this](const Req& req, Res& res) { do_register(req, res); });
  svr.Post("/unlock", [this](const Req& req, Res& res) { do_unlock(req, res); });
  svr.Get("/computers", [this](const Req& req, Res& res) { computers(req, res); });
  svr.Get("/computers.csv", [this](const Req& req, Res& res) { export_csv(req, res); });
  svr.Get("/computers/find", [this](const Req& req, Res& res) { find_computer(req, res); });
  svr.Post("/computers/reserve", [this](const Req& req, Res& res) { do_reserve(req, res); });
  svr.Post("/computers/seat-code", [this](const Req& req, Res& res) { do_seat_code(req, res); });
  svr.Get(R"(/computers/([^/]+)/setup\.json)", [this](const Req& req, Res& res) { setup_file(req, res); });
  svr.Get(R"(/computers/([^/]+))", [this](const Req& req, Res& res) { computer(req, res); });
  svr.Get("/activity", [this](const Req& req, Res& res) { activity(req, res); });
  svr.Get("/events/stream", [this](const Req& req, Res& res) { stream(req, res); });
  svr.Get("/updates", [this](const Req& req, Res& res) { updates(req, res); });
  svr.Post("/updates/approve", [this](const Req& req, Res& res) { do_update(req, res, "approve"); });
  svr.Post("/updates/hold", [this](const Req& req, Res& res) { do_update(req, res, "hold"); });
  svr.Post("/updates/sync", [this](const Req& req, Res& res) { do_update(req, res, field::kSync); });
  svr.Post("/updates/import", [this](const Req& req, Res& res, const httplib::ContentReader& reader) {
    do_import(req, res, reader);
  });
  svr.Get("/firewall", [this](const Req& req, Res& res) { firewall(req, res); });
  svr.Get("/metrics", [this](const Req& req, Res& res) { metrics(req, res); });
}

// ---------------------------------------------------------------- sessions

std::string Console::session_cookie(const std::string& value, int max_age) const {
  std::string c = std::string(kSessionCookie) + "=" + value + "; Path=/; HttpOnly; SameSite=Strict";
  if (max_age >= 0) c += "; Max-Age=" + std::to_string(max_age);
  if (options_.https) c += "; Secure";
  return c;
}

std::optional<Session> Console::session_of(const Req& req) {
  const std::string id = cookie_value(req, kSessionCookie);
  if (id.empty() || id.size() > 128) return std::nullopt;
  auto s = sessions_.find(id, Clock::now());
  if (!s) return s;
  // A password changed (or removed) since this login ends the session.
  auto hash = read_password_hash(password_file(options_.data_dir));
  if (!hash || *hash != s->password_hash) {
    sessions_.destroy(id);
    return std::nullopt;
  }
  return s;
}

std::optional<Session> Console::page_session(const Req& req, Res& res) {
  auto s = session_of(req);
  if (!s) res.set_redirect("/login", 303);
  return s;
}

std::optional<Session> Console::form_session(const Req& req, Res& res, const std::string& token) {
  auto s = session_of(req);
  if (!s || !same_secret(token, s->csrf)) {
    res.status = 403;
    res.set_content(s ? "403 Forbidden: missing or wrong form token (CSRF); reload the page\n"
                      : "403 Forbidden: not logged in\n",
                    "text/plain; charset=utf-8");
    return std::nullopt;
  }
  return s;
}

void Console::login_page(const Req& req, Res& res, int status, const std::string& message) {
  if (status == 200 && session_of(req)) {
    res.set_redirect("/", 303);
    return;
  }
  const std::string token = random_token(32);
  std::string login_cookie = std::string(kLoginCookie) + "=" + token +
                             "; Path=/login; HttpOnly; SameSite=Strict; Max-Age=3600";
  if (options_.https) login_cookie += "; Secure";
  res.set_header("Set-Cookie", login_cookie);
  PageList notices;
  auto hash = read_password_hash(password_file(options_.data_dir));
  if (!hash)
    notices.emplace_back(hash.error().code == Code::NotFound
                             ? "No console password is set. Set one on the server with: primaryctl "
                               "web-password --data-dir " + options_.data_dir
                             : hash.error().message);
  if (!message.empty()) notices.emplace_back(message);
  PageData data;
  data.set("notices", notices);
  data.set("csrf", token);
  res.status = status;
  res.set_content(render_page("login", data), "text/html; charset=utf-8");
}

void Console::login(const Req& req, Res& res) {
  const auto now = Clock::now();
  const std::string address = req.remote_addr;
  if (const int64_t wait = throttle_.retry_after(address, now); wait > 0) {
    res.set_header("Retry-After", std::to_string(wait));
    login_page(req, res, 429, "Too many failed logins; try again in " + std::to_string(wait) + " s.");
    return;
  }
  const std::string expected = cookie_value(req, kLoginCookie);
  if (!same_secret(req.get_param_value("csrf"), expected)) {
    login_page(req, res, 403, "The login form expired or was not sent by this console; try again.");
    return;
  }
  auto hash = read_password_hash(password_file(options_.data_dir));
  if (!hash) {
    login_page(req, res, 503, "Logging in is not possible until a password is set.");
    return;
  }
  const std::string password = req.get_param_value("password");
  bool good = false;
  if (password.size() <= 1024) {
    std::lock_guard<std::mutex> lock(password_mu_);
    good = verify_password(*hash, password);
  }
  if (!good) {
    throttle_.failure(address, Clock::now());
    spdlog::warn("failed console login from {}", address);
    login_page(req, res, 401, "Wrong password.");
    return;
  }
  throttle_.success(address);
  if (const std::string old = cookie_value(req, kSessionCookie); !old.empty()) sessions_.destroy(old);
  const Session s = sessions_.create(Clock::now(), *hash);
  spdlog::info("console login from {}", address);
  res.set_header("Set-Cookie", session_cookie(s.id, -1));
  res.set_redirect("/", 303);
}

void Console::logout(const Req& req, Res& res) {
  auto s = form_session(req, res, req.get_param_value("csrf"));
  if (!s) return;
  sessions_.destroy(s->id);
  res.set_header("Set-Cookie", session_cookie("", 0));
  res.set_redirect("/login", 303);
}

// ---------------------------------------------------------------- rendering

std::string Console::layout(const std::string& title, const std::string& active, const Session& s,
                            const std::string& body) {
  static const std::vector<std::pair<std::string, std::string>> nav = {
      {"/", "Overview"}, {"/computers", "Computers"}, {"/activity", "Activity"},
      {"/updates", "Updates"}, {"/firewall", "Firewall"}};
  PageData data;
  data.set("title", title);
  data.set("nav", choice_list(nav, active));
  data.set("csrf", s.csrf);
  if (auto [text, error] = sessions_.take_flash(s.id); !text.empty()) {
    PageData flash;
    flash.set("text", text);
    flash.set("error", error);
    data.set("flash", flash);
  }
  data.set("body", body);
  return render_page("layout", data);
}

void Console::send_page(Res& res, int status, const std::string& html) {
  res.status = status;
  res.set_content(html, "text/html; charset=utf-8");
}

void Console::error_page(Res& res, const Session& s, int status, const std::string& title,
                         const std::string& message) {
  PageData data;
  data.set("message", message);
  send_page(res, status, layout(title, "", s, render_page("error", data)));
}

void Console::failed(Res& res, const Session& s, const std::string& what, const Result<Value>& reply) {
  error_page(res, s, http_status(code_of(reply)), what + " failed",
             code_of(reply) + ": " + message_of(reply));
}

// ---------------------------------------------------------------- broker calls

Result<Value> Console::call(const std::string& service, const std::string& op, Value::Map fields) {
  // The server logs what a browser does as its own ("web:ADDRESS", via this
  // console's key); the broker's workers take on_behalf from the server's
  // own key only (docs/protocol.md "Who did it").
  if (!t_browser.empty()) fields.emplace_back(field::kOnBehalf, Value(std::string(actor::kWebPrefix) + t_browser));
  return link_.call(service, op, std::move(fields));
}

Result<Value> Console::update_call(const std::string& op, Value::Map fields) {
  auto mmi = link_.request(svc::kMmiService, svc::kUpdateControl);
  if (mmi && *mmi != "200")
    return Value(Value::Map{{field::kOk, Value(false)},
                            {field::kCode, Value("UNAVAILABLE")},
                            {field::kMessage, Value("no updater worker is running (update.control has no live worker)")}});
  return call(svc::kUpdateControl, op, std::move(fields));
}

Result<LogPage> Console::log_page(const std::string& since, int64_t limit,
                                  const std::vector<std::string>& types, const std::string& actor) {
  auto r = call(svc::kAdmin, opname::kLog, log_request(since, limit, types, actor));
  if (!r) return r.error();
  if (!reply_ok(*r)) return Error{Code::Unavailable, code_of(r) + ": " + message_of(r)};
  return log_page_of(*r);
}

// admin.log only reads forward from an id, so this steps back in time from
// now (1 minute, then 4 times further each step) until a window holds
// `want` entries or reaches the oldest one, reading each window forward.
// At most kMaxCalls requests: a rare type in a huge log shows what was found.
Result<std::vector<Value>> Console::recent_log(size_t want, const std::vector<std::string>& types,
                                               const std::string& actor) {
  constexpr int kMaxCalls = 40;
  auto oldest = log_page("", 1, {});
  if (!oldest) return oldest.error();
  if (oldest->items.empty()) return std::vector<Value>{};
  const int64_t oldest_ms = reply_int(oldest->items.front(), field::kTs, 0);
  const int64_t now = unix_ms();
  int calls = 1;
  for (int64_t window = 60000;; window *= 4) {
    const bool whole = now - window <= oldest_ms;
    std::string from = whole ? "" : std::to_string(now - window) + "-0";
    std::deque<Value> tail;
    for (;;) {
      auto page = log_page(from, 1000, types, actor);
      if (!page) return page.error();
      ++calls;
      for (auto& item : page->items) {
        tail.push_back(std::move(item));
        if (tail.size() > want) tail.pop_front();
      }
      if (page->next.empty() || page->next == from || calls >= kMaxCalls) break;
      from = page->next;
    }
    if (tail.size() >= want || whole || calls >= kMaxCalls) return std::vector<Value>(tail.begin(), tail.end());
  }
}

// ---------------------------------------------------------------- overview

void Console::overview(const Req& req, Res& res) {
  auto s = page_session(req, res);
  if (!s) return;
  auto status = call(svc::kAdmin, opname::kStatus);
  if (!ok_reply(status)) return failed(res, *s, "Reading the server status", status);
  const Value& st = *status;
  PageData data;
  PageList counts;
  for (const auto& [key, label] : std::vector<std::pair<std::string, std::string>>{
           {field::kPurchased, "Purchased"}, {field::kReserved, "Reserved"}, {field::kActive, "Active"},
           {field::kLost, "Lost"}, {field::kNeverSeen, "Never seen"}}) {
    PageData count;
    count.set("key", key);
    count.set("value", std::to_string(reply_int(st, key, 0)));
    count.set("label", label);
    counts.push_back(count);
  }
  data.set("counts", counts);
  data.set("stale", std::to_string(reply_int(st, field::kStale, 0)));
  const std::string serial = reply_str(st, field::kSerial);
  data.set("unlocked", !serial.empty());
  data.set("serial", serial);
  if (auto reg = call(svc::kLicenseControl, opname::kRegistration); ok_reply(reg)) {
    PageData registration;
    registration.set("serial", reply_str(*reg, field::kSerial));
    registration.set("code", reply_str(*reg, field::kRegistrationCode));
    data.set("registration", registration);
  }
  data.set("version", reply_str(st, field::kVersion));
  data.set("uptime", duration_text(reply_int(st, field::kUptimeS, 0)));
  data.set("services", entry_list(st, field::kServices));
  data.set("csrf", s->csrf);
  std::string period = req.get_param_value("period");
  if (period != "30d" && period != "1y") period = "48h";
  data.set("periods", choice_list({{"48h", "48 hours"}, {"30d", "30 days"}, {"1y", "1 year"}}, period));
  if (auto charts = history_charts(period); charts) data.set("charts", *charts);
  else data.set("history_error", "History: " + charts.error().message);
  send_page(res, 200, layout("Overview", "/", *s, render_page("overview", data)));
}

// The Overview's charts (web/charts.hpp) for `period` (48h, 30d, 1y):
// licenses purchased and reserved, the fleet's states stacked, heartbeats
// per hour over the last 48 hours, update data served per day.
Result<PageList> Console::history_charts(const std::string& period) {
  constexpr int64_t kHour = 3600 * 1000, kDay = 24 * kHour;
  const int64_t now = unix_ms();
  // Every period start of the window ending with the current one, and the
  // points admin.history has for them.
  struct Window {
    std::vector<int64_t> times;
    std::map<int64_t, Value> points;
  };
  auto window = [&](bool daily, int64_t count) -> Result<Window> {
    const int64_t p = daily ? kDay : kHour, last = now / p * p, first = last - (count - 1) * p;
    Window w;
    for (int64_t t = first; t <= last; t += p) w.times.push_back(t);
    Value::Map fields{{field::kResolution, Value(daily ? resolution::kDay : resolution::kHour)},
                      {field::kFrom, Value(first)}, {field::kTo, Value(now)}, {field::kLimit, Value(int64_t{1000})}};
    for (int page = 0; page < 10; ++page) {
      auto r = call(svc::kAdmin, opname::kHistory, fields);
      if (!ok_reply(r)) return Error{Code::Unavailable, code_of(r) + ": " + message_of(r)};
      if (const Value* pts = r->find(field::kPoints); pts && pts->is_array())
        for (const Value& pt : pts->as_array()) w.points[reply_int(pt, field::kTs, 0)] = pt;
      const Value* next = r->find(field::kNext);
      if (!next || !next->is_int()) break;
      for (auto& [k, v] : fields)
        if (k == field::kFrom) v = *next;
    }
    return w;
  };
  auto series = [](const Window& w, const char* key, std::string label) {
    ChartSeries s{std::move(label), {}};
    for (int64_t t : w.times) {
      auto it = w.points.find(t);
      const Value* v = it == w.points.end() ? nullptr : it->second.find(key);
      s.values.push_back(v && v->is_int() ? std::optional<int64_t>(v->as_int()) : std::nullopt);
    }
    return s;
  };
  const bool daily = period != "48h";
  auto main = window(daily, period == "1y" ? 365 : daily ? 30 : 48);
  if (!main) return main.error();
  auto hours = daily ? window(false, 48) : main;
  if (!hours) return hours.error();
  auto days = period == "1y" ? main : window(true, 30);
  if (!days) return days.error();
  const int64_t step = daily ? kDay : kHour;
  PageList charts;
  Chart licenses{"licenses", "Licenses", "licenses", ChartKind::Lines, main->times, step,
                 {series(*main, field::kPurchased, "purchased"), series(*main, field::kReserved, "reserved")}};
  charts.push_back(chart_data(licenses));
  Chart fleet{"fleet", "Computers by state", "computers", ChartKind::Stacked, main->times, step,
              {series(*main, field::kActive, "active"), series(*main, field::kLost, "lost"),
               series(*main, field::kNeverSeen, "never seen")}};
  charts.push_back(chart_data(fleet));
  Chart heartbeats{"heartbeats", "Heartbeats per hour, last 48 hours", "heartbeats", ChartKind::Bars, hours->times,
                   kHour, {series(*hours, field::kHeartbeats, "heartbeats")}};
  charts.push_back(chart_data(heartbeats));
  Chart downloads{"downloads", std::string("Update downloads per day, last ") + (period == "1y" ? "year" : "30 days"),
                  "MiB", ChartKind::Bars, days->times, kDay, {series(*days, field::kBytesServed, "served")}, 1024 * 1024};
  charts.push_back(chart_data(downloads));
  return charts;
}

void Console::do_register(const Req& req, Res& res) {
  auto s = form_session(req, res, req.get_param_value("csrf"));
  if (!s) return;
  const std::string serial = req.get_param_value(field::kSerial);
  auto r = call(svc::kLicenseControl, opname::kRegistration, {{field::kSerial, Value(serial)}});
  if (!ok_reply(r)) return failed(res, *s, "Registering the serial", r);
  sessions_.set_flash(s->id,
                      "Serial " + reply_str(*r, field::kSerial) + " registered. Send this registration code to the vendor: " +
                          reply_str(*r, field::kRegistrationCode),
                      false);
  res.set_redirect("/", 303);
}

void Console::do_unlock(const Req& req, Res& res) {
  auto s = form_session(req, res, req.get_param_value("csrf"));
  if (!s) return;
  std::string code = req.get_param_value(field::kUnlockCode);
  while (!code.empty() && std::isspace(static_cast<unsigned char>(code.back()))) code.pop_back();
  while (!code.empty() && std::isspace(static_cast<unsigned char>(code.front()))) code.erase(0, 1);
  auto r = call(svc::kLicenseControl, opname::kUnlock, {{field::kUnlockCode, Value(code)}});
  if (!ok_reply(r)) return failed(res, *s, "Unlocking", r);
  sessions_.set_flash(s->id,
                      "Unlocked serial " + reply_str(*r, field::kSerial) + " for " +
                          std::to_string(reply_int(*r, field::kPurchased, 0)) + " licenses.",
                      false);
  res.set_redirect("/", 303);
}

// ---------------------------------------------------------------- computers

void Console::computers(const Req& req, Res& res) {
  auto s = page_session(req, res);
  if (!s) return;
  const std::string state = req.get_param_value(field::kState);
  const std::string sort = req.has_param(field::kSort) ? req.get_param_value(field::kSort) : "name";
  const std::string cursor = req.get_param_value(field::kCursor);
  if (state != "" && state != field::kReserved && state != field::kActive && state != field::kLost)
    return error_page(res, *s, 400, "Bad request", "'state' must be reserved, active or lost");
  if (sort != "name" && sort != "last-seen")
    return error_page(res, *s, 400, "Bad request", "'sort' must be name or last-seen");
  auto limit = int_param(req, field::kLimit, 1, 1000);
  if (!limit) return error_page(res, *s, 400, "Bad request", limit.error().message);
  const int64_t page_size = limit->value_or(kComputersPage);
  Value::Map fields{{field::kLimit, Value(page_size)}, {field::kSort, Value(sort)}};
  const bool only_stale = req.get_param_value(field::kStale) == "1";
  if (!state.empty()) fields.emplace_back(field::kState, Value(state));
  if (only_stale) fields.emplace_back(field::kStale, Value(true));
  if (!cursor.empty()) fields.emplace_back(field::kCursor, Value(cursor));
  auto r = call(svc::kAdmin, opname::kComputers, std::move(fields));
  if (!ok_reply(r)) return failed(res, *s, "Listing computers", r);

  PageData data;
  data.set("states", choice_list({{"", "all"}, {field::kReserved, "never seen"}, {field::kActive, field::kActive},
                                 {field::kLost, field::kLost}},
                                state));
  data.set("sorts", choice_list({{"name", "by name"}, {"last-seen", "last seen first"}}, sort));
  data.set("only_stale", only_stale);
  PageList rows;
  if (const Value* items = r->find(field::kItems); items && items->is_array())
    for (const Value& it : items->as_array()) rows.push_back(computer_data(it));
  data.set("computers", rows);
  const std::string base = "/computers?sort=" + url_component(sort) + "&state=" + url_component(state) +
                           (only_stale ? "&stale=1" : "") + "&limit=" + std::to_string(page_size);
  if (!cursor.empty()) data.set("first_url", base);
  data.set("export_url", "/computers.csv?sort=" + url_component(sort) + "&state=" + url_component(state));
  if (const std::string next = reply_str(*r, field::kCursor); !next.empty())
    data.set("next_url", base + "&cursor=" + url_component(next));
  data.set("csrf", s->csrf);
  send_page(res, 200, layout("Computers", "/computers", *s, render_page("computers", data)));
}

// The whole fleet (of `state`) as `primaryctl computers --csv` writes it,
// streamed a page of admin.computers per chunk. The first page is read
// before answering, so a failure then gets an error page; a later one ends
// the download short (no final chunk), which the browser reports.
void Console::export_csv(const Req& req, Res& res) {
  auto s = page_session(req, res);
  if (!s) return;
  const std::string state = req.get_param_value(field::kState);
  const std::string sort = req.has_param(field::kSort) ? req.get_param_value(field::kSort) : "name";
  if (state != "" && state != field::kReserved && state != field::kActive && state != field::kLost)
    return error_page(res, *s, 400, "Bad request", "'state' must be reserved, active or lost");
  if (sort != "name" && sort != "last-seen")
    return error_page(res, *s, 400, "Bad request", "'sort' must be name or last-seen");
  auto fleet = std::make_shared<FleetExport>(
      ExportFormat::Csv, [this](Value::Map fields) { return call(svc::kAdmin, opname::kComputers, std::move(fields)); },
      state, sort);
  auto first = fleet->next();
  if (!first)
    return error_page(res, *s, http_status(std::string(code_name(first.error().code))), "Exporting computers failed",
                      std::string(code_name(first.error().code)) + ": " + first.error().message);
  auto pending = std::make_shared<std::string>(std::move(**first));
  res.set_header("Content-Disposition", "attachment; filename=\"computers.csv\"");
  res.set_chunked_content_provider("text/csv; charset=utf-8", [this, fleet, pending](size_t, httplib::DataSink& sink) {
    if (stopping_) return false;
    if (!pending->empty()) {
      const bool written = sink.write(pending->data(), pending->size());
      pending->clear();
      pending->shrink_to_fit();
      return written;
    }
    auto text = fleet->next();
    if (!text) {
      spdlog::warn("computers export ended after {} rows: {}", fleet->rows(), text.error().message);
      return false;
    }
    if (!*text) {
      sink.done();
      return true;
    }
    return sink.write((*text)->data(), (*text)->size());
  });
}

void Console::find_computer(const Req& req, Res& res) {
  auto s = page_session(req, res);
  if (!s) return;
  std::string name = req.get_param_value("name");
  while (!name.empty() && name.back() == ' ') name.pop_back();
  while (!name.empty() && name.front() == ' ') name.erase(0, 1);
  if (!valid_name(name)) return error_page(res, *s, 400, "Bad request", kNameRule);
  res.set_redirect("/computers/" + url_component(upper(name)), 303);
}

std::optional<std::pair<Session, Value>> Console::computer_reply(const Req& req, Res& res, const std::string& service,
                                                                 const std::string& op, const std::string& what) {
  auto s = page_session(req, res);
  if (!s) return std::nullopt;
  const std::string name = req.matches[1];
  if (!valid_name(name)) {
    error_page(res, *s, 400, "Bad request", kNameRule);
    return std::nullopt;
  }
  auto r = call(service, op, {{field::kComputer, Value(name)}});
  if (!ok_reply(r)) {
    failed(res, *s, what + " " + name, r);
    return std::nullopt;
  }
  return std::make_pair(std::move(*s), std::move(*r));
}

void Console::computer(const Req& req, Res& res) {
  auto page = computer_reply(req, res, svc::kAdmin, opname::kComputer, "Looking up");
  if (!page) return;
  const auto& [s, c] = *page;
  const std::string stored = reply_str(c, field::kComputer);
  PageData data = computer_data(c);
  data.set("address", or_dash(reply_str(c, field::kPeer)));
  data.set("has_clock_skew", c.find(field::kClockSkewS) != nullptr);
  data.set("clock_skew", std::to_string(reply_int(c, field::kClockSkewS, 0)));
  data.set("commands_queued", std::to_string(reply_int(c, field::kCommandsPending, 0)));
  // What `primaryctl transfer-request` prints: for the vendor's seat codes.
  if (auto reg = call(svc::kLicenseControl, opname::kRegistration); ok_reply(reg))
    data.set("registration_code", reply_str(*reg, field::kRegistrationCode));
  data.set("csrf", s.csrf);
  if (auto recent = recent_log(kComputerScan, {}); !recent) {
    data.set("log_error", recent.error().message);
  } else {
    std::vector<Value> mine;
    for (auto& e : *recent)
      if (reply_str(e, field::kComputer) == stored) mine.push_back(std::move(e));
    data.set("scanned", std::to_string(recent->size()));
    data.set("events", event_table(mine, ""));
  }
  send_page(res, 200, layout(stored, "/computers", s, render_page("computer", data)));
}

void Console::setup_file(const Req& req, Res& res) {
  auto page = computer_reply(req, res, svc::kLicenseControl, opname::kSetupInfo, "Making the setup file of");
  if (!page) return;
  const Value& reply = page->second;
  // The same file as `primaryctl setup-info NAME`: the reply without its envelope fields.
  Value::Map setup;
  for (const auto& [k, v] : reply.as_map())
    if (k != field::kOk && k != field::kRid) setup.emplace_back(k, v);
  res.set_header("Content-Disposition", "attachment; filename=\"setup-" + reply_str(reply, field::kComputer) + ".json\"");
  res.set_content(to_json(Value(std::move(setup))) + "\n", "application/json");
}

void Console::do_reserve(const Req& req, Res& res) {
  auto s = form_session(req, res, req.get_param_value("csrf"));
  if (!s) return;
  auto r = call(svc::kLicenseControl, opname::kReserve, {{field::kComputer, Value(req.get_param_value(field::kComputer))}});
  if (!ok_reply(r)) return failed(res, *s, "Reserving a license", r);
  const Value* created = r->find(field::kCreated);
  const bool is_new = created && created->is_bool() && created->as_bool();
  sessions_.set_flash(s->id,
                      (is_new ? "Reserved license " : "Already reserved: license ") + reply_str(*r, field::kLicense) +
                          " for " + reply_str(*r, field::kComputer) + " (" + std::to_string(reply_int(*r, field::kReserved, 0)) +
                          " of " + std::to_string(reply_int(*r, field::kPurchased, 0)) + " licenses in use).",
                      false);
  res.set_redirect("/computers/" + url_component(reply_str(*r, field::kComputer)), 303);
}

void Console::do_seat_code(const Req& req, Res& res) {
  auto s = form_session(req, res, req.get_param_value("csrf"));
  if (!s) return;
  const std::string op = req.get_param_value(field::kOp);
  if (op != opname::kRetire && op != opname::kTransfer)
    return error_page(res, *s, 400, "Bad request", "'op' must be retire or transfer");
  std::string code = req.get_param_value(field::kCode);
  while (!code.empty() && std::isspace(static_cast<unsigned char>(code.back()))) code.pop_back();
  while (!code.empty() && std::isspace(static_cast<unsigned char>(code.front()))) code.erase(0, 1);
  auto r = call(svc::kLicenseControl, op, {{field::kCode, Value(code)}});
  if (!ok_reply(r)) return failed(res, *s, op == opname::kRetire ? "Retiring the seat" : "Transferring the seat", r);
  const std::string in_use = " (" + std::to_string(reply_int(*r, field::kReserved, 0)) + " of " +
                             std::to_string(reply_int(*r, field::kPurchased, 0)) + " licenses in use).";
  if (op == opname::kRetire) {
    sessions_.set_flash(s->id, "Retired the seat of " + reply_str(*r, field::kComputer) + in_use, false);
    res.set_redirect("/computers", 303);
    return;
  }
  sessions_.set_flash(s->id,
                      "Moved the seat of " + reply_str(*r, field::kComputer) + " to " + reply_str(*r, field::kTo) +
                          " with the new license " + reply_str(*r, field::kLicense) + in_use,
                      false);
  res.set_redirect("/computers/" + url_component(reply_str(*r, field::kTo)), 303);
}

// ---------------------------------------------------------------- activity

void Console::activity(const Req& req, Res& res) {
  auto s = page_session(req, res);
  if (!s) return;
  std::vector<std::string> types;
  for (size_t i = 0; i < req.get_param_value_count(field::kType); ++i) {
    const std::string t = req.get_param_value(field::kType, i);
    if (!valid_type(t)) return error_page(res, *s, 400, "Bad request", "'type' must be an event type such as license.reserved");
    if (types.size() < 64 && std::find(types.begin(), types.end(), t) == types.end()) types.push_back(t);
  }
  const std::string since = req.get_param_value(field::kSince);
  if (!since.empty() && !valid_event_id(since))
    return error_page(res, *s, 400, "Bad request", "'since' must be an event id (<ms>-<seq>)");
  const std::string actor = req.get_param_value(field::kActor);
  if (!valid_actor(actor)) return error_page(res, *s, 400, "Bad request", "'actor' must be at most 128 printable characters");

  std::vector<Value> items;
  std::string next;
  if (since.empty()) {
    auto recent = recent_log(kActivityRows, types, actor);
    if (!recent) return error_page(res, *s, 503, "Reading the activity log failed", recent.error().message);
    items = std::move(*recent);
  } else {
    auto page = log_page(since, kActivityRows, types, actor);
    if (!page) return error_page(res, *s, 503, "Reading the activity log failed", page.error().message);
    items = std::move(page->items);
    if (page->next != since) next = page->next;
  }
  std::string filter_query;
  for (const auto& t : types) filter_query += "&type=" + url_component(t);
  if (!actor.empty()) filter_query += "&actor=" + url_component(actor);

  PageData data;
  PageList checkboxes;
  for (const auto& t : kEventTypes) {
    PageData box;
    box.set("type", t);
    box.set("checked", std::find(types.begin(), types.end(), t) != types.end());
    checkboxes.push_back(box);
  }
  data.set("types", checkboxes);
  data.set("actor", actor);
  if (!since.empty()) data.set("since", since);
  // Live following continues from the last entry shown; when paging through
  // older entries it stays off.
  std::string stream_url;
  if (since.empty() || next.empty()) {
    const std::string last = items.empty() ? (since.empty() ? std::to_string(unix_ms()) + "-0" : since)
                                            : reply_str(items.back(), field::kId);
    stream_url = "/events/stream?since=" + url_component(last) + filter_query;
  }
  data.set("events", event_table(items, stream_url));
  data.set("start_url", "/activity?since=0-0" + filter_query);
  if (!next.empty()) data.set("next_url", "/activity?since=" + url_component(next) + filter_query);
  send_page(res, 200, layout("Activity", "/activity", *s, render_page("activity", data)));
}

// Server-Sent Events: first the log after the client's last id (from
// Last-Event-ID on a reconnect, else ?since=), then live events from the
// feed, skipping any id not after the last one sent. The feed position is
// taken before each catch-up, so an event published meanwhile is seen by
// one or the other; while idle the log is read again every few seconds,
// which also brings events a worker logged but could not publish.
void Console::stream(const Req& req, Res& res) {
  if (!session_of(req)) {
    res.status = 401;
    res.set_content("not logged in\n", "text/plain");
    return;
  }
  struct State {
    std::string last_id;  // last sent
    std::string scan;     // log read up to here
    std::vector<std::string> types;
    std::string actor;
    bool caught_up = false;
    uint64_t next_seq = 0;
    Clock::time_point last_write, last_poll;
    bool started = false;
  };
  auto st = std::make_shared<State>();
  std::string since = req.get_header_value("Last-Event-ID");
  if (since.empty()) since = req.get_param_value(field::kSince);
  if (since.empty()) since = std::to_string(unix_ms()) + "-0";
  if (!valid_event_id(since)) {
    res.status = 400;
    res.set_content("bad event id: expected <ms>-<seq>\n", "text/plain");
    return;
  }
  for (size_t i = 0; i < req.get_param_value_count(field::kType); ++i) {
    const std::string t = req.get_param_value(field::kType, i);
    if (!valid_type(t)) {
      res.status = 400;
      res.set_content("bad event type\n", "text/plain");
      return;
    }
    if (st->types.size() < 64) st->types.push_back(t);
  }
  st->actor = req.get_param_value(field::kActor);
  if (!valid_actor(st->actor)) {
    res.status = 400;
    res.set_content("bad actor\n", "text/plain");
    return;
  }
  if (streams_.fetch_add(1) >= options_.max_streams) {
    streams_.fetch_sub(1);
    res.status = 503;
    res.set_header("Retry-After", "5");
    res.set_content("too many event streams\n", "text/plain");
    return;
  }
  st->last_id = st->scan = since;
  res.set_header("X-Accel-Buffering", "no");
  res.set_chunked_content_provider(
      "text/event-stream",
      [this, st](size_t, httplib::DataSink& sink) {
        if (stopping_) return false;
        auto write = [&](const std::string& text) {
          st->last_write = Clock::now();
          return sink.write(text.data(), text.size());
        };
        auto send = [&](const Value& e) {
          const std::string id = reply_str(e, field::kId);
          if (!event_id_less(st->last_id, id)) return true;
          if (!st->types.empty() &&
              std::find(st->types.begin(), st->types.end(), reply_str(e, field::kType)) == st->types.end())
            return true;
          if (!st->actor.empty() && !acted_by(e, st->actor))
            return true;
          st->last_id = id;
          return write("id: " + id + "\ndata: " + to_json(e) + "\n\n");
        };
        if (!st->started) {
          st->started = true;
          if (!write("retry: 2000\n: primary-web event stream\n\n")) return false;
        }
        const auto now = Clock::now();
        if (!st->caught_up || now - st->last_poll > 5s) {
          if (!st->caught_up) st->next_seq = feed_.head();
          for (int pages = 0; pages < 100 && !stopping_; ++pages) {
            auto page = log_page(st->scan, 500, st->types, st->actor);
            if (!page) break;  // the broker is away; live events and the next poll carry on
            for (const auto& e : page->items)
              if (!send(e)) return false;
            if (page->next.empty() || page->next == st->scan) break;
            if (event_id_less(st->scan, page->next)) st->scan = page->next;
            else break;
          }
          st->caught_up = true;
          st->last_poll = Clock::now();
        }
        uint64_t oldest = 0;
        auto entries = feed_.wait(st->next_seq, 500ms, &oldest);
        if (oldest > st->next_seq) st->caught_up = false;  // the ring moved past us: read the log
        for (const auto& e : entries) {
          st->next_seq = e.seq + 1;
          if (!send(e.event)) return false;
        }
        if (Clock::now() - st->last_write > 15s && !write(": keep-alive\n\n")) return false;
        return !stopping_;
      },
      [this](bool) { streams_.fetch_sub(1); });
}

// ---------------------------------------------------------------- updates

void Console::updates(const Req& req, Res& res) {
  auto s = page_session(req, res);
  if (!s) return;
  auto r = update_call(opname::kReleases);
  PageData data;
  int status = 200;
  if (!ok_reply(r)) {
    status = http_status(code_of(r));
    data.set("error", code_of(r) + ": " + message_of(r));
  } else {
    PageList releases;
    if (const Value* items = r->find(field::kItems); items && items->is_array())
      for (const Value& it : items->as_array()) {
        const int64_t pct = reply_int(it, field::kRollout, 100);
        PageData release;
        release.set("component", reply_str(it, field::kComponent));
        release.set("version", reply_str(it, field::kVersion));
        release.set("channel", reply_str(it, field::kChannel));
        release.set("size", std::to_string(reply_int(it, field::kSize, 0)));
        release.set("state", reply_str(it, field::kState));
        release.set("rollout", std::to_string(pct));
        // A held release reports rollout 0: Approve offers all clients, as primaryctl does.
        release.set("offer", std::to_string(reply_str(it, field::kState) == "approved" ? pct : 100));
        release.set("issued", time_text(reply_int(it, field::kIssued, 0)));
        release.set("notes", reply_str(it, field::kNotes));
        releases.push_back(release);
      }
    data.set("releases", releases);
  }
  // The last sync or import job, as releases.sync reports it: "Sync now"
  // only starts one, and this is where its outcome shows.
  if (const Value* job = ok_reply(r) ? r->find(field::kSync) : nullptr; job && job->is_map()) {
    PageData last;
    last.set("kind", reply_str(*job, "kind") == "import" ? "import" : field::kSync);
    last.set("job", reply_str(*job, field::kJob));
    last.set("done", reply_str(*job, field::kState) == "done");
    last.set("started", time_text(reply_int(*job, field::kStartedAt, 0)));
    last.set("result", reply_str(*job, field::kResult));
    last.set("added", std::to_string(reply_int(*job, field::kAdded, 0)));
    last.set("failed", std::to_string(reply_int(*job, field::kFailed, 0)));
    last.set("finished", time_text(reply_int(*job, field::kFinishedAt, 0)));
    if (const std::string m = reply_str(*job, field::kMessage); !m.empty()) last.set("message", m);
    data.set("last_job", last);
  }
  data.set("csrf", s->csrf);
  send_page(res, status, layout("Updates", "/updates", *s, render_page("updates", data)));
}

void Console::do_update(const Req& req, Res& res, const std::string& op) {
  auto s = form_session(req, res, req.get_param_value("csrf"));
  if (!s) return;
  Value::Map fields;
  if (op != field::kSync) {
    fields.emplace_back(field::kComponent, Value(req.get_param_value(field::kComponent)));
    fields.emplace_back(field::kVersion, Value(req.get_param_value(field::kVersion)));
  }
  if (op == "approve") {
    auto rollout = int_param(req, field::kRollout, 0, 100);
    if (!rollout) return error_page(res, *s, 400, "Bad request", rollout.error().message);
    if (*rollout) fields.emplace_back(field::kRollout, Value(**rollout));
  }
  auto r = update_call(op, std::move(fields));
  if (!ok_reply(r)) return failed(res, *s, "Update " + op, r);
  sessions_.set_flash(s->id,
                      op == field::kSync ? "Sync with the vendor feed started (job " + reply_str(*r, field::kJob) +
                                         "); its outcome shows under Vendor feed once it is done."
                                   : (op == "approve" ? "Approved " : "Held ") + req.get_param_value(field::kComponent) +
                                         " " + req.get_param_value(field::kVersion) + ".",
                      false);
  res.set_redirect("/updates", 303);
}

// The bundle is streamed to a private file under DATA/uploads (never held in
// memory), handed to update.control import by path, and removed afterwards.
// The form's csrf field comes before the file, so the token is checked
// before a byte of the bundle is written.
void Console::do_import(const Req& req, Res& res, const httplib::ContentReader& reader) {
  auto s = session_of(req);
  if (!s) {
    res.status = 403;
    res.set_content("403 Forbidden: not logged in\n", "text/plain");
    return;
  }
  if (!req.is_multipart_form_data()) return error_page(res, *s, 400, "Bad request", "expected a multipart form upload");
  const std::string dir = options_.data_dir + "/uploads";
  ::mkdir(dir.c_str(), 0700);
  std::string path;
  int fd = -1;
  std::string field, csrf;
  bool token_ok = false, too_big = false, io_error = false;
  size_t written = 0;
  const bool read_ok = reader(
      [&](const httplib::MultipartFormData& part) {
        field = part.name;
        if (field == "bundle") {
          token_ok = same_secret(csrf, s->csrf);
          if (!token_ok || fd >= 0) return false;
          path = dir + "/bundle.XXXXXX";
          fd = ::mkstemp(path.data());
          if (fd < 0) {
            io_error = true;
            return false;
          }
        }
        return true;
      },
      [&](const char* data, size_t n) {
        if (field == "csrf") {
          if (csrf.size() + n > 256) return false;
          csrf.append(data, n);
        } else if (field == "bundle" && fd >= 0) {
          if (written + n > options_.max_upload) {
            too_big = true;
            return false;
          }
          if (::write(fd, data, n) != static_cast<ssize_t>(n)) {
            io_error = true;
            return false;
          }
          written += n;
        }
        return true;
      });
  if (fd >= 0) ::close(fd);
  struct Remove {
    std::string path;
    ~Remove() {
      if (!path.empty()) ::unlink(path.c_str());
    }
  } remove{path};
  if (!token_ok) {
    res.status = 403;
    res.set_content("403 Forbidden: missing or wrong form token (CSRF); reload the page\n", "text/plain");
    return;
  }
  if (too_big) return error_page(res, *s, 413, "Upload too large", "the bundle is larger than the console accepts");
  if (io_error) return error_page(res, *s, 507, "Upload failed", "cannot store the upload under " + dir + ": " + std::strerror(errno));
  if (!read_ok || written == 0) return error_page(res, *s, 400, "Bad request", "the upload was incomplete or empty");
  auto r = update_call("import", {{field::kPath, Value(path)}});
  if (!ok_reply(r)) return failed(res, *s, "Importing the bundle", r);
  // The updater runs the import as a job after answering, reading the file
  // then: it is removed only once the job is done (as primaryctl waits).
  const std::string job = reply_str(*r, field::kJob);
  std::optional<Value> outcome;
  for (const auto deadline = Clock::now() + std::chrono::minutes(10); !stopping_ && Clock::now() < deadline;
       std::this_thread::sleep_for(200ms)) {
    auto st = update_call(opname::kReleases);
    const Value* sync = ok_reply(st) ? st->find(field::kSync) : nullptr;
    if (sync && reply_str(*sync, field::kJob) == job && reply_str(*sync, field::kState) == "done") {
      outcome = *sync;
      break;
    }
  }
  const std::string size = " (" + std::to_string(written) + " bytes)";
  if (!outcome) {
    remove.path.clear();  // still being read
    sessions_.set_flash(s->id, "The import of the bundle" + size + " is still running; see the activity log.", false);
  } else if (reply_str(*outcome, field::kResult) == "ok") {
    sessions_.set_flash(s->id, "Imported the bundle" + size + ": " + std::to_string(reply_int(*outcome, field::kAdded, 0)) +
                                   " added, " + std::to_string(reply_int(*outcome, field::kFailed, 0)) + " failed.", false);
  } else {
    sessions_.set_flash(s->id, "Importing the bundle" + size + " failed: " + reply_str(*outcome, field::kResult) + ": " +
                                   reply_str(*outcome, field::kMessage), true);
  }
  res.set_redirect("/updates", 303);
}

// ---------------------------------------------------------------- firewall

void Console::firewall(const Req& req, Res& res) {
  auto s = page_session(req, res);
  if (!s) return;
  auto r = call(svc::kAdmin, opname::kFirewall);
  if (!ok_reply(r)) return failed(res, *s, "Reading the firewall rules", r);
  std::string ports;
  if (const Value* p = r->find(field::kPorts); p && p->is_array())
    for (const Value& port : p->as_array())
      ports += (ports.empty() ? "" : ", ") + std::to_string(reply_int(port, field::kPort, 0)) + "/" +
               reply_str(port, field::kProtocol);
  PageData data;
  data.set("ports", ports.empty() ? "none" : ports);
  data.set("rules", entry_list(*r, field::kRules));
  send_page(res, 200, layout("Firewall", "/firewall", *s, render_page("firewall", data)));
}

// ---------------------------------------------------------------- metrics

void Console::metrics(const Req& req, Res& res) {
  const bool loopback = !req.remote_addr.empty() && is_loopback(req.remote_addr);
  switch (metrics_access(loopback, options_.metrics_require_token, options_.metrics_token,
                         req.get_header_value("Authorization"))) {
    case MetricsAccess::Allow: break;
    case MetricsAccess::Unauthorized:
      res.status = 401;
      res.set_header("WWW-Authenticate", "Bearer realm=\"primary-web metrics\"");
      res.set_content("401 Unauthorized: send Authorization: Bearer TOKEN (the --metrics-token-file token)\n",
                      "text/plain; charset=utf-8");
      return;
    case MetricsAccess::Forbidden:
      res.status = 403;
      res.set_content("403 Forbidden: metrics are served to loopback peers only; set --metrics-token-file "
                      "to scrape from elsewhere with a bearer token\n",
                      "text/plain; charset=utf-8");
      return;
  }
  auto r = call(svc::kAdmin, opname::kMetrics);
  if (!ok_reply(r)) {
    const std::string code = code_of(r);
    res.status = (!r || code == "UNAVAILABLE" || code == "BUSY") ? 503 : 502;
    res.set_content(std::to_string(res.status) + " metrics not available: " + code + ": " + message_of(r) + "\n",
                    "text/plain; charset=utf-8");
    return;
  }
  res.set_content(render_prometheus(*r), "text/plain; version=0.0.4; charset=utf-8");
}

}  // namespace primary::web
