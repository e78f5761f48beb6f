// primary-server: the supervisor that runs the product on one machine.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/config.hpp"
#include "common/process.hpp"
#include "common/errors.hpp"
#include "common/value.hpp"

namespace primary {

namespace backup { struct Contents; }

// Everything primary-server was told, resolved (flag > env > file > default).
struct SupervisorSettings {
  std::string data_dir;      // as given; made absolute by Supervisor::open
  std::string front, events;
  std::string redis_url;     // empty: start a private redis-server
  std::string redis_server;  // empty: look for redis-server on PATH
  std::string vendor_key;    // empty: not given
  std::string update_feed;   // empty: offline imports only
  int sync_interval_s = -1;  // -1: the updater's default
  std::string auto_approve;  // channels, comma-separated
  std::string log_level;
  std::string config_file;   // empty: none; handed down to children as PRIMARY_CONFIG
  int license_workers = 2, updater_workers = 1, admin_workers = 1;
  bool insecure = false;
  int heartbeat_ms = 0, heartbeat_liveness = 0;  // 0: each program's own default
  int restart_max_ms = 5000;
  int stop_timeout_ms = 3000;  // per shutdown stage (workers, broker, redis)
  std::string bin_dir;         // empty: the directory of /proc/self/exe
  std::string public_endpoints;  // what Clients are told to use; empty: front, this host's name
  std::string admin_keys;        // allow-list file; empty: DATA/keys/admins
  int check_interval_s = 0, unlicensed_interval_s = 0, grace_s = 0;  // 0: workers' defaults
  int clock_skew_s = 0, clock_jump_s = 0;                             // 0: primary-licensed's defaults
  std::string web = "127.0.0.1:16772";  // primary-web's listen address
  bool no_web = false;                   // --no-web: no console
  int web_idle_exit_s = 1800;            // 0: the console runs all the time
  std::string tls_cert, tls_key;         // HTTPS for the console; empty: HTTP
  std::string metrics_token_file;        // the console's GET /metrics bearer token; empty: loopback only
  std::string restore_file;  // --restore FILE: a primaryctl backup to restore first (restore.cpp)
  bool force = false;        // --force: the restore may replace existing state
};

// Declares primary-server's settings (and --config, --log-level) on cfg.
void add_supervisor_settings(Config& cfg);
// Reads the declared settings back after cfg.parse().
SupervisorSettings supervisor_settings(Config& cfg);

// Paths under the data directory (all absolute).
struct DataLayout {
  std::string root;       // DATA
  std::string redis_dir;  // DATA/redis: redis.conf, password, AOF, redis.log
  std::string run_dir;    // DATA/run: sockets, endpoints file, lock
  std::string log_dir;    // DATA/log: reserved for children's logs

  std::string redis_socket() const { return run_dir + "/redis.sock"; }
  std::string workers_endpoint() const { return "ipc://" + run_dir + "/workers.sock"; }
  std::string event_sink() const { return "ipc://" + run_dir + "/events.sock"; }
  std::string endpoints_file() const { return run_dir + "/endpoints"; }
  std::string lock_file() const { return run_dir + "/lock"; }
  std::string lease_key() const { return root + "/keys/lease.key"; }
  std::string log_key() const { return root + "/keys/log.key"; }  // Ed25519: signs activity log checkpoints
  std::string update_dir() const { return root + "/updates"; }
  std::string server_key() const { return root + "/keys/server"; }      // .key/.pub, CURVE
  std::string internal_key() const { return root + "/keys/internal"; }  // .key/.pub, the server's own admin tools
  std::string admin_keys() const { return root + "/keys/admins"; }      // default allow-list
};

// Creates DATA and its sub-directories (mode 0700) and checks they are writable.
Result<DataLayout> prepare_data_dir(const std::string& data_dir);

// Sends AUTH (when password is non-empty) and then `command` to the Redis
// listening on the Unix socket `path`; returns the command's first reply line
// ("+PONG", "-ERR ..."). UNAVAILABLE when it cannot connect or the server
// closed the connection (which is SHUTDOWN's success).
Result<std::string> redis_command(const std::string& path, const std::string& password,
                                  const std::vector<std::string>& command, int timeout_ms);


// The supervisor keeps the product's processes alive on one machine. It owns
// a data directory (locked with flock, so only one supervisor uses it) and,
// unless pointed at an external Redis, a private redis-server on a Unix
// socket under it, configured for durability (AOF, fsync always) and
// protected by a password that reaches the children only through their
// environment (PRIMARY_REDIS), never their command line.
//
// Start-up is ordered: Redis until it answers PING, the data layout checked
// (and an older one migrated), then the broker until it
// has written its endpoints file, then N of each worker found next to this
// executable. From then on it is a single-threaded loop over a signalfd:
// SIGCHLD reaps and schedules a restart (100 ms doubling to restart-max-ms,
// reset after 10 s of good health; Redis first), SIGHUP goes to the broker,
// SIGTERM/SIGINT stops the workers, then the broker, then Redis (SHUTDOWN
// over RESP), each stage bounded by stop-timeout-ms before SIGKILL. Children
// run in their own process groups, so a terminal's Ctrl-C reaches only the
// supervisor and the order holds; PR_SET_PDEATHSIG ends them if the
// supervisor itself is killed.
class Supervisor {
 public:
  // Checks everything that makes start-up refuse (redis-server missing, data
  // dir not writable, data dir in use, broker missing) before any child runs.
  static Result<std::unique_ptr<Supervisor>> open(SupervisorSettings settings);
  ~Supervisor();
  Supervisor(const Supervisor&) = delete;
  Supervisor& operator=(const Supervisor&) = delete;

  // Starts Redis, the broker and the workers, keeps them running until
  // SIGTERM or SIGINT, stops them in order; returns the exit code.
  int run();

 private:
  enum class Role { Redis, Broker, Worker };
  using Clock = std::chrono::steady_clock;
  struct Child {
    Role role;
    std::string name;
    std::vector<std::string> argv;
    pid_t pid = 0;
    int last_status = 0;
    Clock::time_point started{};
    std::chrono::milliseconds backoff{100};
    std::optional<Clock::time_point> due;  // pending restart
    // The console: a listening socket the supervisor holds and the child
    // inherits; with on_demand the child starts at its first connection and
    // may exit (status 0) when idle, to start again at the next one.
    int listen_fd = -1;
    bool on_demand = false;
  };

  explicit Supervisor(SupervisorSettings settings);
  Status prepare();
  Status prepare_redis();
  // --restore, in three steps (restore.cpp): read and check the file before
  // anything is touched; once the data dir is locked, refuse existing state
  // and put back key files and artifacts; once Redis is up, its keys.
  Status load_backup();
  Status prepare_restore();
  bool finish_restore();
  // Once Redis is up (and any restore done), before the broker: brings the
  // data to this release's layout (common/layout.hpp). 0 when done, 2 for a
  // newer layout (logged as one line, nothing changed), 1 otherwise.
  int ensure_layout();
  // The activity log's record of what was done on the host, by the Unix
  // user `uid` (actor host:NAME): admin keys re-read, console password set.
  void log_admin_keys(uid_t sender);
  void watch_keys_dir(const std::string& password_path);
  void log_host_action(const char* type, const Value& fields, uid_t uid);
  static Child child(Role role, std::string name, std::vector<std::string> argv);
  void plan_children();
  void add_worker_kind(const std::string& exe, int count, const std::vector<std::string>& extra);
  std::string public_endpoints() const;

  bool spawn(Child& c);
  void on_exit(Child& c, int status);
  void reap();
  void handle_signals();
  void start_due();
  int next_timeout_ms() const;
  void check_endpoints();
  bool wait_started(Child& c, bool (Supervisor::*ready)() const, const char* what);
  bool redis_ready() const;
  bool broker_ready() const;

  void shutdown();
  void stop_role(Role role, int signal_number, std::chrono::milliseconds timeout);
  void wait_role_gone(Role role, Clock::time_point deadline);
  bool any_alive(Role role) const;
  void signal_role(Role role, int signal_number);
  Child* find(pid_t pid);

  SupervisorSettings settings_;
  DataLayout layout_;
  std::string redis_server_path_;  // empty: external Redis
  std::string redis_password_;
  std::string redis_url_;
  std::vector<std::string> child_env_;
  std::vector<Child> children_;  // redis (if private), broker, then workers
  int lock_fd_ = -1;
  int web_fd_ = -1;  // the console's listening socket (--web)
  int signal_fd_ = -1;
  int watch_fd_ = -1;  // inotify on DATA/keys
  pid_t self_ = 0;
  int64_t started_ms_ = 0;
  std::string server_public_, internal_public_;  // CURVE, secure mode only
  std::map<std::string, std::string> admin_keys_;  // the allow-list as last read: key -> name
  bool starting_ = true;  // Redis and broker not yet ready once
  bool stopping_ = false;
  bool awaiting_endpoints_ = false;
  std::shared_ptr<backup::Contents> restore_;  // a backup read, not yet fully restored
};

}  // namespace primary
