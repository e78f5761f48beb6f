#include "admin/log_checkpoint.hpp"

#include <spdlog/spdlog.h>

#include "admin/lua_scripts.hpp"
#include "common/codec.hpp"
#include "common/crypto.hpp"
#include "common/keys.hpp"
#include "common/log_chain.hpp"
#include "common/names.hpp"

namespace primary::admin {
namespace {

const Script& checkpoint_script() { return embedded_script<lua::kLogCheckpoint>(); }

int64_t int_of(const RedisReply& r) {
  if (r.is_int()) return r.integer;
  if (r.is_str() && !r.str.empty()) return std::atoll(r.str.c_str());
  return 0;
}

}  // namespace

LogCheckpointer::LogCheckpointer(Redis& redis, CheckpointConfig config, EventPublisher& events, Clock now_ms)
    : redis_(redis),
      config_(std::move(config)),
      public_key_(base64url_encode(std::string_view(config_.secret_key).substr(32))),
      events_(events),
      now_ms_(std::move(now_ms)) {}

bool LogCheckpointer::poll(const Result<RedisReply>& newest) {
  auto warn = [&](const std::string& what) {
    if (std::chrono::steady_clock::now() < quiet_until_) return false;
    spdlog::warn("activity log checkpoint: {}", what);
    quiet_until_ = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    return false;
  };
  // The log's head first: while it stands still and no checkpoint is due by
  // time, that one read is all a poll costs.
  std::string error;
  auto head = logchain::head_of(newest, &error);
  if (!head) return warn(error);
  const bool moved = head->seq != seen_seq_;
  seen_seq_ = head->seq;
  next_poll_ = std::chrono::steady_clock::now() + (moved ? std::chrono::milliseconds(0) : std::chrono::seconds(1));
  if (!moved && known_seq_ >= 0 &&
      (head->seq <= known_seq_ ||
       (head->seq - known_seq_ < config_.every && now_ms_() - known_at_ < config_.interval_ms)))
    return false;
  auto last = redis_.command({"HMGET", keys::kLogCheckpoint, "seq", "at"});
  if (!last || !last->is_array() || last->elements.size() != 2)
    return warn(last ? last->str : last.error().message);
  const int64_t last_seq = int_of(last->elements[0]);
  int64_t last_at = int_of(last->elements[1]);
  const int64_t now = now_ms_();
  // No checkpoint yet: the interval runs from when this worker first looked.
  if (last_at == 0) {
    if (first_look_ms_ == 0) first_look_ms_ = now;
    last_at = first_look_ms_;
  }
  known_seq_ = last_seq;
  known_at_ = last_at;
  if (head->seq <= last_seq) return false;  // nothing since the last checkpoint (or the chain restarted)
  if (head->seq - last_seq < config_.every && now - last_at < config_.interval_ms) return false;
  const std::string signature =
      sign_detached(logchain::checkpoint_message(head->seq, head->hash, now), config_.secret_key);
  const Value fields(Value::Map{{field::kCount, Value(head->seq)},
                                {field::kHead, Value(head->hash)},
                                {field::kLogKey, Value(public_key_)},
                                {field::kSignature, Value(base64url_encode(signature))}});
  auto r = redis_.eval(checkpoint_script(), {keys::kLogCheckpoint, keys::kEvents},
                       {std::to_string(last_seq), event::kLogCheckpoint, pack(fields),
                        std::to_string(config_.event_cap), std::to_string(now)});
  const auto a = r ? count_and_events(*r) : std::nullopt;
  if (!a) return warn(r ? r->str : r.error().message);
  if (a->count != 1) return false;  // another admin worker was first
  events_.publish_entries(*a->events);
  return true;
}

}  // namespace primary::admin
