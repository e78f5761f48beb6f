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
#include "updater/sync_runner.hpp"

namespace primary::updater {

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
  Status refresh();
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
