// The web administration console: server-rendered pages over cpp-httplib,
// each built from the same broker operations primaryctl uses (admin,
// license.control, update.control). It holds no state of the product, only
// its own sessions.
//
// Protections, in request order: a pre-routing check bounds request bodies
// (64 KiB except the bundle upload); every page but /login, /static and
// /metrics (loopback or a bearer token, metrics.hpp) needs
// a session cookie (HttpOnly, SameSite=Strict, Secure under HTTPS; random
// 256-bit ids, idle and absolute expiry); every POST needs the session's
// CSRF token (403 otherwise); logins are throttled per client address
// (LoginThrottle: 429 with Retry-After) and password checks run one at a
// time (Argon2id costs 64 MiB each); every response carries a strict
// Content-Security-Policy (scripts and styles only from /static), frame and
// sniffing denials and Cache-Control: no-store; every value from the server
// or the user is HTML-escaped by the page templates (pages.hpp).
//
// This file handles requests and gathers each page's values; the HTML is in
// web/templates/, the stylesheet and script in web/static/.
#pragma once

#include <httplib.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/schema.hpp"
#include "common/value.hpp"
#include "web/broker_link.hpp"
#include "web/pages.hpp"
#include "web/sessions.hpp"

namespace primary::web {

struct ConsoleOptions {
  std::string data_dir;      // password file, uploads
  bool https = false;        // cookies get Secure
  std::chrono::seconds session_idle{1800};
  std::chrono::seconds session_max{12 * 3600};
  size_t max_upload = size_t{4} << 30;  // bytes of one bundle upload
  size_t max_streams = 32;              // concurrent event streams
  std::string metrics_token;            // GET /metrics bearer token; empty: loopback only
  bool metrics_require_token = false;   // ask loopback peers for it too
};

class Console {
 public:
  Console(BrokerLink& link, EventFeed& feed, ConsoleOptions options);

  // Registers every route and handler on `server`.
  void install(httplib::Server& server);
  // Ends open event streams (before the server stops).
  void stop() { stopping_ = true; }

 private:
  using Req = httplib::Request;
  using Res = httplib::Response;

  // Sessions and forms.
  std::optional<Session> session_of(const Req& req);
  std::optional<Session> page_session(const Req& req, Res& res);  // else redirect to /login
  std::optional<Session> form_session(const Req& req, Res& res,
                                      const std::string& token);  // else 403
  std::string session_cookie(const std::string& value, int max_age) const;

  // Pages: one handler per route (install()); metrics needs no session
  // (metrics.hpp).
  using Handler = void(const Req& req, Res& res);
  Handler login, logout, overview, do_register, do_unlock, computers, export_csv, find_computer, computer, setup_file,
      do_reserve, do_seat_code, activity, stream, updates, firewall, metrics;
  void login_page(const Req& req, Res& res, int status, const std::string& message);
  void do_update(const Req& req, Res& res, const std::string& op);
  void do_import(const Req& req, Res& res, const httplib::ContentReader& reader);
  // For /computers/NAME/...: the session and the ok reply of `service` `op`
  // {computer: NAME}; else nullopt, with a redirect to /login, a 400 page or
  // the failure page ("<what> NAME failed") sent.
  std::optional<std::pair<Session, Value>> computer_reply(const Req& req, Res& res, const std::string& service,
                                                          const std::string& op, const std::string& what);

  // Rendering: `body` is a rendered template, put into the layout's page.
  std::string layout(const std::string& title, const std::string& active, const Session& s,
                     const std::string& body);
  void send_page(Res& res, int status, const std::string& html);
  void error_page(Res& res, const Session& s, int status, const std::string& title,
                  const std::string& message);
  // A broker answer that is not ok: its HTTP status and an error page.
  void failed(Res& res, const Session& s, const std::string& what, const Result<Value>& reply);

  // Broker calls.
  Result<Value> call(const std::string& service, const std::string& op, Value::Map fields = {});
  // update.control, answered UNAVAILABLE at once when no updater is up.
  Result<Value> update_call(const std::string& op, Value::Map fields = {});
  Result<LogPage> log_page(const std::string& since, int64_t limit,
                           const std::vector<std::string>& types, const std::string& actor = {});
  // The Overview's history charts for a period ("48h", "30d", "1y").
  Result<PageList> history_charts(const std::string& period);
  // The newest `want` entries of the log (of `types` and by `actor` if
  // any), oldest first.
  Result<std::vector<Value>> recent_log(size_t want, const std::vector<std::string>& types,
                                        const std::string& actor = {});

  BrokerLink& link_;
  EventFeed& feed_;
  ConsoleOptions options_;
  SessionStore sessions_;
  LoginThrottle throttle_;
  std::mutex password_mu_;  // one Argon2id verification at a time
  std::atomic<bool> stopping_{false};
  std::atomic<size_t> streams_{0};
};

// HTTP status for an error code of the protocol (BAD_REQUEST 400, NOT_FOUND
// 404, NO_LICENSES_LEFT 409, UNAVAILABLE 503, ...).
int http_status(const std::string& code);

}  // namespace primary::web
