// Signed checkpoints of the activity log's hash chain (common/log_chain.hpp).
//
// Every admin worker given the log key polls: when the chain has grown by
// `every` entries, or `interval` has passed with new entries, since the last
// checkpoint, it signs (count, head hash, now) with the server's Ed25519 log
// key and appends a log.checkpoint entry naming them, then publishes it on
// the event stream. The append is a compare-and-set on the last checkpoint's
// seq (admin/lua/log_checkpoint.lua), so with several admin workers one
// appends and the others find it done. The head it names may be a few
// entries before the checkpoint itself when others were appended meanwhile.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

#include "common/events.hpp"
#include "common/redis.hpp"

namespace primary::admin {

struct CheckpointConfig {
  std::string secret_key;  // Ed25519, 64 bytes (libsodium form)
  int64_t every = 1000;    // entries between checkpoints (checked each poll: see poll())
  int64_t interval_ms = 600000;
  int64_t event_cap = kEventLogCap;
};

class LogCheckpointer {
 public:
  using Clock = std::function<int64_t()>;  // Unix ms
  LogCheckpointer(Redis& redis, CheckpointConfig config, EventPublisher& events, Clock now_ms);
  // Appends a checkpoint when one is due; true when this call appended one.
  // Never throws; Redis trouble is logged (rate-limited) and retried next poll.
  bool poll();
  // When poll() should run next: at once (every 100 ms) while the log grows,
  // else once a second, so an idle server makes one Redis call a second.
  std::chrono::steady_clock::time_point next_poll() const { return next_poll_; }

 private:
  Redis& redis_;
  CheckpointConfig config_;
  std::string public_key_;  // base64url
  EventPublisher& events_;
  Clock now_ms_;
  int64_t first_look_ms_ = 0;  // when this worker first found no checkpoint at all
  int64_t seen_seq_ = -1;      // the log's head at the previous poll
  std::chrono::steady_clock::time_point next_poll_{};
  std::chrono::steady_clock::time_point quiet_until_{};
};

}  // namespace primary::admin
