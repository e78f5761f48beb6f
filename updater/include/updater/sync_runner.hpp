// Syncs and imports: the vendor feed (or an offline bundle) into the
// artifact store and the catalogue in Redis, one job at a time across every
// updater instance (ps:upd:lock), on a thread of its own, because a job
// takes minutes while requests take microseconds.
#pragma once

#include <zmq.hpp>

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/errors.hpp"
#include "common/events.hpp"
#include "common/redis.hpp"
#include "common/release.hpp"
#include "updater/store.hpp"

namespace primary::updater {

struct UpdateConfig {
  std::string vendor_public;          // 32 bytes; empty: sync and import are refused
  std::string feed_url;               // empty: no vendor feed (offline imports only)
  std::set<std::string> auto_approve;  // channels whose new releases arrive approved
  int64_t sync_interval_s = 21600;    // periodic sync (0: never)
  int64_t event_cap = 1000000;
  int64_t max_feed_bytes = 16 * 1024 * 1024;
};

using Clock = std::function<int64_t()>;  // Unix ms

// One queued sync or import and what became of it.
struct SyncJob {
  std::string id;
  std::string kind;  // "sync" | "import"
  std::string path;  // bundle path for import
  Value::Map by;     // who requested it (who_fields()); empty for a periodic sync
};

class SyncRunner {
 public:
  SyncRunner(RedisUrl url, ArtifactStore& store, UpdateConfig config, zmq::context_t& ctx,
             std::vector<std::string> event_sinks, Clock now_ms);
  ~SyncRunner();

  // Queues a job; false when one is already queued or running here.
  bool submit(const SyncJob& job);
  // Queues a periodic sync if the interval has passed since the last one
  // finished on any instance.
  void periodic();

  // Runs one job to the end on the calling thread (the runner thread, or a
  // test). Records the outcome in ps:upd:sync and the activity log.
  void run(const SyncJob& job, Redis& redis, EventPublisher& events);

 private:
  void loop();
  struct Outcome;
  Outcome apply(const SyncJob& job, const Manifest& m, const std::string& source, Redis& redis, EventPublisher& events,
                const std::function<Status(const Release&)>& obtain);

  RedisUrl url_;
  ArtifactStore& store_;
  UpdateConfig config_;
  zmq::context_t& ctx_;
  std::vector<std::string> sinks_;
  Clock now_ms_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<SyncJob> queue_;
  bool busy_ = false;
  bool stopping_ = false;
  std::thread thread_;
};

// The catalogue's hash field of a release: "COMPONENT VERSION".
std::string release_field(const std::string& component, const std::string& version);
// A feed URL for logs and events: user:password@ masked.
std::string redacted_url(const std::string& url);

}  // namespace primary::updater
