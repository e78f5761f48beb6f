// primary-web: the web administration console. See console.hpp.
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <atomic>
#include <filesystem>
#include <memory>
#include <thread>

#include "common/config.hpp"
#include "common/curve.hpp"
#include "common/log.hpp"
#include "common/process.hpp"
#include "web/broker_link.hpp"
#include "web/connection_pool.hpp"
#include "web/console.hpp"
#include "web/listen.hpp"
#include "web/metrics.hpp"
#include "web/password.hpp"

namespace {

// Serves `server` on an inherited listening socket: listen_after_bind()
// accepts on the protected svr_sock_, which bind_to_port() would otherwise
// set. Server::stop() would shut that socket down, for primary-server too,
// which holds it: release() only takes it away from the accept loop, which
// then ends within its idle interval.
struct ListeningSocket : httplib::Server {
  static void adopt(httplib::Server& server, int fd) {
    server.set_idle_interval(0, 100000);
    server.*(&ListeningSocket::svr_sock_) = fd;
  }
  static void release(httplib::Server& server) { (server.*(&ListeningSocket::svr_sock_)).exchange(-1); }
};

}  // namespace

int main(int argc, char** argv) {
  using namespace primary;
  using namespace primary::web;
  Config cfg("primary-web", "Web administration console of the Primary Server");
  cfg.add_string("web", "127.0.0.1:16772", "Listen address HOST:PORT (port 0: any free port)");
  cfg.add_string("data-dir", "./var", "Data directory: keys/web.password, uploads/, run/web.address");
  cfg.add_string("front", "tcp://127.0.0.1:16770", "The broker's front door");
  cfg.add_string("events", "", "The broker's event stream (default: the front door's port + 1)");
  cfg.add_string("endpoints-file", "", "The broker's endpoints file; its front= and events= lines win");
  cfg.add_string("server-public", "", "Server CURVE public key (Z85); empty: insecure broker");
  cfg.add_string("client-key", "", "This console's CURVE secret key file: an admin key (secure mode)");
  cfg.add_string("tls-cert", "", "PEM certificate: serve HTTPS (with --tls-key)");
  cfg.add_string("tls-key", "", "PEM private key of --tls-cert");
  cfg.add_int("web-session-s", 1800, 60, 7 * 86400, "Console sessions end after this long unused");
  cfg.add_string("metrics-token-file", "",
                 "File holding the bearer token GET /metrics asks of non-loopback peers (mode 0600)");
  cfg.add_flag("metrics-require-token", "GET /metrics asks loopback peers for the token too (reverse proxy)");
  cfg.add_int("listen-fd", -1, -1, 1 << 20,
              "Serve on this inherited listening socket (from primary-server) instead of binding --web");
  cfg.add_int("idle-exit-s", 0, 0, 7 * 86400,
              "Exit (status 0) after this long with no connection open (0: never); for --listen-fd");
  cfg.add_config_file();
  add_log_setting(cfg);
  cfg.parse(argc, argv);
  install_stop_signals();
  if (!init_logging("primary-web", cfg.str("log-level")))
    cfg.fail("bad value for log-level: '" + cfg.str("log-level") + "'");

  auto address = parse_listen_address(cfg.str("web"));
  if (!address) cfg.fail("--web: " + address.error().message);
  std::error_code ec;
  const std::string data_dir = std::filesystem::absolute(cfg.str("data-dir"), ec).lexically_normal().string();
  const std::string pw_file = password_file(data_dir);
  auto hash = read_password_hash(pw_file);
  if (!hash && hash.error().code != Code::NotFound) cfg.fail(hash.error().message);
  if (!hash && !is_loopback_host(address->host))
    cfg.fail("refusing to serve the console on " + cfg.str("web") +
             " without a password; set one with `primaryctl web-password --data-dir " + data_dir +
             "` or listen on 127.0.0.1");
  if (cfg.str("tls-cert").empty() != cfg.str("tls-key").empty())
    cfg.fail("--tls-cert and --tls-key go together");

  std::string metrics_token;
  if (!cfg.str("metrics-token-file").empty()) {
    auto token = read_metrics_token(cfg.str("metrics-token-file"));
    if (!token) cfg.fail(token.error().message);
    metrics_token = *token;
  }
  if (cfg.flag("metrics-require-token") && metrics_token.empty())
    cfg.fail("--metrics-require-token needs --metrics-token-file");

  LinkOptions lo;
  lo.front = cfg.str("front");
  lo.events = cfg.str("events");
  lo.endpoints_file = cfg.str("endpoints-file");
  lo.server_public = cfg.str("server-public");
  if (!lo.server_public.empty() && !valid_z85_key(lo.server_public)) {
    auto key = read_curve_public(lo.server_public);  // a key file works too
    if (!key) cfg.fail("--server-public: neither a Z85 key nor a key file: " + key.error().message);
    lo.server_public = *key;
  }
  if (!lo.server_public.empty()) {
    if (cfg.str("client-key").empty())
      cfg.fail("--server-public needs --client-key (an admin secret key) to be of use");
    auto secret = read_curve_secret(cfg.str("client-key"));
    if (!secret) cfg.fail("--client-key: " + secret.error().message);
    lo.secret_key = *secret;
  }

  std::unique_ptr<httplib::Server> server;
  const bool https = !cfg.str("tls-cert").empty();
  if (https) {
    server = std::make_unique<httplib::SSLServer>(cfg.str("tls-cert").c_str(), cfg.str("tls-key").c_str());
    if (!server->is_valid())
      cfg.fail("cannot load the TLS certificate " + cfg.str("tls-cert") + " with key " + cfg.str("tls-key"));
  } else {
    server = std::make_unique<httplib::Server>();
  }
  // One thread per open connection, live event streams included, started
  // as needed.
  ConnectionActivity activity;
  server->new_task_queue = [&activity] { return new ConnectionPool(48, activity); };

  // Bound (or adopted) before any thread starts: cfg.fail() exits at once.
  int port = address->port;
  const int listen_fd = static_cast<int>(cfg.integer("listen-fd"));
  if (listen_fd >= 0) {
    auto bound = listening_port(listen_fd);
    if (!bound) cfg.fail("--listen-fd: " + bound.error().message);
    ListeningSocket::adopt(*server, listen_fd);
    port = *bound;
  } else if (port == 0) {
    port = server->bind_to_any_port(address->host);
    if (port <= 0) cfg.fail("cannot listen on " + cfg.str("web"));
  } else if (!server->bind_to_port(address->host, port)) {
    cfg.fail("cannot listen on " + cfg.str("web") + " (in use, or not an address of this host)");
  }

  zmq::context_t ctx(1);
  BrokerLink link(ctx, lo);
  EventFeed feed(link);
  ConsoleOptions co;
  co.data_dir = data_dir;
  co.https = https;
  co.session_idle = std::chrono::seconds(cfg.integer("web-session-s"));
  co.metrics_token = metrics_token;
  co.metrics_require_token = cfg.flag("metrics-require-token");
  Console console(link, feed, co);
  console.install(*server);

  const std::string url = console_url(address->host, port, https);
  // Where tests and tools find a console bound to port 0.
  ::mkdir(data_dir.c_str(), 0700);
  ::mkdir((data_dir + "/run").c_str(), 0700);
  write_file_atomic(data_dir + "/run/web.address", url + "\n", 0644);
  spdlog::info("console at {} (broker {}{})", url, link.front(), lo.server_public.empty() ? ", insecure" : "");
  if (!hash) spdlog::warn("no console password yet: set one with `primaryctl web-password --data-dir {}`", data_dir);

  const auto idle_exit = std::chrono::seconds(cfg.integer("idle-exit-s"));
  std::atomic<bool> done{false}, idle{false};
  std::thread watcher([&] {
    unblock_stop_signals();
    while (!stop_requested() && !done) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      if (idle_exit.count() > 0 && activity.idle_for() >= idle_exit) {
        spdlog::info("no connection for {} s; exiting until the next one", idle_exit.count());
        idle = true;
        break;
      }
    }
    console.stop();
    feed.stop();
    if (listen_fd >= 0)
      ListeningSocket::release(*server);
    else
      server->stop();
  });
  server->listen_after_bind();
  if (!stop_requested() && !idle) spdlog::error("the console stopped listening");
  console.stop();
  feed.stop();
  done = true;
  watcher.join();
  spdlog::info("stopped");
  return stop_requested() || idle ? 0 : 1;
}
