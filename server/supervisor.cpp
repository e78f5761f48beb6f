#include "server/supervisor.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <pwd.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "common/crypto.hpp"
#include "common/events.hpp"
#include "common/layout.hpp"
#include "common/curve.hpp"
#include "common/log.hpp"
#include "common/schema.hpp"
#include "common/tokens.hpp"
#include "web/listen.hpp"
#include "web/password.hpp"

extern char** environ;

namespace primary {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

constexpr auto kHealthyUptime = 10s;    // a child up this long gets its backoff reset
constexpr auto kRedisStartTimeout = 10s;
constexpr auto kBrokerStartTimeout = 10s;
constexpr int kMaxWorkers = 256;

Error refuse(std::string message) { return Error{Code::Unavailable, std::move(message)}; }

std::string errno_text() { return std::strerror(errno); }

// "exit 0", "signal 9 (Killed)".
std::string describe_status(int status) {
  if (WIFEXITED(status)) return "exit " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status))
    return "signal " + std::to_string(WTERMSIG(status)) + " (" + strsignal(WTERMSIG(status)) + ")";
  return "status " + std::to_string(status);
}

bool is_executable(const std::string& path) {
  struct stat st{};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(path.c_str(), X_OK) == 0;
}

// Finds `name` on $PATH; empty when absent.
std::string search_path(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path ? path : "/usr/local/bin:/usr/bin:/bin");
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    if (dir.empty()) dir = ".";
    if (is_executable(dir + "/" + name)) return dir + "/" + name;
  }
  return {};
}

std::string self_dir() {
  std::error_code ec;
  auto exe = fs::read_symlink("/proc/self/exe", ec);
  return ec ? std::string(".") : exe.parent_path().string();
}

Status make_private_dir(const std::string& path) {
  if (::mkdir(path.c_str(), 0700) != 0 && errno != EEXIST)
    return refuse("cannot create " + path + ": " + errno_text());
  struct stat st{};
  if (::stat(path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    return refuse("data dir " + path + " is not a directory");
  if (::access(path.c_str(), W_OK | X_OK) != 0)
    return refuse("data dir " + path + " is not writable: " + errno_text());
  return {};
}

// Writes `text` to `path` atomically with the given mode.
Status write_file(const std::string& path, const std::string& text, mode_t mode) {
  if (auto written = write_file_atomic(path, text, mode); !written) return refuse(written.error().message);
  return {};
}

// A redis.conf string argument, double-quoted.
std::string conf_string(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

std::string resp_array(const std::vector<std::string>& args) {
  std::string out = "*" + std::to_string(args.size()) + "\r\n";
  for (const auto& a : args) out += "$" + std::to_string(a.size()) + "\r\n" + a + "\r\n";
  return out;
}

// A blocking Unix-socket connection with timeouts, for a handful of RESP lines.
class RespSocket {
 public:
  ~RespSocket() {
    if (fd_ >= 0) ::close(fd_);
  }
  Status connect(const std::string& path, int timeout_ms) {
    sockaddr_un addr{};
    if (path.size() >= sizeof(addr.sun_path)) return refuse("socket path too long: " + path);
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) return refuse("socket: " + errno_text());
    timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
      return refuse("connect " + path + ": " + errno_text());
    return {};
  }
  Status send_all(const std::string& data) {
    size_t off = 0;
    while (off < data.size()) {
      ssize_t n = ::send(fd_, data.data() + off, data.size() - off, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return refuse("send: " + errno_text());
      off += static_cast<size_t>(n);
    }
    return {};
  }
  // One reply line without its CRLF; UNAVAILABLE on close or timeout.
  Result<std::string> read_line() {
    for (;;) {
      if (auto nl = buf_.find("\r\n"); nl != std::string::npos) {
        std::string line = buf_.substr(0, nl);
        buf_.erase(0, nl + 2);
        return line;
      }
      char chunk[512];
      ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n == 0) return refuse("connection closed");
      if (n < 0) return refuse("recv: " + errno_text());
      buf_.append(chunk, static_cast<size_t>(n));
    }
  }

 private:
  int fd_ = -1;
  std::string buf_;
};

}  // namespace

// ---------------------------------------------------------------- settings

void add_supervisor_settings(Config& cfg) {
  cfg.add_string("data-dir", "./var", "Data directory: private Redis, sockets, lock");
  cfg.add_string("front", "tcp://*:16770", "Endpoint clients connect to (broker ROUTER)");
  cfg.add_string("events", "tcp://*:16771", "Endpoint of the live event stream (broker PUB)");
  cfg.add_string("redis", "", "External Redis URL; empty starts a private redis-server");
  cfg.add_string("redis-server", "", "redis-server executable (default: found on PATH)");
  cfg.add_int("license-workers", 2, 0, kMaxWorkers, "primary-licensed processes");
  cfg.add_int("updater-workers", 1, 0, kMaxWorkers, "primary-updater processes");
  cfg.add_int("admin-workers", 1, 0, kMaxWorkers, "primary-admin processes");
  cfg.add_flag("insecure", "Serve without CURVE encryption (tests, trusted networks)");
  cfg.add_string("vendor-key", "", "Vendor public key file, passed to primary-licensed and primary-updater");
  cfg.add_string("update-feed", "", "Vendor update feed URL (https://, http://, file://); empty: offline imports only");
  cfg.add_int("sync-interval-s", -1, -1, 30 * 86400, "Seconds between feed syncs (0: never; -1: 21600)");
  cfg.add_string("auto-approve", "", "Update channels whose new releases arrive approved, comma-separated");
  cfg.add_int("heartbeat-ms", 0, 0, 3600000, "Broker/worker heartbeat interval (0: their default)");
  cfg.add_int("heartbeat-liveness", 0, 0, 1000, "Missed heartbeats before a peer is dead (0: their default)");
  cfg.add_string("admin-keys", "", "Admin allow-list file, Z85 public keys (default DATA/keys/admins; SIGHUP re-reads)");
  cfg.add_string("public-endpoints", "",
                 "Front door endpoint(s) Clients are told to use (default: --front with this host's name)");
  cfg.add_int("check-interval-s", 0, 0, 7 * 86400, "Licensed Client interval (0: 14400)");
  cfg.add_int("unlicensed-interval-s", 0, 0, 86400, "Unlicensed Client interval (0: 60)");
  cfg.add_int("grace-s", 0, 0, 7 * 86400, "Grace before a silent Client is lost (0: 3600)");
  cfg.add_int("clock-skew-s", 0, 0, 365 * 86400, "Client clock skew reported beyond this (0: 300)");
  cfg.add_int("clock-jump-s", 0, 0, 7 * 86400, "Server clock jump the lost-client sweep skips (0: 300)");
  cfg.add_int("restart-max-ms", 5000, 100, 3600000, "Longest delay before restarting a child");
  cfg.add_int("stop-timeout-ms", 3000, 100, 60000, "Per-stage wait on shutdown before SIGKILL");
  cfg.add_string("web", "127.0.0.1:16772", "Web console listen address HOST:PORT (primary-web)");
  cfg.add_flag("no-web", "Do not start the web console");
  // 1800: the console's own session lifetime, so an idle exit logs out no one
  // who was still logged in (sessions live in primary-web's memory).
  cfg.add_int("web-idle-exit-s", 1800, 0, 7 * 86400,
              "The console starts at its first connection and stops after this long without one "
              "(0: it runs all the time)");
  cfg.add_string("tls-cert", "", "Web console HTTPS certificate (PEM), with --tls-key");
  cfg.add_string("tls-key", "", "Web console HTTPS private key (PEM)");
  cfg.add_string("metrics-token-file", "",
                 "Bearer token file (0600) for the console's GET /metrics from non-loopback peers");
  cfg.add_config_file();
  add_log_setting(cfg);
  // One-shot actions, so flags only (not settings: a config file must not restore at every start).
  cfg.app().add_option("--restore", "Restore the backup FILE (primaryctl backup) into the data dir, then serve")
      ->type_name("FILE");
  cfg.app().add_flag("--force")->description(
      "With --restore: replace the state the data dir or external Redis holds");
}

SupervisorSettings supervisor_settings(Config& cfg) {
  SupervisorSettings s;
  s.data_dir = cfg.str("data-dir");
  s.front = cfg.str("front");
  s.events = cfg.str("events");
  s.redis_url = cfg.str("redis");
  s.redis_server = cfg.str("redis-server");
  s.license_workers = static_cast<int>(cfg.integer("license-workers"));
  s.updater_workers = static_cast<int>(cfg.integer("updater-workers"));
  s.admin_workers = static_cast<int>(cfg.integer("admin-workers"));
  s.insecure = cfg.flag("insecure");
  s.vendor_key = cfg.str("vendor-key");
  s.update_feed = cfg.str("update-feed");
  s.sync_interval_s = static_cast<int>(cfg.integer("sync-interval-s"));
  s.auto_approve = cfg.str("auto-approve");
  s.heartbeat_ms = static_cast<int>(cfg.integer("heartbeat-ms"));
  s.heartbeat_liveness = static_cast<int>(cfg.integer("heartbeat-liveness"));
  s.restart_max_ms = static_cast<int>(cfg.integer("restart-max-ms"));
  s.stop_timeout_ms = static_cast<int>(cfg.integer("stop-timeout-ms"));
  s.log_level = cfg.str("log-level");
  s.public_endpoints = cfg.str("public-endpoints");
  s.admin_keys = cfg.str("admin-keys");
  s.check_interval_s = static_cast<int>(cfg.integer("check-interval-s"));
  s.unlicensed_interval_s = static_cast<int>(cfg.integer("unlicensed-interval-s"));
  s.grace_s = static_cast<int>(cfg.integer("grace-s"));
  s.clock_skew_s = static_cast<int>(cfg.integer("clock-skew-s"));
  s.clock_jump_s = static_cast<int>(cfg.integer("clock-jump-s"));
  s.web = cfg.str("web");
  s.no_web = cfg.flag("no-web");
  s.web_idle_exit_s = static_cast<int>(cfg.integer("web-idle-exit-s"));
  s.tls_cert = cfg.str("tls-cert");
  s.tls_key = cfg.str("tls-key");
  s.metrics_token_file = cfg.str("metrics-token-file");
  if (auto* opt = cfg.app().get_option_no_throw("--config"); opt && opt->count() > 0)
    s.config_file = opt->as<std::string>();
  else if (const char* env = std::getenv("PRIMARY_CONFIG"))
    s.config_file = env;
  if (auto* opt = cfg.app().get_option_no_throw("--restore"); opt && opt->count() > 0)
    s.restore_file = opt->as<std::string>();
  s.force = cfg.app().count("--force") > 0;
  return s;
}

// ---------------------------------------------------------------- helpers

Result<DataLayout> prepare_data_dir(const std::string& data_dir) {
  std::error_code ec;
  if (data_dir.empty()) return refuse("data dir must not be empty");
  fs::path root = fs::absolute(data_dir, ec).lexically_normal();
  if (ec) return refuse("bad data dir " + data_dir + ": " + ec.message());
  std::string r = root.string();
  while (r.size() > 1 && r.back() == '/') r.pop_back();
  if (!fs::exists(root, ec)) {
    fs::create_directories(root.parent_path(), ec);
    if (ec) return refuse("cannot create data dir " + r + ": " + ec.message());
  }
  DataLayout l{r, r + "/redis", r + "/run", r + "/log"};
  // ZeroMQ ipc:// and Redis both need the path to fit in sockaddr_un.
  if (l.workers_endpoint().size() - 6 >= sizeof(sockaddr_un{}.sun_path))
    return refuse("data dir " + r + " is too long a path for Unix sockets under it");
  for (const auto& dir : {l.root, l.redis_dir, l.run_dir, l.log_dir})
    if (auto ok = make_private_dir(dir); !ok) return ok.error();
  return l;
}

Result<std::string> redis_command(const std::string& path, const std::string& password,
                                  const std::vector<std::string>& command, int timeout_ms) {
  RespSocket sock;
  if (auto ok = sock.connect(path, timeout_ms); !ok) return ok.error();
  std::string out = password.empty() ? "" : resp_array({"AUTH", password});
  if (auto ok = sock.send_all(out + resp_array(command)); !ok) return ok.error();
  if (!password.empty()) {
    auto auth = sock.read_line();
    if (!auth) return auth.error();
    if (*auth != "+OK") return Error{Code::Unauthorized, "AUTH refused: " + *auth};
  }
  return sock.read_line();
}

// ---------------------------------------------------------------- start-up

Supervisor::Supervisor(SupervisorSettings settings) : settings_(std::move(settings)) {}

Supervisor::~Supervisor() {
  if (signal_fd_ >= 0) ::close(signal_fd_);
  if (lock_fd_ >= 0) ::close(lock_fd_);
  if (web_fd_ >= 0) ::close(web_fd_);
}

Result<std::unique_ptr<Supervisor>> Supervisor::open(SupervisorSettings settings) {
  std::unique_ptr<Supervisor> s(new Supervisor(std::move(settings)));
  if (auto ok = s->prepare(); !ok) return ok.error();
  return s;
}

Status Supervisor::prepare() {
  if (settings_.bin_dir.empty()) settings_.bin_dir = self_dir();
  if (settings_.redis_url.empty()) {
    redis_server_path_ = settings_.redis_server.empty() ? search_path("redis-server")
                                                        : settings_.redis_server;
    if (redis_server_path_.empty())
      return refuse("redis-server not found on PATH (install Debian's redis-server or pass --redis URL)");
    if (!is_executable(redis_server_path_))
      return refuse("redis-server not found: " + redis_server_path_ + " is not an executable file");
  }
  if (!is_executable(settings_.bin_dir + "/primary-broker"))
    return refuse("primary-broker not found next to primary-server in " + settings_.bin_dir);
  if (auto ok = load_backup(); !ok) return ok;  // a bad backup changes nothing
  auto layout = prepare_data_dir(settings_.data_dir);
  if (!layout) return layout.error();
  layout_ = *layout;

  lock_fd_ = ::open(layout_.lock_file().c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lock_fd_ < 0) return refuse("cannot open " + layout_.lock_file() + ": " + errno_text());
  // A previous supervisor's Redis holds the lock until it has finished
  // shutting down; give it a moment.
  bool locked = false;
  for (int i = 0; i < 40 && !locked; ++i) {
    locked = ::flock(lock_fd_, LOCK_EX | LOCK_NB) == 0;
    if (!locked) std::this_thread::sleep_for(50ms);
  }
  if (!locked) return refuse("another primary-server is already running on data dir " + layout_.root);
  if (auto ok = prepare_restore(); !ok) return ok;

  if (!redis_server_path_.empty()) {
    if (auto ok = prepare_redis(); !ok) return ok;
  } else {
    redis_url_ = settings_.redis_url;
  }
  std::error_code ec;
  fs::create_directories(fs::path(layout_.lease_key()).parent_path(), ec);
  ::chmod(fs::path(layout_.lease_key()).parent_path().c_str(), 0700);
  if (auto key = ensure_signing_key(layout_.lease_key()); !key) return refuse(key.error().message);
  if (auto key = ensure_signing_key(layout_.log_key()); !key) return refuse(key.error().message);
  if (!settings_.insecure) {
    auto server = ensure_curve_keypair(layout_.server_key());
    if (!server) return refuse(server.error().message);
    auto internal = ensure_curve_keypair(layout_.internal_key());
    if (!internal) return refuse(internal.error().message);
    server_public_ = server->public_key;
    internal_public_ = internal->public_key;
    if (settings_.admin_keys.empty()) {
      settings_.admin_keys = layout_.admin_keys();
      if (::access(settings_.admin_keys.c_str(), F_OK) != 0)
        write_file(settings_.admin_keys,
                   "# Admin public keys (Z85), one a line. `primaryctl keys create` makes one.\n"
                   "# primary-server re-reads this file on SIGHUP.\n", 0600);
    }
    auto keys = read_allow_list(settings_.admin_keys);
    if (!keys) return refuse(keys.error().message);
    admin_keys_ = std::move(*keys);
  }
  if (!settings_.no_web && is_executable(settings_.bin_dir + "/primary-web")) {
    // The console's own refusals, checked here so that they stop the start
    // instead of a restart loop of primary-web.
    auto web = web::parse_listen_address(settings_.web);
    if (!web) return refuse("--web: " + web.error().message);
    auto hash = web::read_password_hash(web::password_file(layout_.root));
    if (!hash && hash.error().code != Code::NotFound) return refuse(hash.error().message);
    if (!hash && !web::is_loopback_host(web->host))
      return refuse("refusing to serve the web console on " + settings_.web +
                    " without a password; set one with `primaryctl web-password --data-dir " +
                    layout_.root + "`, listen on 127.0.0.1, or pass --no-web");
    if (settings_.tls_cert.empty() != settings_.tls_key.empty())
      return refuse("--tls-cert and --tls-key go together");
    if (!settings_.metrics_token_file.empty())
      if (auto token = web::read_metrics_token(settings_.metrics_token_file); !token)
        return refuse(token.error().message);
    // Checked now: primary-web may first start long after this.
    for (const auto& file : {settings_.tls_cert, settings_.tls_key})
      if (!file.empty() && ::access(file.c_str(), R_OK) != 0)
        return refuse("cannot read " + file + ": " + errno_text());
    // The supervisor holds the console's port, so that primary-web can start
    // at the first connection and a restart loses no connection.
    auto fd = web::listen_socket(*web);
    if (!fd) return refuse("--web: " + fd.error().message);
    web_fd_ = *fd;
    auto port = web::listening_port(web_fd_);
    if (!port) return refuse("--web: " + port.error().message);
    // Where tests and tools find a console bound to port 0.
    write_file(layout_.run_dir + "/web.address",
               web::console_url(web->host, *port, !settings_.tls_cert.empty()) + "\n", 0644);
  }
  if (!settings_.vendor_key.empty()) {
    if (auto vendor = read_key_file(settings_.vendor_key, 32, false); !vendor)
      return refuse(vendor.error().message);
  }
  started_ms_ = std::chrono::duration_cast<std::chrono::milliseconds>(
                    std::chrono::system_clock::now().time_since_epoch())
                    .count();
  self_ = ::getpid();
  plan_children();
  return {};
}

// Password (generated once), redis.conf, and the URL handed to children.
Status Supervisor::prepare_redis() {
  const std::string pass_file = layout_.redis_dir + "/password";
  if (auto text = read_file(pass_file)) {
    redis_password_ = *text;
    while (!redis_password_.empty() && std::isspace(static_cast<unsigned char>(redis_password_.back())))
      redis_password_.pop_back();
    if (redis_password_.empty()) return refuse(pass_file + " is empty; delete it to make a new one");
  } else {
    redis_password_ = random_token(24);
    if (auto ok = write_file(pass_file, redis_password_ + "\n", 0600); !ok) return ok;
  }
  std::string conf =
      "# Written by primary-server at every start; edits are lost.\n"
      "port 0\n"
      "unixsocket " + conf_string(layout_.redis_socket()) + "\n"
      "unixsocketperm 700\n"
      "dir " + conf_string(layout_.redis_dir) + "\n"
      "appendonly yes\n"
      "appendfsync always\n"
      "save \"\"\n"
      "daemonize no\n"
      "logfile " + conf_string(layout_.redis_dir + "/redis.log") + "\n"
      "requirepass " + conf_string(redis_password_) + "\n";
  if (auto ok = write_file(layout_.redis_dir + "/redis.conf", conf, 0600); !ok) return ok;
  redis_url_ = "unix://" + layout_.redis_socket() + "?password=" + redis_password_;
  return {};
}

Supervisor::Child Supervisor::child(Role role, std::string name, std::vector<std::string> argv) {
  Child c;
  c.role = role;
  c.name = std::move(name);
  c.argv = std::move(argv);
  return c;
}

void Supervisor::plan_children() {
  for (char** e = environ; *e; ++e) {
    std::string_view v(*e);
    if (v.rfind("PRIMARY_REDIS=", 0) != 0 && v.rfind("PRIMARY_CONFIG=", 0) != 0)
      child_env_.emplace_back(v);
  }
  child_env_.push_back("PRIMARY_REDIS=" + redis_url_);
  if (!settings_.config_file.empty())
    child_env_.push_back("PRIMARY_CONFIG=" + fs::absolute(settings_.config_file).string());

  if (!redis_server_path_.empty())
    children_.push_back(child(Role::Redis, "redis-server", {redis_server_path_, layout_.redis_dir + "/redis.conf"}));

  std::vector<std::string> broker = {settings_.bin_dir + "/primary-broker",
                                     "--front", settings_.front,
                                     "--events", settings_.events,
                                     "--workers-endpoint", layout_.workers_endpoint(),
                                     "--event-sink", layout_.event_sink(),
                                     "--endpoints-file", layout_.endpoints_file(),
                                     "--log-level", settings_.log_level};
  if (settings_.insecure) {
    broker.push_back("--insecure");
  } else {
    broker.insert(broker.end(), {"--server-key", layout_.server_key() + ".key", "--admin-keys",
                                 fs::absolute(settings_.admin_keys).string(), "--trusted-keys",
                                 internal_public_});
  }
  if (settings_.heartbeat_ms > 0)
    broker.insert(broker.end(), {"--heartbeat-ms", std::to_string(settings_.heartbeat_ms)});
  if (settings_.heartbeat_liveness > 0)
    broker.insert(broker.end(), {"--heartbeat-liveness", std::to_string(settings_.heartbeat_liveness)});
  children_.push_back(child(Role::Broker, "primary-broker", broker));

  // Client-facing intervals go to the workers that use them.
  std::vector<std::string> intervals;
  if (settings_.check_interval_s > 0)
    intervals.insert(intervals.end(), {"--check-interval-s", std::to_string(settings_.check_interval_s)});
  if (settings_.grace_s > 0) intervals.insert(intervals.end(), {"--grace-s", std::to_string(settings_.grace_s)});
  std::vector<std::string> licensed = {"--lease-key", layout_.lease_key(),
                                       "--client-endpoints", public_endpoints(),
                                       "--endpoints-file", layout_.endpoints_file()};
  licensed.insert(licensed.end(), intervals.begin(), intervals.end());
  if (settings_.clock_skew_s > 0)
    licensed.insert(licensed.end(), {"--clock-skew-s", std::to_string(settings_.clock_skew_s)});
  if (settings_.clock_jump_s > 0)
    licensed.insert(licensed.end(), {"--clock-jump-s", std::to_string(settings_.clock_jump_s)});
  if (settings_.unlicensed_interval_s > 0)
    licensed.insert(licensed.end(),
                    {"--unlicensed-interval-s", std::to_string(settings_.unlicensed_interval_s)});
  if (!settings_.vendor_key.empty())
    licensed.insert(licensed.end(), {"--vendor-key", fs::absolute(settings_.vendor_key).string()});
  if (!settings_.insecure) {
    licensed.insert(licensed.end(), {"--server-public", server_public_});
  }
  std::vector<std::string> admin = {"--front", settings_.front, "--events", settings_.events,
                                    "--endpoints-file", layout_.endpoints_file(),
                                    "--started-at", std::to_string(started_ms_),
                                    "--log-file", layout_.log_dir + "/activity.log",
                                    "--log-key", layout_.log_key()};
  admin.insert(admin.end(), intervals.begin(), intervals.end());
  if (!settings_.no_web)
    if (auto web = web::parse_listen_address(settings_.web); web && !web::is_loopback_host(web->host))
      admin.insert(admin.end(), {"--web", "tcp://" + settings_.web});  // its port in the firewall rules
  if (!settings_.insecure)
    admin.insert(admin.end(), {"--server-public", server_public_, "--client-key",
                               layout_.internal_key() + ".key"});

  add_worker_kind("primary-licensed", settings_.license_workers, licensed);
  std::vector<std::string> updater = {"--update-dir", layout_.update_dir()};
  if (!settings_.vendor_key.empty())
    updater.insert(updater.end(), {"--vendor-key", fs::absolute(settings_.vendor_key).string()});
  if (!settings_.update_feed.empty()) updater.insert(updater.end(), {"--update-feed", settings_.update_feed});
  if (settings_.sync_interval_s >= 0)
    updater.insert(updater.end(), {"--sync-interval-s", std::to_string(settings_.sync_interval_s)});
  if (!settings_.auto_approve.empty()) updater.insert(updater.end(), {"--auto-approve", settings_.auto_approve});
  add_worker_kind("primary-updater", settings_.updater_workers, updater);
  add_worker_kind("primary-admin", settings_.admin_workers, admin);

  // The web console: an admin client of the broker, stopped with the workers.
  const std::string web_exe = settings_.bin_dir + "/primary-web";
  if (web_fd_ >= 0) {
    std::vector<std::string> web = {web_exe, "--web", settings_.web, "--data-dir", layout_.root,
                                    "--endpoints-file", layout_.endpoints_file(),
                                    "--log-level", settings_.log_level,
                                    "--listen-fd", std::to_string(web_fd_),
                                    "--idle-exit-s", std::to_string(settings_.web_idle_exit_s)};
    if (!settings_.insecure)
      web.insert(web.end(), {"--server-public", server_public_, "--client-key", layout_.internal_key() + ".key"});
    if (!settings_.tls_cert.empty())
      web.insert(web.end(), {"--tls-cert", fs::absolute(settings_.tls_cert).string(), "--tls-key",
                             fs::absolute(settings_.tls_key).string()});
    if (!settings_.metrics_token_file.empty())
      web.insert(web.end(), {"--metrics-token-file", fs::absolute(settings_.metrics_token_file).string()});
    Child console = child(Role::Worker, "primary-web", web);
    console.listen_fd = web_fd_;
    console.on_demand = settings_.web_idle_exit_s > 0;
    children_.push_back(std::move(console));
  }
}

std::string Supervisor::public_endpoints() const {
  if (!settings_.public_endpoints.empty()) return settings_.public_endpoints;
  char host[256] = {0};
  if (::gethostname(host, sizeof host - 1) != 0 || !host[0]) std::strcpy(host, "127.0.0.1");
  std::string ep = settings_.front;
  for (std::string_view any : {"//*:", "//0.0.0.0:"})
    if (auto pos = ep.find(any); pos != std::string::npos) ep.replace(pos, any.size(), std::string("//") + host + ":");
  return ep;
}

void Supervisor::add_worker_kind(const std::string& exe, int count, const std::vector<std::string>& extra) {
  const std::string path = settings_.bin_dir + "/" + exe;
  if (count <= 0 || !is_executable(path)) return;
  std::vector<std::string> argv = {path, "--broker", layout_.workers_endpoint(),
                                   "--event-sink", layout_.event_sink(),
                                   "--log-level", settings_.log_level};
  if (settings_.heartbeat_ms > 0)
    argv.insert(argv.end(), {"--heartbeat-ms", std::to_string(settings_.heartbeat_ms)});
  if (settings_.heartbeat_liveness > 0)
    argv.insert(argv.end(), {"--heartbeat-liveness", std::to_string(settings_.heartbeat_liveness)});
  argv.insert(argv.end(), extra.begin(), extra.end());
  for (int i = 1; i <= count; ++i)
    children_.push_back(child(Role::Worker, exe + "#" + std::to_string(i), argv));
}

// ---------------------------------------------------------------- children

bool Supervisor::spawn(Child& c) {
  std::vector<char*> argv, envp;
  for (auto& a : c.argv) argv.push_back(a.data());
  argv.push_back(nullptr);
  for (auto& e : child_env_) envp.push_back(e.data());
  envp.push_back(nullptr);
  sigset_t none;
  sigemptyset(&none);
  const bool keep_lock = c.role == Role::Redis;

  c.due.reset();
  if (c.role == Role::Broker) {
    ::unlink(layout_.endpoints_file().c_str());
    awaiting_endpoints_ = true;
  }
  pid_t pid = ::fork();
  if (pid < 0) {
    spdlog::error("cannot start {}: fork: {}", c.name, errno_text());
    c.due = Clock::now() + c.backoff;
    return false;
  }
  if (pid == 0) {
    // Child: only async-signal-safe calls from here to exec.
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::setpgid(0, 0);
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != self_) ::_exit(1);  // the supervisor died before prctl
    // Redis keeps the data dir locked until it has really gone.
    if (keep_lock) ::fcntl(lock_fd_, F_SETFD, 0);
    if (c.listen_fd >= 0) ::fcntl(c.listen_fd, F_SETFD, 0);
    ::execve(argv[0], argv.data(), envp.data());
    const char msg[] = "primary-server: exec failed\n";
    [[maybe_unused]] auto n = ::write(2, msg, sizeof msg - 1);
    ::_exit(127);
  }
  c.pid = pid;
  c.started = Clock::now();
  spdlog::info("started {} pid {}", c.name, pid);
  return true;
}

Supervisor::Child* Supervisor::find(pid_t pid) {
  for (auto& c : children_)
    if (c.pid == pid) return &c;
  return nullptr;
}

void Supervisor::on_exit(Child& c, int status) {
  const pid_t pid = c.pid;
  c.pid = 0;
  c.last_status = status;
  if (stopping_) {
    spdlog::info("{} pid {} stopped ({})", c.name, pid, describe_status(status));
    return;
  }
  if (starting_ && c.role != Role::Worker) return;  // start-up fails; wait_started says why
  const auto now = Clock::now();
  if (c.on_demand && WIFEXITED(status) && WEXITSTATUS(status) == 0) {
    spdlog::info("{} pid {} exited, idle; it starts again at the next connection", c.name, pid);
    c.backoff = 100ms;
    c.due.reset();
    return;
  }
  if (now - c.started >= kHealthyUptime) c.backoff = 100ms;
  c.due = now + c.backoff;
  spdlog::warn("{} pid {} exited unexpectedly ({}); restarting in {} ms", c.name, pid,
               describe_status(status), c.backoff.count());
  c.backoff = std::min<std::chrono::milliseconds>(c.backoff * 2,
                                                  std::chrono::milliseconds(settings_.restart_max_ms));
}

void Supervisor::reap() {
  int status = 0;
  pid_t pid;
  while ((pid = ::waitpid(-1, &status, WNOHANG)) > 0)
    if (Child* c = find(pid)) on_exit(*c, status);
}

void Supervisor::handle_signals() {
  signalfd_siginfo si{};
  while (::read(signal_fd_, &si, sizeof si) == sizeof si) {
    switch (si.ssi_signo) {
      case SIGCHLD: break;  // reaped below, whichever child it was
      case SIGHUP:
        spdlog::info("SIGHUP: forwarding to the broker");
        signal_role(Role::Broker, SIGHUP);
        log_admin_keys(si.ssi_uid);
        break;
      default:
        if (!stopping_) spdlog::info("{}: stopping", strsignal(static_cast<int>(si.ssi_signo)));
        stopping_ = true;
    }
  }
  reap();
}

// Starts every child whose restart is due; Redis comes first in children_.
void Supervisor::start_due() {
  const auto now = Clock::now();
  for (auto& c : children_)
    if (c.pid == 0 && c.due && *c.due <= now) spawn(c);
}

int Supervisor::next_timeout_ms() const {
  std::optional<Clock::time_point> next;
  for (const auto& c : children_)
    if (c.pid == 0 && c.due && (!next || *c.due < *next)) next = c.due;
  if (awaiting_endpoints_ && any_alive(Role::Broker)) {
    auto poll_at = Clock::now() + 100ms;
    if (!next || poll_at < *next) next = poll_at;
  }
  if (!next) return -1;
  auto ms = std::chrono::ceil<std::chrono::milliseconds>(*next - Clock::now()).count();
  return static_cast<int>(std::max<int64_t>(0, ms));
}

// Logs where the (re)started broker listens once it has said so.
void Supervisor::check_endpoints() {
  if (!awaiting_endpoints_ || !broker_ready()) return;
  awaiting_endpoints_ = false;
  spdlog::info("listening front={} events={}",
               endpoints_file_value(layout_.endpoints_file(), "front").value_or("?"),
               endpoints_file_value(layout_.endpoints_file(), "events").value_or("?"));
}

bool Supervisor::redis_ready() const {
  auto reply = redis_command(layout_.redis_socket(), redis_password_, {"PING"}, 500);
  return reply && *reply == "+PONG";
}

bool Supervisor::broker_ready() const {
  return endpoints_file_value(layout_.endpoints_file(), "front").has_value();
}

// Waits (bounded) until `ready`; false if c exited, time ran out or a stop
// was requested (stopping_ tells which).
bool Supervisor::wait_started(Child& c, bool (Supervisor::*ready)() const, const char* what) {
  const auto timeout = c.role == Role::Redis ? kRedisStartTimeout : kBrokerStartTimeout;
  const auto deadline = Clock::now() + timeout;
  while (!stopping_) {
    if ((this->*ready)()) return true;
    if (c.pid == 0) {
      spdlog::error("{} exited during start-up ({}){}", c.name, describe_status(c.last_status),
                    c.role == Role::Redis ? "; see " + layout_.redis_dir + "/redis.log" : "");
      return false;
    }
    if (Clock::now() >= deadline) {
      spdlog::error("{} not ready ({}) after {} s", c.name, what, timeout.count());
      return false;
    }
    pollfd p{signal_fd_, POLLIN, 0};
    ::poll(&p, 1, 20);
    handle_signals();
  }
  return false;
}

// At SIGHUP the broker re-reads the admin allow-list; the activity log
// says which keys came and went, and who asked (the Unix user whose signal
// it was). A list the broker refuses (it keeps the old one) is logged here
// only.
void Supervisor::log_admin_keys(uid_t sender) {
  if (settings_.insecure || settings_.admin_keys.empty()) return;
  auto keys = read_allow_list(settings_.admin_keys);
  if (!keys) {
    spdlog::warn("{}: {}; the broker keeps the keys it had", settings_.admin_keys, keys.error().message);
    return;
  }
  Value::Array added, removed;
  for (const auto& [key, name] : *keys)
    if (auto was = admin_keys_.find(key); was == admin_keys_.end() || was->second != name) added.emplace_back(name);
  for (const auto& [key, name] : admin_keys_)
    if (auto now = keys->find(key); now == keys->end() || now->second != name) removed.emplace_back(name);
  admin_keys_ = std::move(*keys);
  log_host_action(event::kAdminKeysReloaded,
                  Value(Value::Map{{field::kKeys, Value(static_cast<int64_t>(admin_keys_.size()))},
                                   {field::kAdded, Value(std::move(added))},
                                   {field::kRemoved, Value(std::move(removed))}}),
                  sender);
}

void Supervisor::watch_keys_dir(const std::string& password_path) {
  alignas(inotify_event) char buf[4096];
  bool password_set = false;
  const std::string name = fs::path(password_path).filename().string();
  for (ssize_t n; (n = ::read(watch_fd_, buf, sizeof buf)) > 0;)
    for (ssize_t at = 0; at < n;) {
      const auto* ev = reinterpret_cast<const inotify_event*>(buf + at);
      if (ev->len > 0 && name == ev->name) password_set = true;
      at += static_cast<ssize_t>(sizeof(inotify_event) + ev->len);
    }
  struct stat st{};
  if (!password_set || ::stat(password_path.c_str(), &st) != 0) return;
  log_host_action(event::kWebPasswordSet, Value(Value::Map{}), st.st_uid);
}

void Supervisor::log_host_action(const char* type, const Value& fields, uid_t uid) {
  std::string user = std::to_string(uid);
  if (const passwd* pw = ::getpwuid(uid)) user = pw->pw_name;
  const Who who{std::string(actor::kHostPrefix) + user, "", ""};
  auto url = parse_redis_url(redis_url_);
  if (!url) return;
  Redis redis(*url);
  if (auto id = append_event(redis, type, fields, pack_who(who), kEventLogCap, unix_ms()); !id)
    spdlog::warn("could not log {}: {}", type, id.error().message);
  else
    spdlog::info("{} by {}", type, who.actor);
}

int Supervisor::ensure_layout() {
  auto url = parse_redis_url(redis_url_);
  if (!url) {
    spdlog::error("data layout: {}", url.error().message);
    return 1;
  }
  Redis redis(*url);
  auto out = layout::ensure(redis, kEventLogCap);
  if (!out) {
    spdlog::error("cannot check the data layout: {}", out.error().message);
    return 1;
  }
  switch (out->kind) {
    case layout::Outcome::Kind::Newer:
      spdlog::critical("{}", layout::newer_message(out->found));
      return 2;
    case layout::Outcome::Kind::Fresh:
      spdlog::info("new database: data layout {} recorded", layout::kCurrent);
      break;
    case layout::Outcome::Kind::Migrated:
      spdlog::info("data migrated from layout {} to {}", out->found, layout::kCurrent);
      break;
    case layout::Outcome::Kind::Current:
      break;
  }
  return 0;
}

int Supervisor::run() {
  sigset_t mask;
  sigemptyset(&mask);
  for (int s : {SIGCHLD, SIGTERM, SIGINT, SIGHUP}) sigaddset(&mask, s);
  ::sigprocmask(SIG_BLOCK, &mask, nullptr);
  signal_fd_ = ::signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
  if (signal_fd_ < 0) {
    spdlog::critical("signalfd: {}", errno_text());
    return 1;
  }
  spdlog::info("primary-server {} starting; data dir {}", PRIMARY_VERSION, layout_.root);

  int failed = 0;  // exit code when start-up failed
  for (auto& c : children_) {
    if (c.on_demand) continue;  // at its first connection
    if (c.role == Role::Broker && !finish_restore()) {  // Redis is up; nothing serves yet
      failed = 1;
      break;
    }
    if (c.role == Role::Broker) {
      if (failed = ensure_layout(); failed) break;
    }
    bool started = spawn(c);
    if (started && c.role == Role::Redis) started = wait_started(c, &Supervisor::redis_ready, "PING");
    if (started && c.role == Role::Broker)
      started = wait_started(c, &Supervisor::broker_ready, "endpoints file");
    if (!started) {
      // A child that refused its configuration (exit 2) makes ours a refusal too.
      const bool refused = c.pid == 0 && WIFEXITED(c.last_status) && WEXITSTATUS(c.last_status) == 2;
      failed = stopping_ ? 0 : refused ? 2 : 1;
      break;
    }
    if (c.role == Role::Redis) spdlog::info("redis ready on {}", layout_.redis_socket());
    if (c.role == Role::Broker) check_endpoints();
  }
  starting_ = false;
  if (failed) {
    stopping_ = true;
    shutdown();
    return failed;
  }

  // The console's password file is written by `primaryctl web-password`
  // (a rename into DATA/keys): the activity log says so, and who (the new
  // file's owner). inotify, so an idle server does not wake for it.
  const std::string password_path = web::password_file(layout_.root);
  watch_fd_ = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (watch_fd_ >= 0 &&
      ::inotify_add_watch(watch_fd_, fs::path(password_path).parent_path().c_str(), IN_MOVED_TO | IN_CLOSE_WRITE) < 0) {
    ::close(watch_fd_);
    watch_fd_ = -1;
  }
  while (!stopping_) {
    // Idle on-demand children wait for a connection on their socket.
    std::vector<pollfd> fds{{signal_fd_, POLLIN, 0}, {watch_fd_, POLLIN, 0}};
    std::vector<Child*> waiting;
    for (auto& c : children_)
      if (c.on_demand && c.pid == 0 && !c.due) {
        fds.push_back({c.listen_fd, POLLIN, 0});
        waiting.push_back(&c);
      }
    ::poll(fds.data(), fds.size(), next_timeout_ms());
    handle_signals();
    if (stopping_) break;
    if (fds[1].revents != 0) watch_keys_dir(password_path);
    for (size_t i = 0; i < waiting.size(); ++i)
      if (fds[i + 2].revents != 0 && waiting[i]->pid == 0 && !waiting[i]->due) {
        spdlog::info("a connection for {}: starting it", waiting[i]->name);
        spawn(*waiting[i]);
      }
    start_due();
    check_endpoints();
  }
  shutdown();
  return 0;
}

// ---------------------------------------------------------------- shutdown

void Supervisor::signal_role(Role role, int signal_number) {
  for (auto& c : children_)
    if (c.role == role && c.pid > 0) ::kill(c.pid, signal_number);
}

bool Supervisor::any_alive(Role role) const {
  return std::any_of(children_.begin(), children_.end(),
                     [&](const Child& c) { return c.role == role && c.pid > 0; });
}

void Supervisor::wait_role_gone(Role role, Clock::time_point deadline) {
  reap();
  while (any_alive(role) && Clock::now() < deadline) {
    auto ms = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
    pollfd p{signal_fd_, POLLIN, 0};
    ::poll(&p, 1, static_cast<int>(std::clamp<int64_t>(ms, 0, 100)));
    handle_signals();
  }
}

// Sends signal_number (if any) to every child of `role`, waits up to
// `timeout`, then SIGKILLs what is left.
void Supervisor::stop_role(Role role, int signal_number, std::chrono::milliseconds timeout) {
  if (signal_number) signal_role(role, signal_number);
  wait_role_gone(role, Clock::now() + timeout);
  if (!any_alive(role)) return;
  for (auto& c : children_)
    if (c.role == role && c.pid > 0)
      spdlog::warn("{} pid {} did not stop in time; killing it", c.name, c.pid);
  signal_role(role, SIGKILL);
  wait_role_gone(role, Clock::now() + 1s);
}

void Supervisor::shutdown() {
  const auto stage = std::chrono::milliseconds(settings_.stop_timeout_ms);
  for (auto& c : children_) c.due.reset();
  stop_role(Role::Worker, SIGTERM, stage);
  stop_role(Role::Broker, SIGTERM, stage);
  if (any_alive(Role::Redis)) {
    // SHUTDOWN flushes the AOF and exits (closing the connection); if it
    // answered anything else, or is slow, SIGTERM at half time.
    auto reply = redis_command(layout_.redis_socket(), redis_password_, {"SHUTDOWN"}, 1000);
    if (reply) spdlog::warn("redis SHUTDOWN answered {}", *reply);
    wait_role_gone(Role::Redis, Clock::now() + (reply ? 0ms : stage / 2));
    if (any_alive(Role::Redis)) stop_role(Role::Redis, SIGTERM, stage / 2);
  }
  spdlog::info("stopped");
}

}  // namespace primary
