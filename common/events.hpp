// Publishing activity events (PROTOCOL.md section 7).
//
// Events are first appended to the durable activity log, a capped Redis
// Stream, by the same Lua script that makes the state change, so the log and
// the state never disagree. The script hands back each entry (id, type, ts,
// MessagePack fields) and the worker then publishes it through the broker's
// event relay as two frames: the type, and the map {id, ts, type, ...}.
#pragma once

#include <zmq.hpp>

#include <string>
#include <vector>

#include "common/keys.hpp"
#include "common/redis.hpp"
#include "common/value.hpp"

namespace primary {

// Redis key of the activity log stream.
inline constexpr const char* kEventStream = keys::kEvents;

// The source of a Lua script that emits events: `body` (after `helpers`,
// more local functions) may call emit(type, fields), which appends one entry
// to the activity stream and collects it in the table EV for the reply. The
// script's last key is the stream and its last two arguments are the stream's
// cap and the time in ms.
std::string lua_with_events(const char* body, const char* helpers = "");

// Builds the public event map from one collected entry {id, type, ts, data}.
std::optional<Value> event_from_entry(const RedisReply& entry);

class EventPublisher {
 public:
  // Connects a PUB socket to each endpoint (empty list: publish nowhere).
  EventPublisher(zmq::context_t& ctx, const std::vector<std::string>& endpoints);
  // Publishes every entry of a script's collected EV array.
  void publish_entries(const RedisReply& entries);
  void publish(const Value& event);

 private:
  zmq::socket_t socket_;
  bool connected_ = false;
};

}  // namespace primary
