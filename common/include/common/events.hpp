// Publishing activity events (PROTOCOL.md section 7).
//
// Events are first appended to the durable activity log, a capped Redis
// Stream, by the same Lua script that makes the state change, so the log and
// the state never disagree: such a script includes common/lua/events.lua,
// whose emit() appends an entry and collects it. The script hands back each
// entry (id, type, ts, MessagePack fields) and the worker then publishes it
// through the broker's event relay as two frames: the type, and the map
// {id, ts, type, ...}.
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
// Entries the stream keeps (XADD MAXLEN ~) unless --event-log-cap says otherwise.
inline constexpr int64_t kEventLogCap = 1000000;

// The answer of a script that returns {n, the entries it appended} (the
// sweep's computers lost, add_release's 1 added / 0 known, set_state's
// -1 unknown / 0 unchanged / 1 changed, ...). Views into the reply.
struct CountAndEvents {
  int64_t count = 0;
  const RedisReply* events = nullptr;
};
// nullopt when `r` is not {integer, array}.
std::optional<CountAndEvents> count_and_events(const RedisReply& r);

// Builds the public event map from one collected entry {id, type, ts, data}
// or {id, type, ts, data, seq, prev} (then with the chain fields seq, prev).
std::optional<Value> event_from_entry(const RedisReply& entry);

// Appends one event to the activity log through common/lua/emit.lua, for
// what no state-changing script logs itself (a sync requested, a firewall
// applied, admin keys re-read). `who` is pack_who() of the requester, or ""
// for none. The entry's id, and the script's collected entries to publish
// (EventPublisher::publish_entries). In common/event_log.cpp, apart from
// the publisher, so that a program that only appends (the supervisor) does
// not load libzmq.
struct Appended {
  std::string id;
  RedisReply entries;
};
Result<Appended> append_event(Redis& redis, std::string_view type, const Value& fields, std::string_view who,
                              int64_t cap, int64_t now_ms);

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
