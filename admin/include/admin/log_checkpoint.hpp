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
  // `newest`: the log's newest entry, read by the caller
  // (logchain::newest_entry_command()) and shared with another user.
  // Never throws; Redis trouble is logged (rate-limited) and retried next poll.
  bool poll(const Result<RedisReply>& newest);
  // When poll() should run next: at once (every 100 ms) while the log grows,
  // else once a second. While the log stands still and no checkpoint is due
  // by the last one read, a poll is that one read of the newest entry.
  std::chrono::steady_clock::time_point next_poll() const { return next_poll_; }

 private:
  Redis& redis_;
  CheckpointConfig config_;
  std::string public_key_;  // base64url
  EventPublisher& events_;
  Clock now_ms_;
  int64_t first_look_ms_ = 0;  // when this worker first found no checkpoint at all
  int64_t seen_seq_ = -1;      // the log's head at the previous poll
  // The last checkpoint as last read (seq -1: not read yet). Checkpoints only
  // move forward, so while the head stands still these tell when one is
  // certainly not due without reading them again.
  int64_t known_seq_ = -1, known_at_ = 0;
  std::chrono::steady_clock::time_point next_poll_{};
  std::chrono::steady_clock::time_point quiet_until_{};
};

}  // namespace primary::admin
