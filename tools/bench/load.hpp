// The load generator: closed-loop MDP/0.1 clients.
//
// `clients` DEALER sockets, each keeping `window` requests in flight: it
// sends `window` requests, then one more for every reply, so the offered
// load adapts to what the server sustains. Each in-flight request occupies
// a slot of its socket; the slot number travels as the request's `rid` and
// comes back in the reply, which gives per-request latency without any
// lookup. The sockets are spread over `threads` poll loops.
//
// A run is bounded either by time (warm-up, then `duration` measured) or by
// a request count (`total` requests, rate = total / elapsed); either way it
// then stops sending and waits up to `drain` for outstanding replies.
#pragma once

#include <zmq.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/mdp.hpp"
#include "common/value.hpp"

namespace primary::bench {

// What TopFields-based checks see of a reply: `rid`, `ok` and `status`
// when present at the top level with those types.
struct TopFields {
  std::optional<int64_t> rid;
  std::optional<bool> ok;
  std::optional<std::string_view> status;
};
// Reads them from a MessagePack map; false when `body` is not a well-formed
// map (nested values are skipped, up to 32 levels deep).
bool scan_top_fields(std::string_view body, TopFields& out);

struct LoadOptions {
  std::string endpoint;
  std::string service;
  int clients = 4;
  int window = 64;
  int threads = 1;
  std::chrono::milliseconds warmup{0};
  std::chrono::milliseconds duration{0};   // > 0: time-bounded run
  int64_t total = 0;                       // > 0: count-bounded run
  std::chrono::milliseconds drain{10000};
  // false: replies are not decoded (one in 256 is, as a sanity check) and
  // no latency is recorded; for raw transport benchmarks.
  bool decode = true;
  // Optional, with decode: judges a reply from its top-level fields as read
  // straight from the MessagePack bytes, with no Value built; a reply it
  // passes counts as good, any other (and one in 64 anyway) goes through
  // the ReplyCheck. Keeps the load generator's cost per reply well under
  // that of the server it measures.
  std::function<bool(const TopFields&)> quick;
};


// The body of request number `seq`; it must carry `rid` (the slot) as its
// `rid` field when LoadOptions::decode is true. Called from the poll threads.
using BodyMaker = std::function<std::string(int64_t seq, int64_t rid)>;
// Judges the decoded reply to request `seq` (-1 for the sampled replies of
// a run without decoding); false counts an error and `why` says what was
// wrong. Called from the poll threads.
using ReplyCheck = std::function<bool(int64_t seq, const Value& reply, std::string& why)>;

struct LoadResult {
  int64_t sent = 0;
  int64_t replies = 0;   // all replies received
  int64_t counted = 0;   // good replies inside the measured window
  int64_t errors = 0;    // replies the check refused (all of the run)
  int64_t lost = 0;      // requests without a reply at the end of the drain
  double seconds = 0;    // length of the measured window
  double rps = 0;        // counted / seconds
  double p50_ms = 0, p99_ms = 0, max_ms = 0;  // when decoding
  std::string first_error;
};

// The middle value (of an even count, the mean of the two middle ones); -1 for none.
double median(std::vector<double> v);

LoadResult run_load(zmq::context_t& ctx, const LoadOptions& options, const BodyMaker& make,
                    const ReplyCheck& check);

// A server without a broker: a ROUTER on its own thread and ZeroMQ
// context, bound to tcp://127.0.0.1:*. Every message it receives goes to
// `handle`, which may rewrite the frames in place; they are sent back when
// it returns true. Stops and joins on destruction.
class DirectServer {
 public:
  using Handler = std::function<bool(mdp::Frames&)>;
  explicit DirectServer(Handler handle);
  ~DirectServer();
  DirectServer(const DirectServer&) = delete;
  DirectServer& operator=(const DirectServer&) = delete;
  const std::string& endpoint() const { return endpoint_; }

 private:
  struct State;
  std::unique_ptr<State> state_;
  std::string endpoint_;
};

// An echo server without a broker: every message goes back as it came.
class DirectEcho : public DirectServer {
 public:
  DirectEcho() : DirectServer([](mdp::Frames&) { return true; }) {}
};

// The body a plain echo worker answers to `request_body`: {ok: true,
// payload} with the request's payload and rid; an error body when the
// request is not a MessagePack map.
std::string echo_reply_body(std::string_view request_body);

// The REPLY a plain RFC 7 worker sends for `request`, a message it received
// ("" | MDPW01 | REQUEST | envelope... | "" | body): the envelope frames go
// back unchanged, then "" and `reply_body`. So it answers an RFC 7 broker
// (envelope: the client address) and any broker that adds frames to the
// envelope alike. False when `request` is not a REQUEST of that shape.
bool plain_reply(mdp::Frames& request, std::string_view reply_body, mdp::Frames& out);

// `count` plain MDP/0.1 (ZeroMQ RFC 7) echo workers for `service`: one
// DEALER each to a broker's workers endpoint, each announced by a READY of
// exactly RFC 7's frames (no credit, no batch), so each holds one request at
// a time. They heartbeat every `heartbeat`, answer a DISCONNECT with a new
// READY, and reply with echo_reply_body(). One thread with its own context
// polls them all.
class PlainEchoWorkers {
 public:
  PlainEchoWorkers(const std::string& endpoint, const std::string& service, int count,
                   std::chrono::milliseconds heartbeat = std::chrono::milliseconds(1000));
  ~PlainEchoWorkers();
  PlainEchoWorkers(const PlainEchoWorkers&) = delete;
  PlainEchoWorkers& operator=(const PlainEchoWorkers&) = delete;
  // Requests answered, and messages from the broker that were not RFC 7.
  int64_t served() const;
  int64_t protocol_errors() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace primary::bench
