// The update handlers: `update` (check, fetch) for Clients and
// `update.control` (releases, approve, hold, sync, import) for admins.
//
// The catalogue lives in Redis, so every updater instance agrees on what was
// released and what an admin approved:
//   ps:upd:releases  hash "COMPONENT VERSION" -> MessagePack release record
//   ps:upd:state     hash "COMPONENT VERSION" -> "held" | "approved:PERCENT"
//   ps:upd:gen       counter bumped on every change (instances cache the
//                    catalogue and reload it only when this moves)
//   ps:upd:feed      hash: issued, expires, synced_at, source of the feed in force
//   ps:upd:sync      hash: the last sync/import job (job, state, result, ...)
//   ps:upd:lock      one sync at a time across instances (expiring)
// The files live in each instance's ArtifactStore. Syncs and imports take
// minutes, so the control ops only queue them on a SyncRunner thread and
// answer with a job id; progress shows in `releases` and the activity log.
#pragma once

#include <zmq.hpp>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/events.hpp"
#include "common/redis.hpp"
#include "common/release.hpp"
#include "common/schema.hpp"
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
  Outcome apply(const Manifest& m, const std::string& source, Redis& redis, EventPublisher& events,
                const std::function<std::optional<Error>(const Release&)>& obtain);

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

class UpdateService {
 public:
  UpdateService(Redis& redis, ArtifactStore& store, SyncRunner& runner, UpdateConfig config,
                EventPublisher& events, Clock now_ms);

  std::vector<Reply> handle_update(const std::vector<Request>& requests);
  std::vector<Reply> handle_control(const std::vector<Request>& requests);

 private:
  struct Entry {
    Release release;
    SemVer semver;
    bool approved = false;
    int rollout = 0;
    int64_t issued = 0, added_at = 0;
  };
  // Reloads the catalogue when ps:upd:gen moved; an error when Redis is down.
  std::optional<Error> refresh();
  Reply check(const Request& req);
  Reply fetch(const Request& req);
  Reply releases(const Request& req);
  Reply set_state(const Request& req, bool approve);
  Reply queue_job(const Request& req, const std::string& kind);
  const Entry* find(const std::string& component, const std::string& version) const;

  Redis& redis_;
  ArtifactStore& store_;
  SyncRunner& runner_;
  UpdateConfig config_;
  EventPublisher& events_;
  Clock now_ms_;
  std::string generation_ = "-";  // never a real value: forces the first load
  std::vector<Entry> entries_;
};

}  // namespace primary::updater
