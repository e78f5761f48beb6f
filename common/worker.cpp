#include "common/worker.hpp"

#include <spdlog/spdlog.h>

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>

#include "common/config.hpp"
#include "common/events.hpp"
#include "common/log.hpp"
#include "common/mdp.hpp"
#include "common/process.hpp"

namespace primary {

using Clock = std::chrono::steady_clock;
using mdp::frame;
using mdp::view;

struct WorkerRuntime::Connection {
  size_t service = 0;       // index into services_
  int credit = 1;           // requests the broker may hand it at once
  std::string endpoint;
  std::unique_ptr<zmq::socket_t> socket;
  uint64_t generation = 0;          // bumped at every open(): stale replies are dropped
  Clock::time_point broker_expiry;  // broker presumed dead after this
  Clock::time_point next_heartbeat;
  Clock::time_point reopen_at;      // while closed: when to retry
  std::chrono::milliseconds backoff{0};
  bool open = false;
  int fd = -1;            // the socket's ZMQ_FD
  bool readable = false;  // may hold messages: not read dry since its last send
  bool batch = false;     // READY asked for batches
};

// One batch of requests for one service, and then its replies.
struct WorkerRuntime::Job {
  size_t service = 0;
  struct Item {
    Connection* conn;
    uint64_t generation;
    mdp::Frames envelope;  // returned unchanged: client, meta, tag from this broker
    zmq::message_t body;
    bool malformed = false;  // no "" frame before the body
    std::string reply;       // encoded reply body
  };
  std::vector<Item> items;
};

// The executor thread: runs jobs in order and the timers between them, and
// wakes the serving thread through an eventfd when a job is done.
class WorkerRuntime::Executor {
 public:
  Executor(const WorkerRuntime& rt, std::vector<Timer>& timers)
      : rt_(rt), timers_(timers), wake_fd_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
    thread_ = std::thread([this] { loop(); });
  }
  ~Executor() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    thread_.join();
    ::close(wake_fd_);
  }
  int wake_fd() const { return wake_fd_; }
  void post(Job job) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      jobs_.push_back(std::move(job));
    }
    cv_.notify_one();
  }
  std::vector<Job> take_done() {
    uint64_t n;
    while (::read(wake_fd_, &n, sizeof n) > 0) {
    }
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<Job> out(std::make_move_iterator(done_.begin()), std::make_move_iterator(done_.end()));
    done_.clear();
    return out;
  }

 private:
  void loop() {
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      auto due = Clock::now() + std::chrono::hours(1);
      for (const auto& t : timers_) due = std::min(due, t.next);
      cv_.wait_until(lock, due, [&] { return stopping_ || !jobs_.empty(); });
      if (!jobs_.empty()) {
        Job job = std::move(jobs_.front());
        jobs_.pop_front();
        lock.unlock();
        rt_.process(job);
        lock.lock();
        done_.push_back(std::move(job));
        const uint64_t one = 1;
        (void)!::write(wake_fd_, &one, sizeof one);
        continue;
      }
      if (stopping_) return;
      lock.unlock();
      const auto now = Clock::now();
      for (auto& t : timers_) {
        if (now < t.next) continue;
        try {
          t.fn();
        } catch (const std::exception& e) {
          spdlog::error("timer task failed: {}", e.what());
        }
        t.next = Clock::now() + t.interval;
      }
      lock.lock();
    }
  }

  const WorkerRuntime& rt_;
  std::vector<Timer>& timers_;
  int wake_fd_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Job> jobs_, done_;
  bool stopping_ = false;
  std::thread thread_;
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
  services_.push_back({service, std::move(handler), metrics_.add_service(service)});
  for (const auto& ep : options_.brokers) {
    auto c = std::make_unique<Connection>();
    c->service = services_.size() - 1;
    c->credit = std::clamp(slots, 1, 1024);
    c->endpoint = ep;
    c->backoff = options_.reconnect_min;
    connections_.push_back(std::move(c));
  }
}

void WorkerRuntime::every(std::chrono::milliseconds interval, std::function<void()> fn) {
  timers_.push_back({interval, Clock::now() + interval, std::move(fn)});
}

void WorkerRuntime::export_metrics(Redis& redis) {
  metrics_redis_ = &redis;
  every(options_.metrics_interval, [this] { flush_metrics(); });
}

void WorkerRuntime::flush_metrics() {
  if (!metrics_redis_) return;
  if (auto flushed = metrics_.flush(*metrics_redis_); !flushed) {
    if (!metrics_failing_)
      spdlog::warn("op counters not stored yet (kept for the next try): {}", flushed.error().message);
    metrics_failing_ = true;
  } else if (metrics_failing_) {
    spdlog::info("op counters stored again");
    metrics_failing_ = false;
  }
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
  // Always sent, "1" included: the credit frame is what opts the connection
  // into the extended REQUEST, whose meta frame carries the peer's role and
  // address (a plain RFC 7 READY gets neither).
  ready.push_back(frame(std::to_string(c.credit)));
  c.batch = options_.batch;
  if (c.batch) ready.push_back(frame(mdp::kBatch));
  mdp::send_frames(*c.socket, ready, true);
  const auto now = Clock::now();
  c.broker_expiry = now + options_.heartbeat * options_.liveness;
  c.next_heartbeat = now + options_.heartbeat;
  ++c.generation;
  c.open = true;
  c.fd = c.socket->get(zmq::sockopt::fd);
  c.readable = true;
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
  auto executor_owner = std::make_unique<Executor>(*this, timers_);
  Executor& executor = *executor_owner;
  // Like the broker, the loop polls the sockets' ZMQ_FD descriptors itself
  // (zmq_poll costs four system calls per socket per call): a connection is
  // read until it runs dry and read again after anything was sent on it.
  std::vector<pollfd> items;
  std::vector<Connection*> polled;
  // Requests gathered while the executor is busy, one job per service.
  std::vector<Job> pending(services_.size());
  for (size_t s = 0; s < pending.size(); ++s) pending[s].service = s;
  size_t jobs_out = 0;  // posted and not yet answered

  auto flush_pending = [&] {
    if (jobs_out > 0) return;  // let requests pile up into the next batch
    for (auto& job : pending) {
      if (job.items.empty()) continue;
      Job out;
      out.service = job.service;
      out.items = std::move(job.items);
      job.items.clear();
      executor.post(std::move(out));
      ++jobs_out;
    }
  };

  while (!stop.load()) {
    auto now = Clock::now();
    auto wake = now + options_.heartbeat;
    items.clear();
    polled.clear();
    items.push_back({executor.wake_fd(), POLLIN, 0});
    polled.push_back(nullptr);
    bool busy = false;
    for (auto& c : connections_) {
      if (c->open) {
        items.push_back({c->fd, POLLIN, 0});
        polled.push_back(c.get());
        wake = std::min(wake, c->next_heartbeat);
        busy = busy || c->readable;
      } else {
        wake = std::min(wake, c->reopen_at);
      }
    }
    const long timeout =
        busy ? 0
             : std::max<long>(0, std::chrono::duration_cast<std::chrono::milliseconds>(wake - now).count() + 1);
    if (::poll(items.data(), items.size(), static_cast<int>(timeout)) < 0) {
      if (errno == EINTR) continue;
      spdlog::critical("poll failed: {}", std::strerror(errno));
      break;
    }
    now = Clock::now();
    if (items[0].revents & POLLIN) {
      for (auto& job : executor.take_done()) {
        send_replies(job);
        --jobs_out;
      }
    }
    for (size_t i = 1; i < items.size(); ++i) {
      Connection& c = *polled[i];
      if (!items[i].revents && !c.readable) continue;
      mdp::Frames f;
      std::vector<mdp::BatchEntry> entries;
      while (c.open && mdp::recv_frames(*c.socket, f, zmq::recv_flags::dontwait)) {
        c.broker_expiry = now + options_.heartbeat * options_.liveness;
        c.backoff = options_.reconnect_min;
        if (f.size() < 3 || f[0].size() != 0 || view(f[1]) != mdp::kWorker || f[2].size() != 1) {
          spdlog::warn("malformed message from broker {}; ignored", c.endpoint);
          continue;
        }
        const auto cmd = static_cast<mdp::Command>(*static_cast<const uint8_t*>(f[2].data()));
        if (cmd == mdp::Command::Request) {
          // "", MDPW01, REQUEST, envelope..., "", body
          Job::Item item{&c, c.generation, {}, {}, f.size() < 6 || f[f.size() - 2].size() != 0, {}};
          for (size_t k = 3; k + 2 < f.size(); ++k) item.envelope.push_back(std::move(f[k]));
          if (f.size() >= 4) item.body = std::move(f.back());
          pending[c.service].items.push_back(std::move(item));
        } else if (cmd == mdp::Command::Requests) {
          if (!c.batch || f.size() != 4 || !mdp::parse_batch(view(f[3]), true, entries)) {
            // Requests the broker holds for this connection would never be
            // answered: start afresh, and the broker answers them when
            // this connection expires.
            spdlog::warn("malformed REQUESTS from broker {}; reconnecting", c.endpoint);
            open(c);
            continue;
          }
          for (const auto& e : entries) {
            Job::Item item{&c, c.generation, {}, frame(e.body), false, {}};
            item.envelope.reserve(3);
            item.envelope.push_back(frame(e.client));
            item.envelope.push_back(frame(e.meta));
            item.envelope.push_back(frame(e.tag));
            pending[c.service].items.push_back(std::move(item));
          }
        } else if (cmd == mdp::Command::Disconnect) {
          spdlog::debug("broker {} asked '{}' to reconnect", c.endpoint, services_[c.service].name);
          open(c);  // a fresh connection and READY
        } else if (cmd != mdp::Command::Heartbeat) {
          spdlog::warn("unexpected command from broker {}; ignored", c.endpoint);
        }
      }
      // Read dry after every send on it (a READY after a reopen above included).
      c.readable = false;
    }
    flush_pending();

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
        c->readable = true;
        c->next_heartbeat = now + options_.heartbeat;
      }
    }
  }
  // Finish what the executor holds, answer it, then say goodbye.
  while (jobs_out > 0) {
    zmq_pollitem_t item{nullptr, executor.wake_fd(), ZMQ_POLLIN, 0};
    if (zmq_poll(&item, 1, 5000) <= 0) break;
    for (auto& job : executor.take_done()) {
      send_replies(job);
      --jobs_out;
    }
  }
  for (auto& c : connections_)
    if (c->open) send_command(*c->socket, mdp::Command::Disconnect);
  executor_owner.reset();  // joins: no handler runs any more
  flush_metrics();
}

void WorkerRuntime::process(Job& job) const {
  const ServiceEntry& svc = services_[job.service];
  const auto started = Clock::now();
  std::vector<Request> requests;
  std::vector<size_t> request_slot;  // item index of each valid request
  std::vector<Value> rids(job.items.size());
  // Refused before the handler: (op if known, code), counted at the end.
  std::vector<std::pair<const OpSpec*, Code>> refused;
  for (size_t i = 0; i < job.items.size(); ++i) {
    const auto& item = job.items[i];
    if (item.malformed) {
      job.items[i].reply = encode_error(Code::BadRequest, "malformed request envelope");
      refused.emplace_back(nullptr, Code::BadRequest);
      continue;
    }
    const OpSpec* spec = nullptr;
    auto req = decode_request(svc.name, view(item.body), options_.limits, &rids[i], &spec);
    if (!req) {
      job.items[i].reply = encode_reply(Reply::failure(req.error()), rids[i]);
      refused.emplace_back(spec, req.error().code);
      continue;
    }
    if (item.envelope.size() >= 2) req->peer = decode_peer(view(item.envelope[1]));
    requests.push_back(std::move(*req));
    request_slot.push_back(i);
  }
  std::vector<Reply> answers;
  if (!requests.empty()) {
    try {
      answers = svc.handler(requests);
    } catch (const std::exception& e) {
      spdlog::error("handler of '{}' threw: {}", svc.name, e.what());
    }
  }
  // Every request of the batch waited for all of it.
  const double seconds = std::chrono::duration<double>(Clock::now() - started).count();
  for (const auto& [spec, code] : refused) metrics_.record(svc.metrics, spec, code, seconds);
  for (size_t k = 0; k < requests.size(); ++k) {
    const size_t i = request_slot[k];
    if (k < answers.size()) {
      job.items[i].reply = encode_reply(answers[k], rids[i]);
      metrics_.record(svc.metrics, requests[k].spec, answers[k].ok ? std::nullopt : std::optional(answers[k].code),
                      seconds);
    } else {
      job.items[i].reply = encode_reply(Reply::failure(Code::Internal, "internal error; see server log"), rids[i]);
      metrics_.record(svc.metrics, requests[k].spec, Code::Internal, seconds);
    }
  }
}

void WorkerRuntime::send_replies(Job& job) {
  // REPLIES under construction, per connection (a job's requests may come
  // from several brokers).
  std::vector<std::pair<Connection*, std::string>> boxes;
  const size_t cap = std::min(mdp::kBatchBytes, options_.limits.max_body);
  auto flush = [](Connection& c, std::string& box) {
    mdp::Frames out;
    out.reserve(4);
    out.push_back(frame(""));
    out.push_back(frame(mdp::kWorker));
    out.push_back(frame(mdp::Command::Replies));
    out.push_back(frame(box));
    mdp::send_frames(*c.socket, out, true);
    c.readable = true;
    box.clear();
  };
  for (auto& item : job.items) {
    // A connection reopened meanwhile: the broker has answered that request.
    if (!item.conn->open || item.conn->generation != item.generation) continue;
    auto& env = item.envelope;
    if (item.conn->batch && env.size() == 3 && item.reply.size() <= cap) {
      auto box = std::find_if(boxes.begin(), boxes.end(), [&](const auto& b) { return b.first == item.conn; });
      if (box == boxes.end()) box = boxes.insert(boxes.end(), {item.conn, {}});
      const mdp::BatchEntry e{view(env[0]), {}, view(env[2]), item.reply};
      if (!box->second.empty() && box->second.size() + mdp::entry_size(e, false) > cap) flush(*item.conn, box->second);
      mdp::append_entry(box->second, e, false);
      continue;
    }
    mdp::Frames out;
    out.reserve(env.size() + 5);
    out.push_back(frame(""));
    out.push_back(frame(mdp::kWorker));
    out.push_back(frame(mdp::Command::Reply));
    // Envelope frames (client address and metadata) go back unchanged.
    for (auto& e : env) out.push_back(std::move(e));
    out.push_back(frame(""));
    out.push_back(frame(item.reply));
    mdp::send_frames(*item.conn->socket, out, true);
    item.conn->readable = true;
  }
  for (auto& [conn, box] : boxes)
    if (!box.empty()) flush(*conn, box);
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
  cfg.add_int("metrics-interval-ms", 5000, 100, 3600000,
              "How often the op counters (requests, errors, latency) are added to Redis");
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
  o.metrics_interval = std::chrono::milliseconds(cfg.integer("metrics-interval-ms"));
  return o;
}

void add_redis_setting(Config& cfg) {
  cfg.add_string("redis", "", "Redis URL (redis://..., unix://... or sentinel://...)");
}

RedisUrl redis_setting(const Config& cfg) {
  if (cfg.str("redis").empty()) cfg.fail("no Redis: give --redis URL or PRIMARY_REDIS");
  auto url = parse_redis_url(cfg.str("redis"));
  if (!url) cfg.fail("bad --redis: " + url.error().message);
  return *url;
}

void add_fleet_timing_settings(Config& cfg) {
  cfg.add_int("check-interval-s", 14400, 1, 7 * 86400, "Interval for verified Clients");
  cfg.add_int("grace-s", 3600, 0, 7 * 86400, "Grace beyond the check interval before a Client is lost");
}

void add_stale_settings(Config& cfg) {
  cfg.add_int("stale-unseen-s", 30 * 86400, 1, 3650LL * 86400,
              "A computer never seen this long after its reservation is flagged stale");
  cfg.add_int("stale-lost-s", 90 * 86400, 1, 3650LL * 86400, "A lost computer silent this long is flagged stale");
  cfg.add_int("stale-recount-s", 60, 1, 86400,
              "Seconds from one complete recount of the stale never-seen computers to the next (admin.status)");
}

void add_event_log_setting(Config& cfg) {
  cfg.add_int("event-log-cap", kEventLogCap, 1000, 1000000000, "Activity log entries kept");
}

}  // namespace primary
