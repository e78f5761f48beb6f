// The systems under test, started as real processes: a bare broker with echo
// workers (the transport benchmark), the whole product under primary-server
// (everything else), and a stand-alone Redis for comparison. Each one stops
// its processes when it goes away.
#pragma once

#include <zmq.hpp>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/errors.hpp"
#include "common/redis.hpp"
#include "common/value.hpp"
#include "tools/bench/children.hpp"

namespace primary::bench {

struct BenchEnv {
  std::string bin_dir;             // where primary-* live
  std::string log_level = "warn";  // handed to the product's processes
  bool keep = false;               // keep the temp dir (logs) afterwards
  // echo: words put before the broker's command line, e.g. a profiler
  // ("valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.out").
  std::vector<std::string> broker_prefix;
  // download: the same for the primary-updater the bench starts.
  std::vector<std::string> updater_prefix;
  std::string bin(const std::string& name) const { return bin_dir + "/" + name; }
};

// One request on a fresh DEALER; the decoded reply map, or why not.
Result<Value> call(zmq::context_t& ctx, const std::string& endpoint, const std::string& service,
                   const std::string& op, Value::Map fields = {}, int timeout_ms = 5000);

// Polls broker.control until `service` has at least `connections` worker
// connections; false on timeout.
bool wait_workers(zmq::context_t& ctx, const std::string& front, const std::string& service,
                  int64_t connections, std::chrono::milliseconds timeout);

// primary-broker plus `workers` primary-echo-worker processes of `slots`
// connections each, on tcp://127.0.0.1:* (front) and ipc:// (workers).
class EchoStack {
 public:
  static Result<std::unique_ptr<EchoStack>> start(zmq::context_t& ctx, const BenchEnv& env,
                                                  TempDir& dir, int workers, int slots);
  ~EchoStack();
  const std::string& front() const { return front_; }
  const std::string& workers_endpoint() const { return workers_ep_; }
  pid_t broker_pid() const { return broker_.pid(); }
  std::vector<pid_t> worker_pids() const;

 private:
  EchoStack() = default;
  Child broker_;
  std::vector<Child> workers_;
  std::string front_, workers_ep_;
};

struct ServerOptions {
  std::string vendor_pub;   // --vendor-key; empty: none
  // A fixed port where a restarted broker must bind the same endpoint again.
  std::string front = "tcp://127.0.0.1:*", events = "tcp://127.0.0.1:*";
  int license_workers = 0;  // 0: primary-server's default
  std::vector<std::string> extra_args;
  std::vector<std::string> env;  // "PRIMARY_X=Y": settings for the server's workers
};

// The whole product under primary-server with a data dir in `dir`.
class ServerStack {
 public:
  // Starts it and waits until the broker has written its endpoints and, when
  // `wait_license` is set, the licensing workers have registered.
  static Result<std::unique_ptr<ServerStack>> start(zmq::context_t& ctx, const BenchEnv& env,
                                                    TempDir& dir, const ServerOptions& options,
                                                    bool wait_license);
  ~ServerStack();

  const std::string& front() const { return front_; }
  pid_t pid() const { return server_.pid(); }
  const std::string& data_dir() const { return data_dir_; }
  // SIGTERM and a bounded wait; the supervisor's exit code (nullopt: it had
  // to be killed). Whatever is left of its tree is SIGKILLed.
  std::optional<int> stop(std::chrono::milliseconds timeout = std::chrono::seconds(20));
  // A client of the private Redis (password from the data dir).
  Redis redis() const;

 private:
  ServerStack() = default;
  Child server_;
  std::string data_dir_, front_, log_;
};

// A redis-server configured like the private one (Unix socket, AOF with
// fsync always, no RDB), for redis-benchmark.
class PlainRedis {
 public:
  static Result<std::unique_ptr<PlainRedis>> start(TempDir& dir);
  ~PlainRedis();
  const std::string& socket() const { return socket_; }

 private:
  PlainRedis() = default;
  Child proc_;
  std::string socket_;
};

// `INFO <section>` field as an integer; nullopt when absent.
std::optional<int64_t> redis_info(Redis& redis, const std::string& section, const std::string& field);

// What Redis spent, read from INFO before and after a measured phase, so a
// figure comes with where its time went: CPU (main thread, all of it),
// script calls and their own time (commandstats evalsha), AOF rewrites.
struct RedisCost {
  double cpu_s = 0;
  int64_t script_calls = 0, script_usec = 0, aof_rewrites = 0;
  bool rewriting = false;
};
RedisCost redis_cost(Redis& redis);
// One line: per request of `requests` between `before` and `after`.
std::string describe_redis_cost(const RedisCost& before, const RedisCost& after, int64_t requests);

// Waits (up to `limit`) until Redis has no background AOF rewrite or RDB
// save running or scheduled, and returns the seconds it waited. A rewrite
// child takes one of this machine's two cores and makes the server copy the
// pages it writes to, so a phase measured during one says more about the
// rewrite than about the phase.
double wait_background_save(Redis& redis, std::chrono::seconds limit);

// Last lines of a log file, for error messages.
std::string log_tail(const std::string& path, size_t lines = 20);

}  // namespace primary::bench
