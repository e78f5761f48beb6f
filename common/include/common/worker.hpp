// The worker runtime: everything a worker process needs to serve one or
// more services through the broker, so that a service itself is only a
// handler, a plain function from a decoded Request to a Reply.
//
// For each service it opens one MDP/0.1 worker connection (DEALER) to every
// broker endpoint and offers it a credit of `slots` requests at once (READY's
// credit frame, docs/protocol.md "Worker credit"; plain RFC 7 is a credit of
// one), so `slots` is the process's concurrency per broker, and many
// requests and replies share one connection's system calls. Requests that
// arrive together are decoded, validated against the catalog and handed to
// the service's batch handler in one call, which lets a handler pipeline its
// Redis work. Invalid requests never reach a handler: they are answered
// BAD_REQUEST / UNKNOWN_OP here. A handler that throws gets INTERNAL.
//
// Every request answered is counted per (service, op) in an OpMetrics
// (common/metrics.hpp): requests, error codes, and the time its batch took
// from decoding to the handler's return. Only the executor thread touches
// the counters, so they cost no lock; export_metrics() adds them to Redis.
//
// Handlers and timers run on one executor thread, so a slow handler never
// stops the heartbeats: the serving thread keeps heartbeating every
// connection, busy or idle, and collects the next batch meanwhile. A broker
// silent for heartbeat * liveness is presumed dead and the connection is
// reopened with exponential backoff. On stop every connection sends
// DISCONNECT.
#pragma once

#include <zmq.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/codec.hpp"
#include "common/metrics.hpp"
#include "common/redis.hpp"
#include "common/schema.hpp"

namespace primary {

struct WorkerOptions {
  std::vector<std::string> brokers = {"tcp://127.0.0.1:16773"};
  std::chrono::milliseconds heartbeat{2500};
  int liveness = 3;
  std::chrono::milliseconds reconnect_min{100};
  std::chrono::milliseconds reconnect_max{5000};
  CodecLimits limits;
  std::chrono::milliseconds metrics_interval{5000};  // export_metrics() flushes this often
  // Ask the broker for batches (docs/protocol.md "Worker batches"): many
  // requests to a message each way instead of one message each.
  bool batch = true;
};

using Handler = std::function<Reply(const Request&)>;
// Answers a batch; returns exactly one reply per request, in order.
using BatchHandler = std::function<std::vector<Reply>(const std::vector<Request>&)>;

class WorkerRuntime {
 public:
  WorkerRuntime(zmq::context_t& ctx, WorkerOptions options);
  ~WorkerRuntime();

  // Serves `service` one request at a time per connection.
  void serve(const std::string& service, Handler handler, int slots = 1);
  // Serves `service` with batches of up to `slots` requests per broker.
  void serve_batch(const std::string& service, BatchHandler handler, int slots);
  // Calls `fn` about every `interval` on the executor thread (never at the
  // same time as a handler).
  void every(std::chrono::milliseconds interval, std::function<void()> fn);
  // Adds the op counters to Redis every metrics_interval (on the executor
  // thread, so `redis` may be the handlers' own connection) and once more
  // when run() ends. Without it they are only counted.
  void export_metrics(Redis& redis);
  // The counters; for handlers (executor thread) adding their own, e.g.
  // metrics().add("update_bytes_served", n).
  OpMetrics& metrics() { return metrics_; }

  // Serves until `stop` becomes true; then sends DISCONNECT everywhere.
  void run(const std::atomic<bool>& stop);

 private:
  struct Connection;
  struct Job;
  class Executor;
  struct ServiceEntry {
    std::string name;
    BatchHandler handler;
    size_t metrics = 0;  // index in metrics_
  };
  struct Timer {
    std::chrono::milliseconds interval;
    std::chrono::steady_clock::time_point next;
    std::function<void()> fn;
  };
  void open(Connection& c);
  // Decodes, handles and encodes one batch (executor thread).
  void process(Job& job) const;
  // Sends the replies of a finished batch (serving thread).
  void send_replies(Job& job);
  void flush_metrics();

  zmq::context_t& ctx_;
  WorkerOptions options_;
  std::vector<ServiceEntry> services_;
  std::vector<std::unique_ptr<Connection>> connections_;
  std::vector<Timer> timers_;
  mutable OpMetrics metrics_;  // executor thread only (process() is const)
  Redis* metrics_redis_ = nullptr;
  bool metrics_failing_ = false;
};

class Config;
// Declares the settings every worker takes: --broker, --event-sink,
// --heartbeat-ms, --heartbeat-liveness, --max-body, --metrics-interval-ms,
// --log-level, --config.
void add_worker_settings(Config& cfg);
// Reads them back (after cfg.parse) and starts logging; exits on bad values.
WorkerOptions worker_options(const Config& cfg, const std::string& log_name);
// Declares --redis (also PRIMARY_REDIS); redis_setting() reads it back and
// exits with one line when it is missing or malformed.
void add_redis_setting(Config& cfg);
RedisUrl redis_setting(const Config& cfg);
// Declares --check-interval-s and --grace-s, on which the licensing and the
// admin workers must agree: together they say when a silent Client is lost.
void add_fleet_timing_settings(Config& cfg);
// stale-unseen-s and stale-lost-s: when a computer is flagged stale (admin);
// stale-recount-s: how often admin.status recounts the never-seen ones.
void add_stale_settings(Config& cfg);
// Declares --event-log-cap: activity log entries kept by every writer.
void add_event_log_setting(Config& cfg);

}  // namespace primary
