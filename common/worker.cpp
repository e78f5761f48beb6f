#include "common/worker.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "common/config.hpp"
#include "common/log.hpp"
#include "common/mdp.hpp"
#include "common/process.hpp"

namespace primary {

using Clock = std::chrono::steady_clock;
using mdp::frame;
using mdp::view;

struct WorkerRuntime::Connection {
  size_t service = 0;       // index into services_
  std::string endpoint;
  std::unique_ptr<zmq::socket_t> socket;
  Clock::time_point broker_expiry;  // broker presumed dead after this
  Clock::time_point next_heartbeat;
  Clock::time_point reopen_at;      // while closed: when to retry
  std::chrono::milliseconds backoff{0};
  bool open = false;
};

WorkerRuntime::WorkerRuntime(zmq::context_t& ctx, WorkerOptions options)
    : ctx_(ctx), options_(std::move(options)) {}

WorkerRuntime::~WorkerRuntime() = default;

void WorkerRuntime::serve(const std::string& service, Handler handler, int slots) {
  serve_batch(
      service,
      [h = std::move(handler)](const std::vector<Request>& reqs) {
        std::vector<Reply> out;
        out.reserve(reqs.size());
        for (const auto& r : reqs) out.push_back(h(r));
        return out;
      },
      slots);
}

void WorkerRuntime::serve_batch(const std::string& service, BatchHandler handler, int slots) {
  services_.push_back({service, std::move(handler)});
  for (const auto& ep : options_.brokers) {
    for (int i = 0; i < std::max(1, slots); ++i) {
      auto c = std::make_unique<Connection>();
      c->service = services_.size() - 1;
      c->endpoint = ep;
      c->backoff = options_.reconnect_min;
      connections_.push_back(std::move(c));
    }
  }
}

void WorkerRuntime::every(std::chrono::milliseconds interval, std::function<void()> fn) {
  timers_.push_back({interval, Clock::now() + interval, std::move(fn)});
}

void WorkerRuntime::open(Connection& c) {
  c.socket = std::make_unique<zmq::socket_t>(ctx_, zmq::socket_type::dealer);
  c.socket->set(zmq::sockopt::linger, 0);
  c.socket->set(zmq::sockopt::maxmsgsize, static_cast<int64_t>(options_.limits.max_body * 2 + 4096));
  c.socket->connect(c.endpoint);
  mdp::Frames ready;
  ready.push_back(frame(""));
  ready.push_back(frame(mdp::kWorker));
  ready.push_back(frame(mdp::Command::Ready));
  ready.push_back(frame(services_[c.service].name));
  mdp::send_frames(*c.socket, ready, true);
  const auto now = Clock::now();
  c.broker_expiry = now + options_.heartbeat * options_.liveness;
  c.next_heartbeat = now + options_.heartbeat;
  c.open = true;
}

namespace {
void send_command(zmq::socket_t& s, mdp::Command cmd) {
  mdp::Frames out;
  out.push_back(frame(""));
  out.push_back(frame(mdp::kWorker));
  out.push_back(frame(cmd));
  mdp::send_frames(s, out, true);
}
}  // namespace

void WorkerRuntime::run(const std::atomic<bool>& stop) {
  for (auto& c : connections_) open(*c);
  std::vector<zmq_pollitem_t> items;
  std::vector<Connection*> polled;
  // Requests gathered in one pass, per service: (connection, frames).
  std::vector<std::vector<std::pair<Connection*, std::vector<zmq::message_t>>>> batches(services_.size());

  while (!stop.load()) {
    auto now = Clock::now();
    auto wake = now + options_.heartbeat;
    items.clear();
    polled.clear();
    for (auto& c : connections_) {
      if (c->open) {
        items.push_back({c->socket->handle(), 0, ZMQ_POLLIN, 0});
        polled.push_back(c.get());
        wake = std::min(wake, c->next_heartbeat);
      } else {
        wake = std::min(wake, c->reopen_at);
      }
    }
    for (const auto& t : timers_) wake = std::min(wake, t.next);
    long timeout = std::max<long>(
        0, std::chrono::duration_cast<std::chrono::milliseconds>(wake - now).count() + 1);
    int rc = zmq_poll(items.data(), static_cast<int>(items.size()), timeout);
    if (rc < 0) {
      if (zmq_errno() == EINTR) continue;
      spdlog::critical("poll failed: {}", zmq_strerror(zmq_errno()));
      break;
    }
    now = Clock::now();
    for (size_t i = 0; i < items.size(); ++i) {
      if (!(items[i].revents & ZMQ_POLLIN)) continue;
      Connection& c = *polled[i];
      mdp::Frames f;
      while (c.open && mdp::recv_frames(*c.socket, f, zmq::recv_flags::dontwait)) {
        c.broker_expiry = now + options_.heartbeat * options_.liveness;
        c.backoff = options_.reconnect_min;
        if (f.size() < 3 || f[0].size() != 0 || view(f[1]) != mdp::kWorker || f[2].size() != 1) {
          spdlog::warn("malformed message from broker {}; ignored", c.endpoint);
          continue;
        }
        const auto cmd = static_cast<mdp::Command>(*static_cast<const uint8_t*>(f[2].data()));
        if (cmd == mdp::Command::Request) {
          batches[c.service].emplace_back(&c, std::move(f));
        } else if (cmd == mdp::Command::Disconnect) {
          spdlog::debug("broker {} asked '{}' to reconnect", c.endpoint, services_[c.service].name);
          open(c);  // a fresh connection and READY
        } else if (cmd != mdp::Command::Heartbeat) {
          spdlog::warn("unexpected command from broker {}; ignored", c.endpoint);
        }
      }
    }
    for (size_t s = 0; s < batches.size(); ++s)
      if (!batches[s].empty()) {
        handle_batch(s, batches[s]);
        batches[s].clear();
      }

    now = Clock::now();
    for (auto& c : connections_) {
      if (!c->open) {
        if (now >= c->reopen_at) open(*c);
        continue;
      }
      if (now >= c->broker_expiry) {
        spdlog::warn("broker {} silent; reconnecting in {} ms", c->endpoint, c->backoff.count());
        c->socket.reset();
        c->open = false;
        c->reopen_at = now + c->backoff;
        c->backoff = std::min(c->backoff * 2, options_.reconnect_max);
        continue;
      }
      if (now >= c->next_heartbeat) {
        send_command(*c->socket, mdp::Command::Heartbeat);
        c->next_heartbeat = now + options_.heartbeat;
      }
    }
    for (auto& t : timers_) {
      if (now >= t.next) {
        try {
          t.fn();
        } catch (const std::exception& e) {
          spdlog::error("timer task failed: {}", e.what());
        }
        t.next = Clock::now() + t.interval;
      }
    }
  }
  for (auto& c : connections_)
    if (c->open) send_command(*c->socket, mdp::Command::Disconnect);
}

void WorkerRuntime::handle_batch(
    size_t service_index, std::vector<std::pair<Connection*, std::vector<zmq::message_t>>>& batch) {
  const ServiceEntry& svc = services_[service_index];
  // Frames: "", MDPW01, REQUEST, envelope..., "", body
  std::vector<Request> requests;
  std::vector<size_t> request_slot;  // batch index of each valid request
  std::vector<std::string> replies(batch.size());
  std::vector<Value> rids(batch.size());
  std::vector<Peer> peers(batch.size());
  for (size_t i = 0; i < batch.size(); ++i) {
    auto& f = batch[i].second;
    if (f.size() < 6 || f[f.size() - 2].size() != 0) {
      replies[i] = encode_error(Code::BadRequest, "malformed request envelope");
      continue;
    }
    if (f.size() >= 7) peers[i] = decode_peer(view(f[4]));
    auto req = decode_request(svc.name, view(f.back()), options_.limits, &rids[i]);
    if (!req) {
      replies[i] = encode_reply(Reply::failure(req.error()), rids[i]);
      continue;
    }
    req->peer = peers[i];
    requests.push_back(std::move(*req));
    request_slot.push_back(i);
  }
  if (!requests.empty()) {
    std::vector<Reply> answers;
    try {
      answers = svc.handler(requests);
    } catch (const std::exception& e) {
      spdlog::error("handler of '{}' threw: {}", svc.name, e.what());
    }
    for (size_t k = 0; k < requests.size(); ++k) {
      const size_t i = request_slot[k];
      if (k < answers.size())
        replies[i] = encode_reply(answers[k], rids[i]);
      else
        replies[i] = encode_reply(Reply::failure(Code::Internal, "internal error; see server log"), rids[i]);
    }
  }
  for (size_t i = 0; i < batch.size(); ++i) {
    auto& [conn, f] = batch[i];
    if (!conn->open) continue;
    mdp::Frames out;
    out.reserve(f.size());
    out.push_back(frame(""));
    out.push_back(frame(mdp::kWorker));
    out.push_back(frame(mdp::Command::Reply));
    // Envelope frames (client address and metadata) go back unchanged.
    for (size_t k = 3; k + 2 < f.size(); ++k) out.push_back(std::move(f[k]));
    out.push_back(frame(""));
    out.push_back(frame(replies[i]));
    mdp::send_frames(*conn->socket, out, true);
  }
}

}  // namespace primary

namespace primary {

void add_worker_settings(Config& cfg) {
  cfg.add_string("broker", "tcp://127.0.0.1:16773",
                 "Broker workers endpoint(s), comma-separated; one connection set per broker");
  cfg.add_string("event-sink", "tcp://127.0.0.1:16774", "Broker event sink endpoint(s)");
  cfg.add_int("heartbeat-ms", 2500, 10, 600000, "Heartbeat interval");
  cfg.add_int("heartbeat-liveness", 3, 1, 100, "Missed heartbeats before the broker is presumed dead");
  cfg.add_int("max-body", 4 << 20, 1024, 256 << 20, "Largest request body accepted, bytes");
  add_log_setting(cfg);
  cfg.add_config_file();
}

WorkerOptions worker_options(const Config& cfg, const std::string& log_name) {
  if (!init_logging(log_name, cfg.str("log-level")))
    cfg.fail("bad value for log-level: '" + cfg.str("log-level") + "'");
  WorkerOptions o;
  o.brokers = split_list(cfg.str("broker"));
  if (o.brokers.empty()) cfg.fail("--broker names no endpoint");
  o.heartbeat = std::chrono::milliseconds(cfg.integer("heartbeat-ms"));
  o.liveness = static_cast<int>(cfg.integer("heartbeat-liveness"));
  o.limits.max_body = static_cast<size_t>(cfg.integer("max-body"));
  return o;
}

}  // namespace primary
