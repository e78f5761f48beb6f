// The broker: a Majordomo Protocol 0.1 (ZeroMQ RFC 7) broker with MMI
// (RFC 8), bounded queues and error replies.
//
// Clients talk to the front door (a ROUTER); workers connect to a separate
// ROUTER, the workers endpoint, so that no client can register itself as a
// worker and steal requests. Each service has a FIFO queue of requests; a
// request goes to the least loaded of its worker connections (the one with
// the most free credit), and among equally loaded ones to the one that has
// waited the longest (RFC 7's LRU). A plain RFC 7 worker holds one request
// at a time; a worker that announces a credit (docs/protocol.md "Worker
// credit") holds up to that many, so the load of a batch-serving worker
// spreads over every connection instead of filling the first one.
//
// Extensions are negotiated per connection by the READY: a READY of exactly
// RFC 7's frames makes a plain connection, which gets exactly RFC 7's
// REQUEST (client address, empty frame, body) and must answer exactly
// RFC 7's REPLY; it never sees a client's role or peer address. Only a
// READY that carries a credit frame opts into the extended REQUEST (meta
// and tag frames) and, with "batch", into REQUESTS/REPLIES.
//
// The broker never leaves a request hanging. Every request is answered by
// its worker or, failing that, by the broker itself: UNAVAILABLE when no
// worker took it before its deadline or its worker died holding it, BUSY
// when the service's queue is full, BAD_REQUEST for an envelope it cannot
// route, UNAUTHORIZED for a privileged service asked by a peer without the
// admin role. Bad input from one peer costs bounded work and touches no
// other peer's requests.
//
// Roles come from ZAP (RFC 27), answered by the broker itself: with CURVE, a
// client whose public key is on the admin allow-list gets the admin role and
// any other key the client role; without CURVE (insecure mode) loopback
// peers get the admin role. The role is looked up on every request, so the
// allow-list re-read on reload() (SIGHUP) applies at once to connections
// already open, granting and revoking alike, without dropping anyone. The
// event endpoint admits only the admin role when a subscriber connects.
//
// The broker also relays events: workers PUB to its XSUB event sink and it
// republishes them on the public event endpoint (XPUB), so subscribers need
// to know only the broker.
#pragma once

#include <zmq.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>

#include "common/errors.hpp"
#include "common/schema.hpp"
#include "common/mdp.hpp"

namespace primary {

struct BrokerOptions {
  std::string front = "tcp://*:16770";
  std::string events = "tcp://*:16771";
  std::string workers = "tcp://127.0.0.1:16773";
  std::string event_sink = "tcp://127.0.0.1:16774";
  size_t queue_limit = 10000;                        // per service
  std::chrono::milliseconds request_timeout{5000};   // to find a worker
  std::chrono::milliseconds heartbeat{2500};
  int liveness = 3;                                  // missed heartbeats
  size_t max_body = 4 * 1024 * 1024;
  size_t max_services = 256;
  bool insecure = true;
  std::string curve_secret;                 // Z85; required unless insecure
  std::string admin_keys_file;              // allow-list of admin public keys
  std::set<std::string> trusted_keys;       // always admin (the server's own tools)
};

struct BrokerEndpoints {
  std::string front, events, workers, event_sink;
};

struct BrokerStats {
  uint64_t requests = 0, replies = 0, unavailable = 0, busy = 0, bad_requests = 0,
           unauthorized = 0, events = 0;
};

class Broker {
 public:
  Broker(zmq::context_t& ctx, BrokerOptions options);

  // Binds all four sockets; an error names the endpoint that failed.
  Result<BrokerEndpoints> bind();
  // Serves until `stop` becomes true (checked at least every heartbeat);
  // re-reads the admin allow-list whenever `reload` is set, then clears it.
  void run(const std::atomic<bool>& stop, std::atomic<bool>* reload = nullptr);
  // Re-reads the admin allow-list; on error keeps the previous one.
  Status reload_admin_keys();

  const BrokerStats& stats() const { return stats_; }

 private:
  using Clock = std::chrono::steady_clock;
  struct Pending {
    std::string client;   // routing id on the front socket
    std::string service;
    zmq::message_t body;
    Clock::time_point deadline;
  };
  struct Service;
  // One worker connection. It may hold up to `credit` requests at once
  // (READY's optional credit frame, docs/protocol.md "Worker credit"); each
  // goes out with a tag frame that the REPLY echoes.
  struct Worker {
    std::string id;       // routing id on the workers socket
    std::string service;  // set by READY
    Service* svc = nullptr;  // services_[service] (map nodes do not move)
    Clock::time_point expiry;
    size_t credit = 1;
    // READY carried a credit frame: requests go out with the meta and tag
    // frames. Otherwise the connection is plain RFC 7.
    bool extended = false;
    uint64_t idle_since = 0;  // broker turn at which a credit of it last came free
    uint64_t next_tag = 0;
    std::unordered_map<uint64_t, Pending> in_flight;  // by tag
    // READY ended with "batch": requests go out many to a REQUESTS frame,
    // gathered here during one dispatch (docs/protocol.md "Worker batches").
    bool batch = false;
    std::string outbox;
  };
  struct Service {
    std::deque<Pending> queue;
    // The live connections serving it (worker_map_ nodes, which do not move).
    std::vector<Worker*> members;
    size_t workers = 0;  // sum of the live connections' credits
    // Since the broker started (broker.control stats): requests handed to
    // a worker, and BUSY / UNAVAILABLE answers the broker made itself.
    uint64_t routed = 0, busy = 0, unavailable = 0;
    bool marked = false;  // in marked_: to dispatch once the socket being read runs dry
  };

  // The readers return how many messages they took (up to their batch
  // bound); 0 means the socket ran dry.
  int on_zap();
  // Whether a connection's User-Id (set by on_zap) has the admin role now.
  bool is_admin(const char* user) const;
  // The meta frame of a request for an extended worker, "<peer address>
  // <role>", from the metadata of the request's body frame.
  std::string meta_of(const zmq::message_t& body) const;
  // The peer a request came from, as its connection proves it: address,
  // role and, for the admin role, who (Peer::actor).
  Peer peer_of(const zmq::message_t& body) const;
  int on_front();
  int on_worker_socket();
  int relay(zmq::socket_t& from, zmq::socket_t& to, bool events);
  void handle_client(mdp::Frames& frames);
  void handle_mmi(const std::string& client, std::string_view service, std::string_view body);
  void handle_broker_service(const std::string& client, const zmq::message_t& message);
  void handle_worker(mdp::Frames& frames);
  void dispatch(Service& service);
  // Requests that arrive together, and credits that come free together, are
  // dispatched together after the reading loop, so that a batching worker
  // gets them in one REQUESTS message.
  void mark(Service& service);
  void dispatch_marked();
  void flush_batch(Worker& w);
  void send_to_worker(Worker& w, mdp::Command cmd);
  void reply_client(std::string_view client, std::string_view service, zmq::message_t body);
  // Frames are sent one by one as they are made, without a vector of
  // messages in between; a send that would block drops the message (the
  // sockets never block the broker). Frames of up to 33 bytes cost libzmq
  // no allocation.
  static void part(zmq::socket_t& s, std::string_view bytes);
  static void last_part(zmq::socket_t& s, zmq::message_t m);
  // id | "" | MDPW01 | cmd, all sent with more to follow.
  void worker_header(std::string_view id, mdp::Command cmd);
  void reply_error(const std::string& client, std::string_view service, Code code,
                   std::string_view message);
  void delete_worker(const std::string& id, bool send_disconnect);
  // Answers the requests whose deadline passed; whether it answered any.
  bool purge(Clock::time_point now);
  void send_heartbeats(Clock::time_point now);

  zmq::context_t& ctx_;
  BrokerOptions options_;
  zmq::socket_t zap_, front_, workers_, sink_, events_;
  std::map<std::string, std::string> admin_keys_;  // Z85 key -> name (read_allow_list)
  std::unordered_map<std::string, Worker> worker_map_;
  std::map<std::string, Service, std::less<>> services_;
  Clock::time_point next_heartbeat_;
  Clock::time_point next_trim_{};
  BrokerStats stats_;
  uint64_t turn_ = 0;  // counts worker READYs and replies: the order credits came free
  std::vector<Service*> marked_;
  std::vector<mdp::BatchEntry> entries_;  // scratch for a REPLIES frame
};

}  // namespace primary
