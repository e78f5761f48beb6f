#include "broker/broker.hpp"

#include <malloc.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "common/codec.hpp"
#include "common/curve.hpp"
#include "common/schema.hpp"

namespace primary {
namespace {

using mdp::frame;
using mdp::view;

constexpr size_t kMaxServiceName = 255;
constexpr size_t kMaxCredit = 1024;

// READY's credit frame: ASCII digits, 1 to kMaxCredit; 0 when invalid.
size_t parse_credit(std::string_view text) {
  if (text.empty() || text.size() > 4) return 0;
  size_t n = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return 0;
    n = n * 10 + static_cast<size_t>(c - '0');
  }
  return n >= 1 && n <= kMaxCredit ? n : 0;
}

// A tag frame or batch entry's tag: 8 bytes (the caller checks the size).
uint64_t tag_of(std::string_view bytes) {
  uint64_t tag;
  std::memcpy(&tag, bytes.data(), sizeof tag);
  return tag;
}

// Makes "tcp://0.0.0.0:123" or "tcp://[::]:123" into an address a local
// client can connect to.
std::string connectable(std::string ep) {
  for (std::string_view any : {"//0.0.0.0:", "//[::]:"}) {
    if (auto pos = ep.find(any); pos != std::string::npos)
      ep.replace(pos, any.size(), any[2] == '0' ? "//127.0.0.1:" : "//[::1]:");
  }
  return ep;
}

std::string peer_address(const zmq::message_t& m) {
  const char* addr = zmq_msg_gets(m.handle(), "Peer-Address");
  return addr ? addr : "";
}

// The rid of a request body, so broker-made errors can echo it.
Value rid_of(const zmq::message_t& body, size_t max_body) {
  CodecLimits lim;
  lim.max_body = max_body;
  auto decoded = unpack_map(view(body), lim);
  if (!decoded) return {};
  const Value* rid = decoded->find(field::kRid);
  return rid ? *rid : Value();
}

}  // namespace

Broker::Broker(zmq::context_t& ctx, BrokerOptions options)
    : ctx_(ctx),
      options_(std::move(options)),
      zap_(ctx, zmq::socket_type::rep),
      front_(ctx, zmq::socket_type::router),
      workers_(ctx, zmq::socket_type::router),
      sink_(ctx, zmq::socket_type::xsub),
      events_(ctx, zmq::socket_type::xpub) {
  for (auto* s : {&front_, &workers_, &sink_, &events_}) s->set(zmq::sockopt::linger, 1000);
  // libzmq drops a connection that sends a frame over MAXMSGSIZE without a
  // word; keep that for frames far over the limit and answer the rest.
  front_.set(zmq::sockopt::maxmsgsize, static_cast<int64_t>(options_.max_body * 4 + 65536));
  workers_.set(zmq::sockopt::maxmsgsize, static_cast<int64_t>(options_.max_body * 4 + 65536));
  // Never block the broker on a slow or absent peer: drop instead.
  front_.set(zmq::sockopt::router_mandatory, 0);
  front_.set(zmq::sockopt::sndhwm, 100000);
  front_.set(zmq::sockopt::rcvhwm, 100000);
  workers_.set(zmq::sockopt::sndhwm, 100000);
  workers_.set(zmq::sockopt::rcvhwm, 100000);
  events_.set(zmq::sockopt::sndhwm, 100000);
  // Every connection to the public endpoints goes through our ZAP handler.
  front_.set(zmq::sockopt::zap_domain, "front");
  events_.set(zmq::sockopt::zap_domain, "events");
  if (!options_.insecure) {
    for (auto* s : {&front_, &events_}) {
      s->set(zmq::sockopt::curve_server, true);
      s->set(zmq::sockopt::curve_secretkey, options_.curve_secret);
    }
  }
}

Status Broker::reload_admin_keys() {
  std::map<std::string, std::string> keys;
  if (!options_.admin_keys_file.empty()) {
    auto listed = read_allow_list(options_.admin_keys_file);
    if (!listed) return listed.error();
    keys = std::move(*listed);
  }
  for (const std::string& key : options_.trusted_keys) keys[key] = actor::kInternal;
  admin_keys_ = std::move(keys);
  spdlog::info("{} admin keys in force", admin_keys_.size());
  return {};
}

Peer Broker::peer_of(const zmq::message_t& body) const {
  Peer peer;
  peer.address = peer_address(body);
  const char* user = zmq_msg_gets(body.handle(), "User-Id");
  peer.admin = is_admin(user);
  if (peer.admin) peer.actor = options_.insecure ? actor::kLocal : admin_keys_.at(user);
  return peer;
}

std::string Broker::meta_of(const zmq::message_t& body) const { return encode_peer(peer_of(body)); }

bool Broker::is_admin(const char* user) const {
  if (!user) return false;
  if (options_.insecure) return std::strcmp(user, "loopback") == 0;
  return admin_keys_.count(user) > 0;
}

// ZAP (RFC 27): decides who may connect and with which role (the User-Id
// that then travels on every message of the connection).
int Broker::on_zap() {
  mdp::Frames f;
  int taken = 0;
  for (; taken < 100 && mdp::recv_frames(zap_, f, zmq::recv_flags::dontwait); ++taken) {
    if (f.size() < 6) {
      // Not a ZAP request we can answer; REP needs a reply to move on.
      mdp::Frames out;
      out.push_back(frame("1.0"));
      out.push_back(frame(""));
      out.push_back(frame("500"));
      out.push_back(frame("malformed ZAP request"));
      out.push_back(frame(""));
      out.push_back(frame(""));
      mdp::send_frames(zap_, out);
      continue;
    }
    const std::string_view domain = view(f[2]);
    const std::string address(view(f[3]));
    const std::string_view mechanism = view(f[5]);
    // The User-Id names the peer: its Z85 key, or "loopback"/"remote" without
    // CURVE. Roles are looked up per request (is_admin), so a reload applies
    // to open connections too.
    std::string user;
    if (mechanism == "CURVE" && f.size() >= 7 && f[6].size() == 32) {
      char z85[41];
      zmq_z85_encode(z85, static_cast<const uint8_t*>(f[6].data()), 32);
      user = z85;
    } else if (mechanism == "NULL") {
      user = is_loopback(address) ? "loopback" : "remote";
    }
    const bool allowed = !user.empty() && (domain != "events" || is_admin(user.c_str()));
    mdp::Frames out;
    out.push_back(frame("1.0"));
    out.push_back(std::move(f[1]));  // request id
    out.push_back(frame(allowed ? "200" : "400"));
    out.push_back(frame(allowed ? "OK" : "the event stream needs the admin role"));
    out.push_back(frame(user));
    out.push_back(frame(""));
    mdp::send_frames(zap_, out);
  }
  return taken;
}

Result<BrokerEndpoints> Broker::bind() {
  BrokerEndpoints out;
  if (auto loaded = reload_admin_keys(); !loaded) return loaded.error();
  try {
    zap_.bind("inproc://zeromq.zap.01");
  } catch (const zmq::error_t& e) {
    return Error{Code::Internal, std::string("cannot bind the ZAP handler: ") + e.what()};
  }
  struct Target {
    zmq::socket_t* socket;
    const std::string* endpoint;
    std::string* bound;
    const char* what;
  };
  for (const Target& t : {Target{&front_, &options_.front, &out.front, "front"},
                          Target{&events_, &options_.events, &out.events, "events"},
                          Target{&workers_, &options_.workers, &out.workers, "workers"},
                          Target{&sink_, &options_.event_sink, &out.event_sink, "event sink"}}) {
    try {
      t.socket->bind(*t.endpoint);
    } catch (const zmq::error_t& e) {
      return Error{Code::Unavailable, std::string("cannot bind ") + t.what + " endpoint " +
                                          *t.endpoint + ": " + e.what()};
    }
    *t.bound = connectable(t.socket->get(zmq::sockopt::last_endpoint));
  }
  return out;
}

void Broker::run(const std::atomic<bool>& stop, std::atomic<bool>* reload) {
  next_heartbeat_ = Clock::now() + options_.heartbeat;
  // The sockets are watched through their ZMQ_FD descriptors with poll(2),
  // not zmq_poll: zmq_poll asks every socket for ZMQ_EVENTS twice a call,
  // each a getpid and a poll of its mailbox, ~20 system calls a turn for
  // five sockets. A descriptor only signals commands (a message on an idle
  // pipe among them), so a socket is read until it runs dry, and read again
  // after anything was sent through it: a send may process the very command
  // that would have woken the descriptor.
  enum { kFront, kWorkers, kSink, kEvents, kZap, kSockets };
  zmq::socket_t* sockets[kSockets] = {&front_, &workers_, &sink_, &events_, &zap_};
  pollfd fds[kSockets];
  bool ready[kSockets];
  for (int i = 0; i < kSockets; ++i) {
    fds[i] = pollfd{sockets[i]->get(zmq::sockopt::fd), POLLIN, 0};
    ready[i] = true;
  }
  // Signals (stop, reload) arrive only inside ppoll(), with this mask: the
  // caller's, less SIGTERM, SIGINT and SIGHUP (main.cpp keeps them blocked).
  sigset_t waiting;
  pthread_sigmask(SIG_SETMASK, nullptr, &waiting);
  for (int sig : {SIGTERM, SIGINT, SIGHUP}) sigdelset(&waiting, sig);
  while (!stop.load()) {
    if (reload && reload->exchange(false)) {
      if (auto loaded = reload_admin_keys(); !loaded)
        spdlog::error("admin keys not reloaded: {}", loaded.error().message);
    }
    // Sleep until the next heartbeat or the earliest queued deadline, unless
    // a socket may still hold messages.
    auto now = Clock::now();
    auto wake = next_heartbeat_;
    for (const auto& [_, s] : services_)
      if (!s.queue.empty()) wake = std::min(wake, s.queue.front().deadline);
    const bool busy = std::find(std::begin(ready), std::end(ready), true) != std::end(ready);
    const long timeout =
        busy ? 0
             : std::max<long>(1, std::chrono::duration_cast<std::chrono::milliseconds>(wake - now).count() + 1);
    const timespec ts{static_cast<time_t>(timeout / 1000), static_cast<long>(timeout % 1000) * 1000000};
    if (::ppoll(fds, kSockets, &ts, &waiting) < 0) {
      if (errno == EINTR) continue;
      spdlog::critical("poll failed: {}", std::strerror(errno));
      break;
    }
    for (int i = 0; i < kSockets; ++i)
      if (fds[i].revents) ready[i] = true;
    // Bounded batches per socket keep one busy peer from starving the rest.
    if (ready[kZap]) ready[kZap] = on_zap() > 0;
    if (ready[kWorkers] && on_worker_socket() > 0) ready[kWorkers] = ready[kFront] = true;
    else ready[kWorkers] = false;
    if (ready[kFront] && on_front() > 0) ready[kFront] = ready[kWorkers] = true;
    else ready[kFront] = false;
    if (ready[kSink] && relay(sink_, events_, true) > 0) ready[kSink] = ready[kEvents] = true;
    else ready[kSink] = false;
    if (ready[kEvents] && relay(events_, sink_, false) > 0) ready[kEvents] = ready[kSink] = true;
    else ready[kEvents] = false;
    now = Clock::now();
    if (purge(now)) ready[kFront] = true;
    if (now >= next_heartbeat_) {
      send_heartbeats(now);  // may answer the clients of an expired worker too
      ready[kWorkers] = ready[kFront] = true;
    }
    if (now >= next_trim_) {
      // main.cpp keeps up to 64 MiB of freed heap for the update chunks'
      // sake; between bursts hand back what is free, so the broker's
      // resident size follows its load instead of its highest peak.
      ::malloc_trim(0);
      next_trim_ = now + std::chrono::seconds(10);
    }
  }
  // Orderly stop: answer everything still waiting, release the workers.
  for (auto& [name, s] : services_) {
    for (auto& p : s.queue) reply_error(p.client, name, Code::Unavailable, "broker shutting down");
    s.queue.clear();
  }
  std::vector<std::string> ids;
  for (auto& [id, _] : worker_map_) ids.push_back(id);
  for (auto& id : ids) delete_worker(id, true);
}

int Broker::on_front() {
  mdp::Frames frames;
  int taken = 0;
  for (; taken < 1000 && mdp::recv_frames(front_, frames, zmq::recv_flags::dontwait); ++taken)
    handle_client(frames);
  dispatch_marked();
  return taken;
}

int Broker::on_worker_socket() {
  mdp::Frames frames;
  int taken = 0;
  for (; taken < 1000 && mdp::recv_frames(workers_, frames, zmq::recv_flags::dontwait); ++taken)
    handle_worker(frames);
  dispatch_marked();
  return taken;
}

int Broker::relay(zmq::socket_t& from, zmq::socket_t& to, bool events) {
  mdp::Frames frames;
  int taken = 0;
  for (; taken < 1000 && mdp::recv_frames(from, frames, zmq::recv_flags::dontwait); ++taken) {
    if (events) ++stats_.events;
    mdp::send_frames(to, frames, true);
  }
  return taken;
}

void Broker::handle_client(mdp::Frames& f) {
  ++stats_.requests;
  const std::string client(view(f[0]));
  if (f.size() < 3 || f[1].size() != 0 || view(f[2]) != mdp::kClient) {
    ++stats_.bad_requests;
    const bool worker_header = f.size() >= 3 && view(f[2]) == mdp::kWorker;
    return reply_error(client, "", Code::BadRequest,
                       worker_header ? "workers connect to the workers endpoint, not the front door"
                                     : "expected an empty frame then \"MDPC01\"");
  }
  if (f.size() != 5) {
    ++stats_.bad_requests;
    const std::string_view service = f.size() > 3 ? view(f[3]) : std::string_view();
    return reply_error(client, service.size() <= kMaxServiceName ? service : "", Code::BadRequest,
                       "expected exactly a service frame and one body frame");
  }
  const std::string_view service = view(f[3]);
  if (service.empty() || service.size() > kMaxServiceName) {
    ++stats_.bad_requests;
    return reply_error(client, "", Code::BadRequest, "service name must be 1 to 255 bytes");
  }
  if (f[4].size() > options_.max_body) {
    ++stats_.bad_requests;
    return reply_error(client, service, Code::BadRequest,
                       "body exceeds " + std::to_string(options_.max_body) + " bytes");
  }
  if (service.starts_with(mdp::kMmiPrefix)) return handle_mmi(client, service, view(f[4]));

  if (service_privileged(service) && !is_admin(zmq_msg_gets(f[4].handle(), "User-Id"))) {
    ++stats_.unauthorized;
    return reply_client(client, service,
                        frame(encode_error(Code::Unauthorized,
                                           "service '" + std::string(service) +
                                               "' needs the admin role",
                                           rid_of(f[4], options_.max_body))));
  }
  if (service == svc::kBrokerControl) return handle_broker_service(client, f[4]);

  auto it = services_.find(service);
  if (it == services_.end()) {
    if (!service_declared(service) || services_.size() >= options_.max_services) {
      ++stats_.unavailable;
      return reply_client(client, service,
                          frame(encode_error(Code::Unavailable,
                                             "no worker serves '" + std::string(service) + "'",
                                             rid_of(f[4], options_.max_body))));
    }
    it = services_.emplace(std::string(service), Service{}).first;
  }
  Service& svc = it->second;
  if (svc.queue.size() >= options_.queue_limit) {
    ++stats_.busy;
    ++svc.busy;
    return reply_client(client, service,
                        frame(encode_error(Code::Busy, "queue of '" + it->first + "' is full",
                                           rid_of(f[4], options_.max_body),
                                           {{field::kRetryAfterS, Value(1)}})));
  }
  svc.queue.push_back(Pending{client, it->first, std::move(f[4]), Clock::now() + options_.request_timeout});
  mark(svc);
}

void Broker::handle_mmi(const std::string& client, std::string_view service, std::string_view body) {
  std::string answer = "501";
  if (service == svc::kMmiService) {
    auto it = services_.find(body);
    answer = (body == svc::kBrokerControl || (it != services_.end() && it->second.workers > 0)) ? "200" : "404";
  }
  reply_client(client, service, frame(answer));
}

void Broker::handle_broker_service(const std::string& client, const zmq::message_t& message) {
  Value rid;
  CodecLimits lim;
  lim.max_body = options_.max_body;
  auto req = decode_request(svc::kBrokerControl, view(message), lim, &rid);
  if (!req) return reply_client(client, svc::kBrokerControl, frame(encode_reply(Reply::failure(req.error()), rid)));
  auto n = [](uint64_t v) { return Value(static_cast<int64_t>(v)); };
  if (req->op() == opname::kWhoami) {
    // What the connection proves, never what the body says.
    const Peer peer = peer_of(message);
    return reply_client(client, svc::kBrokerControl,
                        frame(encode_reply(Reply::success({{field::kActor, Value(peer.actor)},
                                                           {field::kRole, Value(peer.admin ? "admin" : "client")},
                                                           {field::kPeer, Value(peer.address)}}),
                                           rid)));
  }
  Value::Map services;
  if (req->op() == "stats") {
    for (const auto& [name, s] : services_)
      services.emplace_back(name, Value(Value::Map{{"queue", n(s.queue.size())},
                                                   {"workers", n(s.workers)},
                                                   {"routed", n(s.routed)},
                                                   {"busy", n(s.busy)},
                                                   {"unavailable", n(s.unavailable)}}));
    Value::Map totals{{"requests", n(stats_.requests)},         {"replies", n(stats_.replies)},
                      {"unavailable", n(stats_.unavailable)},   {"busy", n(stats_.busy)},
                      {"bad_requests", n(stats_.bad_requests)}, {"unauthorized", n(stats_.unauthorized)},
                      {"events", n(stats_.events)}};
    return reply_client(client, svc::kBrokerControl,
                        frame(encode_reply(Reply::success({{field::kServices, Value(std::move(services))},
                                                           {field::kTotals, Value(std::move(totals))}}),
                                           rid)));
  }
  for (const auto& [name, s] : services_) services.emplace_back(name, n(s.workers));
  reply_client(client, svc::kBrokerControl,
               frame(encode_reply(Reply::success({{field::kServices, Value(std::move(services))}}), rid)));
}

void Broker::handle_worker(mdp::Frames& f) {
  const std::string id(view(f[0]));
  auto it = worker_map_.find(id);
  const bool valid_header = f.size() >= 4 && f[1].size() == 0 && view(f[2]) == mdp::kWorker &&
                            f[3].size() == 1;
  if (!valid_header) {
    spdlog::warn("malformed message from a worker connection; disconnecting it");
    return delete_worker(id, true);
  }
  const auto cmd = static_cast<mdp::Command>(*static_cast<const uint8_t*>(f[3].data()));
  if (it != worker_map_.end())
    it->second.expiry = Clock::now() + options_.heartbeat * options_.liveness;

  switch (cmd) {
    case mdp::Command::Ready: {
      // [id, "", MDPW01, READY, service]: plain RFC 7. [..., service,
      // credit, "batch"?]: extended. Any other shape is refused.
      const std::string_view service = f.size() >= 5 && f.size() <= 7 ? view(f[4]) : std::string_view();
      const size_t credit = f.size() >= 6 ? parse_credit(view(f[5])) : 1;
      const bool batch = f.size() == 7 && view(f[6]) == mdp::kBatch;
      if (it != worker_map_.end() || service.empty() || service.size() > kMaxServiceName ||
          service.starts_with(mdp::kMmiPrefix) || service == svc::kBrokerControl || credit == 0 ||
          (f.size() == 7 && !batch)) {
        spdlog::warn("refused READY for '{}'", service.substr(0, 64));
        return delete_worker(id, true);
      }
      auto sit = services_.find(service);
      if (sit == services_.end()) {
        if (services_.size() >= options_.max_services) return delete_worker(id, true);
        sit = services_.emplace(std::string(service), Service{}).first;
      }
      Worker& w = worker_map_[id];
      w.id = id;
      w.service = sit->first;
      w.svc = &sit->second;
      w.expiry = Clock::now() + options_.heartbeat * options_.liveness;
      w.credit = credit;
      w.extended = f.size() >= 6;
      w.batch = batch;
      w.idle_since = ++turn_;
      sit->second.workers += credit;
      sit->second.members.push_back(&w);
      spdlog::debug("{} worker ready for '{}' with credit {} ({} now)", w.extended ? "extended" : "plain RFC 7",
                    w.service, credit, sit->second.workers);
      return dispatch(sit->second);
    }
    case mdp::Command::Reply: {
      // Plain: exactly [id, "", MDPW01, REPLY, client, "", body], for the
      // one request the connection holds. Extended: [id, "", MDPW01, REPLY,
      // client, meta, tag, "", body], the tag naming a request this
      // connection holds, for that client; a connection of credit one may
      // leave the tag out: [id, "", MDPW01, REPLY, client, ..., "", body].
      Pending* p = nullptr;
      uint64_t tag = 0;
      const bool plain = it != worker_map_.end() && !it->second.extended;
      if (it != worker_map_.end() && f.size() >= 7 && f[f.size() - 2].size() == 0 && (!plain || f.size() == 7)) {
        auto& held = it->second.in_flight;
        auto pit = held.end();
        if (!plain && f.size() == 9 && f[6].size() == sizeof tag) pit = held.find(tag_of(view(f[6])));
        if (pit == held.end() && it->second.credit == 1 && held.size() == 1) pit = held.begin();
        if (pit != held.end() && view(f[4]) == pit->second.client) {
          tag = pit->first;
          p = &pit->second;
        }
      }
      if (!p) {
        spdlog::warn("unexpected REPLY from a worker; disconnecting it");
        return delete_worker(id, true);
      }
      Worker& w = it->second;
      ++stats_.replies;
      w.in_flight.erase(tag);
      w.idle_since = ++turn_;
      // A worker that takes no batches gets its next request before the
      // client gets this reply: with one request at a time (plain RFC 7),
      // the worker idles until then, and the client has more in flight.
      if (w.batch) mark(*w.svc);
      else dispatch(*w.svc);
      return reply_client(view(f[4]), w.service, std::move(f.back()));
    }
    case mdp::Command::Replies: {
      // [id, "", MDPW01, REPLIES, batch], from a connection that asked for
      // batches. Entries are answered in order; the first one that does not
      // name a request this connection holds for that client disconnects it
      // (what it still holds is answered UNAVAILABLE, as for REPLY).
      if (it == worker_map_.end() || !it->second.batch || f.size() != 5 ||
          !mdp::parse_batch(view(f[4]), false, entries_)) {
        spdlog::warn("malformed REPLIES from a worker; disconnecting it");
        return delete_worker(id, true);
      }
      Worker& w = it->second;
      for (const auto& e : entries_) {
        auto pit = e.tag.size() == sizeof(uint64_t) ? w.in_flight.find(tag_of(e.tag)) : w.in_flight.end();
        if (pit == w.in_flight.end() || pit->second.client != e.client) {
          spdlog::warn("REPLIES entry for no request held; disconnecting the worker");
          return delete_worker(id, true);
        }
        ++stats_.replies;
        reply_client(pit->second.client, w.service, frame(e.body));
        w.in_flight.erase(pit);
      }
      w.idle_since = ++turn_;
      return mark(*w.svc);
    }
    case mdp::Command::Heartbeat:
      if (it == worker_map_.end()) return delete_worker(id, true);
      return;
    case mdp::Command::Disconnect:
      return delete_worker(id, false);
    default:
      spdlog::warn("unknown worker command; disconnecting it");
      return delete_worker(id, true);
  }
}

void Broker::dispatch(Service& svc) {
  // A batch frame stays within the body limit, which bounds what the
  // worker's socket accepts (twice the limit); bigger bodies go alone.
  const size_t cap = std::min(mdp::kBatchBytes, options_.max_body);
  while (!svc.queue.empty()) {
    // The least loaded connection; of equals, the longest waiting.
    Worker* best = nullptr;
    size_t best_free = 0;
    for (Worker* m : svc.members) {
      const size_t f = m->credit - m->in_flight.size();
      if (f > best_free || (f == best_free && f > 0 && m->idle_since < best->idle_since)) {
        best = m;
        best_free = f;
      }
    }
    if (!best) break;  // every connection is full
    Worker& w = *best;
    const std::string& id = w.id;
    const uint64_t tag = ++w.next_tag;
    Pending& p = w.in_flight.emplace(tag, std::move(svc.queue.front())).first->second;
    svc.queue.pop_front();
    ++svc.routed;
    if (w.batch && p.body.size() <= cap) {
      const std::string meta = meta_of(p.body);
      const mdp::BatchEntry e{p.client, meta,
                              std::string_view(reinterpret_cast<const char*>(&tag), sizeof tag), view(p.body)};
      if (!w.outbox.empty() && w.outbox.size() + mdp::entry_size(e, true) > cap) flush_batch(w);
      mdp::append_entry(w.outbox, e, true);
      continue;
    }
    zmq::message_t body;
    body.copy(p.body);  // shared buffer: kept for an error reply's rid
    worker_header(id, mdp::Command::Request);
    part(workers_, p.client);
    if (w.extended) {
      // A plain RFC 7 worker gets neither: no role or peer address leaves
      // the broker for a worker that did not ask for them.
      part(workers_, meta_of(p.body));
      part(workers_, std::string_view(reinterpret_cast<const char*>(&tag), sizeof tag));
    }
    part(workers_, {});
    last_part(workers_, std::move(body));
  }
  for (Worker* m : svc.members)
    if (!m->outbox.empty()) flush_batch(*m);
}

void Broker::flush_batch(Worker& w) {
  worker_header(w.id, mdp::Command::Requests);
  last_part(workers_, frame(w.outbox));
  w.outbox.clear();
}

void Broker::mark(Service& svc) {
  if (svc.marked) return;
  svc.marked = true;
  marked_.push_back(&svc);
}

void Broker::dispatch_marked() {
  for (Service* svc : marked_) {
    svc->marked = false;
    dispatch(*svc);
  }
  marked_.clear();
}

void Broker::send_to_worker(Worker& w, mdp::Command cmd) {
  part(workers_, w.id);
  part(workers_, {});
  part(workers_, mdp::kWorker);
  last_part(workers_, frame(cmd));
}

void Broker::reply_client(std::string_view client, std::string_view service, zmq::message_t body) {
  part(front_, client);
  part(front_, {});
  part(front_, mdp::kClient);
  part(front_, service);
  last_part(front_, std::move(body));
}

void Broker::part(zmq::socket_t& s, std::string_view bytes) {
  (void)s.send(zmq::const_buffer(bytes.data(), bytes.size()), zmq::send_flags::sndmore | zmq::send_flags::dontwait);
}

void Broker::last_part(zmq::socket_t& s, zmq::message_t m) {
  (void)s.send(m, zmq::send_flags::dontwait);
}

void Broker::worker_header(std::string_view id, mdp::Command cmd) {
  part(workers_, id);
  part(workers_, {});
  part(workers_, mdp::kWorker);
  const auto b = static_cast<char>(cmd);
  part(workers_, std::string_view(&b, 1));
}

void Broker::reply_error(const std::string& client, std::string_view service, Code code,
                         std::string_view message) {
  reply_client(client, service, frame(encode_error(code, message)));
}

void Broker::delete_worker(const std::string& id, bool send_disconnect) {
  auto it = worker_map_.find(id);
  if (it == worker_map_.end()) {
    if (send_disconnect) {
      Worker ghost;
      ghost.id = id;
      send_to_worker(ghost, mdp::Command::Disconnect);
    }
    return;
  }
  Worker& w = it->second;
  if (send_disconnect) send_to_worker(w, mdp::Command::Disconnect);
  auto sit = services_.find(w.service);
  if (sit != services_.end()) {
    auto& members = sit->second.members;
    members.erase(std::remove(members.begin(), members.end(), &w), members.end());
    sit->second.workers -= w.credit;
  }
  if (!w.in_flight.empty()) {
    stats_.unavailable += w.in_flight.size();
    if (sit != services_.end()) sit->second.unavailable += w.in_flight.size();
    spdlog::warn("worker for '{}' lost while holding {} request(s); answering UNAVAILABLE", w.service,
                 w.in_flight.size());
    for (const auto& [_, p] : w.in_flight)
      reply_client(p.client, w.service,
                   frame(encode_error(Code::Unavailable, "the worker handling this request stopped; safe to retry",
                                      rid_of(p.body, options_.max_body))));
  }
  worker_map_.erase(it);
}

bool Broker::purge(Clock::time_point now) {
  bool answered = false;
  for (auto& [name, svc] : services_) {
    while (!svc.queue.empty() && svc.queue.front().deadline <= now) {
      Pending& p = svc.queue.front();
      ++stats_.unavailable;
      ++svc.unavailable;
      reply_client(p.client, name,
                   frame(encode_error(Code::Unavailable,
                                      "no worker of '" + name + "' answered in time",
                                      rid_of(p.body, options_.max_body))));
      svc.queue.pop_front();
      answered = true;
    }
  }
  return answered;
}

void Broker::send_heartbeats(Clock::time_point now) {
  std::vector<std::string> expired;
  for (auto& [id, w] : worker_map_) {
    // Busy workers are heartbeated too: their runtime answers while the
    // handler works, so only a dead process goes silent.
    if (w.expiry <= now) expired.push_back(id);
    else send_to_worker(w, mdp::Command::Heartbeat);
  }
  for (const auto& id : expired) {
    spdlog::warn("worker expired (no heartbeat)");
    delete_worker(id, false);
  }
  next_heartbeat_ = now + options_.heartbeat;
}

}  // namespace primary
