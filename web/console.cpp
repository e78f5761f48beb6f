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
#include <memory>
#include <set>
#include <thread>

#include "common/crypto.hpp"
#include "common/text.hpp"
#include "common/process.hpp"
#include "common/schema.hpp"
#include "web/html.hpp"
#include "web/metrics.hpp"
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
    event::kCommandDone};

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

bool valid_name(const std::string& s) {
  return !s.empty() && s.size() <= 63 && std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
  });
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

std::string csrf_field(const Session& s) {
  return "<input type=\"hidden\" name=\"csrf\" value=\"" + esc(s.csrf) + "\">";
}

std::string row(const std::string& key, const std::string& value_html) {
  return "<tr><th>" + esc(key) + "</th><td>" + value_html + "</td></tr>";
}

// One activity row: time, type, computer, other fields, id.
std::string event_row(const Value& e) {
  std::string details;
  if (e.is_map()) {
    auto fields = e.as_map();
    std::sort(fields.begin(), fields.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    for (const auto& [k, v] : fields)
      if (k != field::kId && k != field::kTs && k != field::kType && k != field::kComputer)
        details += (details.empty() ? "" : " ") + k + "=" + value_text(v);
  }
  return "<tr><td>" + esc(time_text(reply_int(e, field::kTs, 0))) + "</td><td>" + esc(reply_str(e, field::kType)) +
         "</td><td>" + esc(reply_str(e, field::kComputer)) + "</td><td>" + esc(details) +
         "</td><td class=\"code\">" + esc(reply_str(e, field::kId)) + "</td></tr>";
}

std::string event_table(const std::vector<Value>& items, const std::string& stream_url) {
  std::string html = "<table id=\"activity\"";
  if (!stream_url.empty()) html += " data-stream=\"" + esc(stream_url) + "\"";
  html += "><thead><tr><th>Time</th><th>Type</th><th>Computer</th><th>Details</th><th>Id</th></tr></thead><tbody>";
  if (items.empty()) html += "<tr id=\"empty\"><td colspan=\"5\" class=\"muted\">No events.</td></tr>";
  for (const auto& e : items) html += event_row(e);
  return html + "</tbody></table>";
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
  if (code == "BAD_REQUEST" || code == "UNKNOWN_OP" || code == "INVALID_UNLOCK_CODE") return 400;
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

void Console::install(httplib::Server& svr) {
  svr.set_payload_max_length(options_.max_upload);
  svr.set_pre_routing_handler([](const Req& req, Res& res) {
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
    res.set_content("<!doctype html><title>Error</title><p>HTTP " + std::to_string(res.status) +
                        "</p><p><a href=\"/\">Back to the console</a></p>",
                    "text/html; charset=utf-8");
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

  svr.Get("/static/style.css", [](const Req&, Res& res) {
    res.set_header("Cache-Control", "no-cache");
    res.set_content(std::string(kStyleCss), "text/css; charset=utf-8");
  });
  for (const char* path : {"/static/icon.svg", "/favicon.ico"})
    svr.Get(path, [](const Req&, Res& res) {
      res.set_header("Cache-Control", "max-age=86400");
      res.set_content(std::string(kIconSvg), "image/svg+xml");
    });
  svr.Get("/static/app.js", [](const Req&, Res& res) {
    res.set_header("Cache-Control", "no-cache");
    res.set_content(std::string(kAppJs), "text/javascript; charset=utf-8");
  });
  svr.Get("/login", [this](const Req& req, Res& res) { login_page(req, res, 200, ""); });
  svr.Post("/login", [this](const Req& req, Res& res) { login(req, res); });
  svr.Post("/logout", [this](const Req& req, Res& res) { logout(req, res); });
  svr.Get("/", [this](const Req& req, Res& res) { overview(req, res); });
  svr.Post("/register", [this](const Req& req, Res& res) { do_register(req, res); });
  svr.Post("/unlock", [this](const Req& req, Res& res) { do_unlock(req, res); });
  svr.Get("/computers", [this](const Req& req, Res& res) { computers(req, res); });
  svr.Get("/computers/find", [this](const Req& req, Res& res) { find_computer(req, res); });
  svr.Post("/computers/reserve", [this](const Req& req, Res& res) { do_reserve(req, res); });
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
  std::string notice;
  auto hash = read_password_hash(password_file(options_.data_dir));
  if (!hash)
    notice = "<div class=\"error\">" +
             esc(hash.error().code == Code::NotFound
                     ? "No console password is set. Set one on the server with: primaryctl "
                       "web-password --data-dir " + options_.data_dir
                     : hash.error().message) +
             "</div>";
  if (!message.empty()) notice += "<div class=\"error\">" + esc(message) + "</div>";
  res.status = status;
  res.set_content(
      "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Log in - Primary "
      "Server</title><link rel=\"stylesheet\" href=\"/static/style.css\"><link rel=\"icon\" type=\"image/svg+xml\" href=\"/static/icon.svg\"></head><body><main "
      "class=\"login\"><section class=\"card\"><h1>Primary Server</h1>" +
          notice +
          "<form method=\"post\" action=\"/login\"><input type=\"hidden\" name=\"csrf\" value=\"" +
          esc(token) +
          "\"><p><label>Admin password<br><input type=\"password\" name=\"password\" "
          "autocomplete=\"current-password\" autofocus required></label></p><p><button "
          "type=\"submit\">Log in</button></p></form></section></main></body></html>",
      "text/html; charset=utf-8");
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
  std::string html =
      "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" "
      "content=\"width=device-width, initial-scale=1\"><title>" + esc(title) +
      " - Primary Server</title><link rel=\"stylesheet\" href=\"/static/style.css\"><link rel=\"icon\" type=\"image/svg+xml\" href=\"/static/icon.svg\"></head><body>"
      "<header><span class=\"brand\">Primary Server</span><nav>";
  for (const auto& [href, name] : nav)
    html += "<a href=\"" + href + "\"" + (href == active ? " class=\"on\"" : "") + ">" + name + "</a>";
  html += "</nav><form method=\"post\" action=\"/logout\">" + csrf_field(s) +
          "<button class=\"plain\" type=\"submit\">Log out</button></form></header><main>";
  auto [flash, error] = sessions_.take_flash(s.id);
  if (!flash.empty()) html += "<div class=\"" + std::string(error ? "error" : "flash") + "\">" + esc(flash) + "</div>";
  html += "<h1>" + esc(title) + "</h1>" + body + "</main><script src=\"/static/app.js\"></script></body></html>";
  return html;
}

void Console::send_page(Res& res, int status, const std::string& html) {
  res.status = status;
  res.set_content(html, "text/html; charset=utf-8");
}

void Console::error_page(Res& res, const Session& s, int status, const std::string& title,
                         const std::string& message) {
  send_page(res, status,
            layout(title, "", s,
                   "<div class=\"error\">" + esc(message) +
                       "</div><p>Use the browser's Back button to correct the form, or go to the "
                       "<a href=\"/\">Overview</a>.</p>"));
}

void Console::failed(Res& res, const Session& s, const std::string& what, const Result<Value>& reply) {
  error_page(res, s, http_status(code_of(reply)), what + " failed",
             code_of(reply) + ": " + message_of(reply));
}

// ---------------------------------------------------------------- broker calls

Result<Value> Console::call(const std::string& service, const std::string& op, Value::Map fields) {
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
                                  const std::vector<std::string>& types) {
  auto r = call(svc::kAdmin, opname::kLog, log_request(since, limit, types));
  if (!r) return r.error();
  if (!reply_ok(*r)) return Error{Code::Unavailable, code_of(r) + ": " + message_of(r)};
  return log_page_of(*r);
}

// admin.log only reads forward from an id, so this steps back in time from
// now (1 minute, then 4 times further each step) until a window holds
// `want` entries or reaches the oldest one, reading each window forward.
// At most kMaxCalls requests: a rare type in a huge log shows what was found.
Result<std::vector<Value>> Console::recent_log(size_t want, const std::vector<std::string>& types) {
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
      auto page = log_page(from, 1000, types);
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
  std::string body = "<div class=\"counts\">";
  for (const auto& [key, label] : std::vector<std::pair<std::string, std::string>>{
           {field::kPurchased, "Purchased"}, {field::kReserved, "Reserved"}, {field::kActive, "Active"},
           {field::kLost, "Lost"}, {field::kNeverSeen, "Never seen"}})
    body += "<div id=\"count-" + key + "\"><b>" + std::to_string(reply_int(st, key, 0)) + "</b>" + label + "</div>";
  body += "</div><section class=\"card\"><h2>Server</h2><table class=\"kv\">";
  const std::string serial = reply_str(st, field::kSerial);
  body += row("Serial", serial.empty() ? "<span class=\"muted\">none unlocked</span>"
                                       : "<span id=\"serial\" class=\"code\">" + esc(serial) + "</span>");
  auto reg = call(svc::kLicenseControl, opname::kRegistration);
  if (ok_reply(reg))
    body += row("Registered serial", "<span class=\"code\">" + esc(reply_str(*reg, field::kSerial)) + "</span>") +
            row("Registration code", "<span id=\"registration\" class=\"code\">" +
                                         esc(reply_str(*reg, field::kRegistrationCode)) + "</span>");
  body += row("Version", esc(reply_str(st, field::kVersion))) + row("Uptime", esc(duration_text(reply_int(st, field::kUptimeS, 0))));
  body += "</table><h2>Services</h2><table><thead><tr><th>Service</th><th>Workers</th></tr></thead><tbody>";
  if (const Value* services = st.find(field::kServices); services && services->is_map())
    for (const auto& [name, n] : services->as_map())
      body += "<tr><td>" + esc(name) + "</td><td>" + esc(value_text(n)) + "</td></tr>";
  body += "</tbody></table></section>";
  body += "<section class=\"card\"><h2>Register a serial number</h2><form method=\"post\" action=\"/register\">" +
          csrf_field(*s) +
          "<input name=\"serial\" placeholder=\"Serial number\" required maxlength=\"64\"> <button "
          "type=\"submit\">Register</button></form><p class=\"muted\">Shows the registration code to "
          "send to the vendor, who answers with an unlock code.</p></section>";
  body += "<section class=\"card\"><h2>Enter an unlock code</h2><form method=\"post\" action=\"/unlock\">" +
          csrf_field(*s) +
          "<textarea name=\"unlock_code\" required maxlength=\"4096\"></textarea><p><button "
          "type=\"submit\">Unlock</button></p></form></section>";
  send_page(res, 200, layout("Overview", "/", *s, body));
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
  if (!state.empty()) fields.emplace_back(field::kState, Value(state));
  if (!cursor.empty()) fields.emplace_back(field::kCursor, Value(cursor));
  auto r = call(svc::kAdmin, opname::kComputers, std::move(fields));
  if (!ok_reply(r)) return failed(res, *s, "Listing computers", r);

  auto option = [](const std::string& value, const std::string& label, const std::string& current) {
    return "<option value=\"" + value + "\"" + (value == current ? " selected" : "") + ">" + label + "</option>";
  };
  std::string body =
      "<section class=\"card\"><form method=\"get\" action=\"/computers\">State <select name=\"state\">" +
      option("", "all", state) + option(field::kReserved, "never seen", state) + option(field::kActive, field::kActive, state) +
      option(field::kLost, field::kLost, state) + "</select> Sort <select name=\"sort\">" + option("name", "by name", sort) +
      option("last-seen", "last seen first", sort) +
      "</select> <button type=\"submit\">Show</button></form>"
      "<form method=\"get\" action=\"/computers/find\">Computer name <input name=\"name\" maxlength=\"63\" "
      "required> <button type=\"submit\">Open</button></form></section>";
  body += "<table id=\"computers\"><thead><tr><th>Computer</th><th>State</th><th>License</th><th>Reserved</th>"
          "<th>Last seen</th><th>Version</th></tr></thead><tbody>";
  const Value* items = r->find(field::kItems);
  size_t shown = 0;
  if (items && items->is_array())
    for (const Value& it : items->as_array()) {
      ++shown;
      const std::string name = reply_str(it, field::kComputer);
      const std::string st = reply_str(it, field::kState);
      body += "<tr><td><a href=\"/computers/" + url_component(name) + "\">" + esc(name) +
              "</a></td><td class=\"state-" + esc(st) + "\">" + esc(st == field::kReserved ? "never seen" : st) +
              "</td><td class=\"code\">" + esc(reply_str(it, field::kLicense)) + "</td><td>" +
              esc(time_text(reply_int(it, field::kReservedAt, 0))) + "</td><td>" +
              esc(time_text(reply_int(it, field::kLastSeen, 0))) +
              "</td><td>" + esc(reply_str(it, field::kVersion).empty() ? "-" : reply_str(it, field::kVersion)) + "</td></tr>";
    }
  if (shown == 0) body += "<tr><td colspan=\"6\" class=\"muted\">No computers on this page.</td></tr>";
  body += "</tbody></table><div class=\"pager\">";
  const std::string base = "/computers?sort=" + url_component(sort) + "&state=" + url_component(state) +
                           "&limit=" + std::to_string(page_size);
  if (!cursor.empty()) body += "<a href=\"" + esc(base) + "\">First page</a> ";
  if (const std::string next = reply_str(*r, field::kCursor); !next.empty())
    body += "<a id=\"next\" href=\"" + esc(base + "&cursor=" + url_component(next)) + "\">Next page</a>";
  body += "</div>";
  body += "<section class=\"card\"><h2>Reserve a license for a new computer</h2><form method=\"post\" "
          "action=\"/computers/reserve\">" +
          csrf_field(*s) +
          "<input name=\"computer\" placeholder=\"Computer name\" required maxlength=\"63\" "
          "pattern=\"[A-Za-z0-9._\\-]{1,63}\"> <button type=\"submit\">Reserve</button></form>"
          "<p class=\"muted\">A reservation is permanent: the license is never moved to another "
          "computer.</p></section>";
  send_page(res, 200, layout("Computers", "/computers", *s, body));
}

void Console::find_computer(const Req& req, Res& res) {
  auto s = page_session(req, res);
  if (!s) return;
  std::string name = req.get_param_value("name");
  while (!name.empty() && name.back() == ' ') name.pop_back();
  while (!name.empty() && name.front() == ' ') name.erase(0, 1);
  if (!valid_name(name))
    return error_page(res, *s, 400, "Bad request", "a computer name is 1 to 63 of A-Z a-z 0-9 - _ .");
  res.set_redirect("/computers/" + url_component(upper(name)), 303);
}

void Console::computer(const Req& req, Res& res) {
  auto s = page_session(req, res);
  if (!s) return;
  const std::string name = req.matches[1];
  if (!valid_name(name))
    return error_page(res, *s, 400, "Bad request", "a computer name is 1 to 63 of A-Z a-z 0-9 - _ .");
  auto st = call(svc::kAdmin, opname::kComputer, {{field::kComputer, Value(name)}});
  if (!ok_reply(st)) return failed(res, *s, "Looking up " + name, st);
  const Value& c = *st;
  const std::string stored = reply_str(c, field::kComputer);
  std::string body = "<section class=\"card\"><table class=\"kv\">";
  body += row("Computer", "<span id=\"computer\">" + esc(stored) + "</span>");
  body += row("License", "<span id=\"license\" class=\"code\">" + esc(reply_str(c, field::kLicense)) + "</span>");
  body += row("State", esc(reply_str(c, field::kState) == field::kReserved ? "never seen" : reply_str(c, field::kState)));
  body += row("Reserved", esc(time_text(reply_int(c, field::kReservedAt, 0))));
  body += row("First seen", esc(time_text(reply_int(c, field::kFirstSeen, 0))));
  body += row("Last seen", esc(time_text(reply_int(c, field::kLastSeen, 0))));
  body += row("Version", esc(reply_str(c, field::kVersion).empty() ? "-" : reply_str(c, field::kVersion)));
  body += row("Address", esc(reply_str(c, field::kPeer).empty() ? "-" : reply_str(c, field::kPeer)));
  if (c.find(field::kClockSkewS))
    body += row("Clock skew", "<span id=\"clock-skew\">" + std::to_string(reply_int(c, field::kClockSkewS, 0)) +
                                  " s</span> (the Client's clock; it is not refused for it)");
  body += row("Commands queued", std::to_string(reply_int(c, field::kCommandsPending, 0)));
  body += "</table><p><a id=\"setup\" href=\"/computers/" + url_component(stored) +
          "/setup.json\">Download the setup file</a> <span class=\"muted\">(for the Client installer; it "
          "holds this computer's license)</span></p></section>";
  body += "<h2>Recent activity</h2>";
  auto recent = recent_log(kComputerScan, {});
  if (!recent) {
    body += "<div class=\"error\">" + esc(recent.error().message) + "</div>";
  } else {
    std::vector<Value> mine;
    for (auto& e : *recent)
      if (reply_str(e, field::kComputer) == stored) mine.push_back(std::move(e));
    body += "<p class=\"muted\">In the last " + std::to_string(recent->size()) + " log entries.</p>" +
            event_table(mine, "");
  }
  send_page(res, 200, layout(stored, "/computers", *s, body));
}

void Console::setup_file(const Req& req, Res& res) {
  auto s = page_session(req, res);
  if (!s) return;
  const std::string name = req.matches[1];
  if (!valid_name(name))
    return error_page(res, *s, 400, "Bad request", "a computer name is 1 to 63 of A-Z a-z 0-9 - _ .");
  auto r = call(svc::kLicenseControl, opname::kSetupInfo, {{field::kComputer, Value(name)}});
  if (!ok_reply(r)) return failed(res, *s, "Making the setup file of " + name, r);
  // The same file as `primaryctl setup-info NAME`: the reply without its envelope fields.
  Value::Map setup;
  for (const auto& [k, v] : r->as_map())
    if (k != field::kOk && k != field::kRid) setup.emplace_back(k, v);
  res.set_header("Content-Disposition", "attachment; filename=\"setup-" + reply_str(*r, field::kComputer) + ".json\"");
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

  std::vector<Value> items;
  std::string next;
  if (since.empty()) {
    auto recent = recent_log(kActivityRows, types);
    if (!recent) return error_page(res, *s, 503, "Reading the activity log failed", recent.error().message);
    items = std::move(*recent);
  } else {
    auto page = log_page(since, kActivityRows, types);
    if (!page) return error_page(res, *s, 503, "Reading the activity log failed", page.error().message);
    items = std::move(page->items);
    if (page->next != since) next = page->next;
  }
  std::string type_query;
  for (const auto& t : types) type_query += "&type=" + url_component(t);

  std::string body = "<section class=\"card\"><form method=\"get\" action=\"/activity\">";
  for (const auto& t : kEventTypes)
    body += "<label><input type=\"checkbox\" name=\"type\" value=\"" + t + "\"" +
            (std::find(types.begin(), types.end(), t) != types.end() ? " checked" : "") + "> " + t + "</label> ";
  body += "<button type=\"submit\">Filter</button> <a href=\"/activity\">All types</a></form></section>";
  body += "<p>" + std::string(since.empty() ? "The newest entries, following live" : "From " + esc(since)) +
          "<span id=\"live\" class=\"muted\"></span></p>";
  // Live following continues from the last entry shown; when paging through
  // older entries it stays off.
  std::string stream_url;
  if (since.empty() || next.empty()) {
    const std::string last = items.empty() ? (since.empty() ? std::to_string(unix_ms()) + "-0" : since)
                                            : reply_str(items.back(), field::kId);
    stream_url = "/events/stream?since=" + url_component(last) + type_query;
  }
  body += event_table(items, stream_url);
  body += "<div class=\"pager\"><a href=\"/activity?since=0-0" + esc(type_query) + "\">From the start</a>";
  if (!next.empty()) body += " <a id=\"next\" href=\"/activity?since=" + esc(url_component(next) + type_query) + "\">Next page</a>";
  body += "</div>";
  send_page(res, 200, layout("Activity", "/activity", *s, body));
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
            auto page = log_page(st->scan, 500, st->types);
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
  std::string body;
  int status = 200;
  if (!ok_reply(r)) {
    status = http_status(code_of(r));
    body += "<div class=\"error\" id=\"updates-error\">Updates are not available: " +
            esc(code_of(r) + ": " + message_of(r)) + "</div>";
  } else {
    body += "<table id=\"releases\"><thead><tr><th>Component</th><th>Version</th><th>Channel</th><th>Size</th>"
            "<th>State</th><th>Rollout</th><th>Issued</th><th>Notes</th><th></th></tr></thead><tbody>";
    const Value* items = r->find(field::kItems);
    size_t n = 0;
    if (items && items->is_array())
      for (const Value& it : items->as_array()) {
        ++n;
        const std::string comp = reply_str(it, field::kComponent), ver = reply_str(it, field::kVersion);
        const std::string hidden = csrf_field(*s) + "<input type=\"hidden\" name=\"component\" value=\"" +
                                   esc(comp) + "\"><input type=\"hidden\" name=\"version\" value=\"" +
                                   esc(ver) + "\">";
        const int64_t pct = reply_int(it, field::kRollout, 100);
        // A held release reports rollout 0: Approve offers all clients, as primaryctl does.
        const int64_t offer = reply_str(it, field::kState) == "approved" ? pct : 100;
        body += "<tr><td>" + esc(comp) + "</td><td>" + esc(ver) + "</td><td>" + esc(reply_str(it, field::kChannel)) +
                "</td><td>" + std::to_string(reply_int(it, field::kSize, 0)) + "</td><td>" + esc(reply_str(it, field::kState)) +
                "</td><td>" + std::to_string(pct) + "%</td><td>" + esc(time_text(reply_int(it, field::kIssued, 0))) +
                "</td><td>" + esc(reply_str(it, field::kNotes)) + "</td><td><form class=\"inline\" method=\"post\" "
                "action=\"/updates/approve\">" + hidden +
                "<input type=\"number\" name=\"rollout\" min=\"0\" max=\"100\" value=\"" + std::to_string(offer) +
                "\"> <button type=\"submit\">Approve</button></form> <form class=\"inline\" method=\"post\" "
                "action=\"/updates/hold\">" + hidden + "<button type=\"submit\">Hold</button></form></td></tr>";
      }
    if (n == 0) body += "<tr><td colspan=\"9\" class=\"muted\">No releases.</td></tr>";
    body += "</tbody></table>";
  }
  // The last sync or import job, as releases.sync reports it: "Sync now"
  // only starts one, and this is where its outcome shows.
  std::string last_job;
  if (const Value* job = ok_reply(r) ? r->find(field::kSync) : nullptr; job && job->is_map()) {
    const std::string kind = reply_str(*job, "kind") == "import" ? "import" : field::kSync;
    last_job = "<p id=\"last-sync\">Last " + esc(kind) + " (job " + esc(reply_str(*job, field::kJob)) + "): ";
    if (reply_str(*job, field::kState) != "done") {
      last_job += "running since " + esc(time_text(reply_int(*job, field::kStartedAt, 0))) + ".";
    } else {
      last_job += esc(reply_str(*job, field::kResult)) + ", " + std::to_string(reply_int(*job, field::kAdded, 0)) + " added, " +
                  std::to_string(reply_int(*job, field::kFailed, 0)) + " failed, finished " +
                  esc(time_text(reply_int(*job, field::kFinishedAt, 0)));
      if (const std::string m = reply_str(*job, field::kMessage); !m.empty()) last_job += ": " + esc(m);
      last_job += ".";
    }
    last_job += "</p>";
  }
  body += "<section class=\"card\"><h2>Vendor feed</h2>" + last_job +
          "<form method=\"post\" action=\"/updates/sync\">" + csrf_field(*s) +
          "<button type=\"submit\">Sync now</button></form></section>";
  body += "<section class=\"card\"><h2>Import an offline bundle</h2><form method=\"post\" "
          "action=\"/updates/import\" enctype=\"multipart/form-data\">" +
          csrf_field(*s) + "<input type=\"file\" name=\"bundle\" required> <button type=\"submit\">Import</button></form></section>";
  send_page(res, status, layout("Updates", "/updates", *s, body));
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
  std::string body = "<section class=\"card\"><p>Ports to open: <b id=\"ports\">" +
                     esc(ports.empty() ? "none" : ports) + "</b></p></section>";
  if (const Value* rules = r->find(field::kRules); rules && rules->is_map())
    for (const auto& [tool, text] : rules->as_map())
      body += "<h2>" + esc(tool) + "</h2><pre>" + esc(value_text(text)) + "</pre>";
  body += "<p class=\"muted\">To apply them on the server: <span class=\"code\">primaryctl firewall --apply "
          "--tool TOOL --yes</span></p>";
  send_page(res, 200, layout("Firewall", "/firewall", *s, body));
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
