#include "tools/bench/load.hpp"

#include <poll.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <future>
#include <stdexcept>
#include <thread>
#include <vector>

#include "common/codec.hpp"
#include "common/mdp.hpp"

namespace primary::bench {

namespace {

using Clock = std::chrono::steady_clock;

struct Shared {
  const LoadOptions& o;
  const BodyMaker& make;
  const ReplyCheck& check;
  std::atomic<int64_t> next_seq{0};
  Clock::time_point t0{}, measure_from{}, measure_to{};
};

struct Conn {
  zmq::socket_t sock;
  std::vector<int64_t> seq;  // per slot; -1 when free
  std::vector<Clock::time_point> sent_at;
  int outstanding = 0;
};

struct ThreadResult {
  int64_t sent = 0, replies = 0, counted = 0, errors = 0, lost = 0;
  std::vector<float> latency_ms;
  std::string first_error;
  Clock::time_point last_reply{};
};

class PollLoop {
 public:
  PollLoop(zmq::context_t& ctx, Shared& shared, int clients) : sh_(shared) {
    const int hwm = std::max(1000, 2 * sh_.o.window + 100);
    for (int i = 0; i < clients; ++i) {
      Conn c{zmq::socket_t(ctx, zmq::socket_type::dealer), {}, {}, 0};
      c.sock.set(zmq::sockopt::linger, 0);
      c.sock.set(zmq::sockopt::sndhwm, hwm);
      c.sock.set(zmq::sockopt::rcvhwm, hwm);
      c.sock.connect(sh_.o.endpoint);
      c.seq.assign(static_cast<size_t>(sh_.o.window), -1);
      c.sent_at.resize(static_cast<size_t>(sh_.o.window));
      conns_.push_back(std::move(c));
    }
  }

  ThreadResult run() {
    const bool timed = sh_.o.duration.count() > 0;
    if (sh_.o.decode) r_.latency_ms.reserve(1 << 20);
    for (auto& c : conns_)
      for (int s = 0; s < sh_.o.window && sending_; ++s) send(c, s);
    // The sockets' ZMQ_FD descriptors are polled directly, as the broker and
    // the worker runtime do (zmq_poll costs a getpid and a mailbox poll per
    // socket, twice a call): a connection is read until recv finds it dry,
    // after its last send, and only then left to its descriptor.
    std::vector<pollfd> fds;
    for (auto& c : conns_) fds.push_back({c.sock.get(zmq::sockopt::fd), POLLIN, 0});
    std::vector<char> ready(conns_.size(), 1);
    auto last_progress = Clock::now();
    mdp::Frames frames;
    for (;;) {
      auto now = Clock::now();
      if (timed && sending_ && now >= sh_.measure_to) sending_ = false;
      const int outstanding = total_outstanding();
      if (!sending_ && outstanding == 0) break;
      if (now - last_progress >= sh_.o.drain) {
        r_.lost += outstanding;
        if (r_.first_error.empty())
          r_.first_error = std::to_string(outstanding) + " requests got no reply within " +
                           std::to_string(sh_.o.drain.count()) + " ms";
        break;
      }
      const bool busy = std::find(ready.begin(), ready.end(), 1) != ready.end();
      if (::poll(fds.data(), fds.size(), busy ? 0 : 50) < 0 && errno != EINTR)
        throw std::runtime_error(std::string("poll: ") + std::strerror(errno));
      for (size_t i = 0; i < fds.size(); ++i) {
        if (fds[i].revents) ready[i] = 1;
        if (!ready[i]) continue;
        int n = 0;
        for (; n < 512 && mdp::recv_frames(conns_[i].sock, frames, zmq::recv_flags::dontwait); ++n) {
          on_reply(conns_[i], frames);  // sends the slot's next request
          last_progress = Clock::now();
        }
        ready[i] = n == 512;  // else the last recv found it dry after the last send
      }
    }
    return std::move(r_);
  }

 private:
  int total_outstanding() const {
    int n = 0;
    for (const auto& c : conns_) n += c.outstanding;
    return n;
  }

  void send(Conn& c, int slot) {
    const int64_t seq = sh_.next_seq.fetch_add(1, std::memory_order_relaxed);
    if (sh_.o.total > 0 && seq >= sh_.o.total) {
      sending_ = false;
      return;
    }
    const std::string body = sh_.make(seq, slot);
    c.sock.send(zmq::message_t(), zmq::send_flags::sndmore);
    c.sock.send(zmq::buffer(mdp::kClient), zmq::send_flags::sndmore);
    c.sock.send(zmq::buffer(sh_.o.service), zmq::send_flags::sndmore);
    c.sock.send(zmq::buffer(body), zmq::send_flags::none);
    c.seq[static_cast<size_t>(slot)] = seq;
    c.sent_at[static_cast<size_t>(slot)] = Clock::now();
    ++c.outstanding;
    ++r_.sent;
  }

  void error(const std::string& why) {
    ++r_.errors;
    if (r_.first_error.empty()) r_.first_error = why;
  }

  void on_reply(Conn& c, mdp::Frames& f) {
    const auto now = Clock::now();
    if (f.size() != 4 || f[0].size() != 0 || mdp::view(f[1]) != mdp::kClient ||
        mdp::view(f[2]) != sh_.o.service) {
      error("malformed reply envelope (" + std::to_string(f.size()) + " frames)");
      if (!sh_.o.decode && c.outstanding > 0) finish(c, 0, now, false);
      return;
    }
    const std::string_view body = mdp::view(f[3]);
    if (!sh_.o.decode) {
      // One reply in 256 is decoded and checked, the rest only counted.
      bool good = true;
      if ((r_.replies & 255) == 0) {
        auto v = unpack_map(body);
        std::string why;
        good = v && sh_.check(-1, *v, why);
        if (!good) error(!v ? "reply body: " + v.error().message : why.empty() ? to_json(*v) : why);
      }
      if (c.outstanding > 0) finish(c, 0, now, good);
      return;
    }
    auto v = unpack_map(body);
    if (!v) return error("reply body: " + v.error().message);
    const Value* rid = v->find("rid");
    if (!rid || !rid->is_int() || rid->as_int() < 0 || rid->as_int() >= sh_.o.window ||
        c.seq[static_cast<size_t>(rid->as_int())] < 0)
      return error("reply with unknown rid: " + to_json(*v));
    const int slot = static_cast<int>(rid->as_int());
    std::string why;
    const bool good = sh_.check(c.seq[static_cast<size_t>(slot)], *v, why);
    if (!good) error(why.empty() ? to_json(*v) : why);
    const float ms =
        std::chrono::duration<float, std::milli>(now - c.sent_at[static_cast<size_t>(slot)]).count();
    if (in_window(now)) r_.latency_ms.push_back(ms);
    finish(c, slot, now, good);
  }

  bool in_window(Clock::time_point t) const {
    return sh_.o.duration.count() == 0 || (t >= sh_.measure_from && t < sh_.measure_to);
  }

  void finish(Conn& c, int slot, Clock::time_point now, bool good) {
    c.seq[static_cast<size_t>(slot)] = -1;
    --c.outstanding;
    ++r_.replies;
    r_.last_reply = now;
    if (good && in_window(now)) ++r_.counted;
    if (sending_) send(c, slot);
  }

  Shared& sh_;
  std::vector<Conn> conns_;
  ThreadResult r_;
  bool sending_ = true;
};

float percentile(std::vector<float>& v, double q) {
  if (v.empty()) return 0;
  auto k = static_cast<size_t>(q * static_cast<double>(v.size() - 1));
  std::nth_element(v.begin(), v.begin() + static_cast<long>(k), v.end());
  return v[k];
}

}  // namespace

double median(std::vector<double> v) {
  if (v.empty()) return -1;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

LoadResult run_load(zmq::context_t& ctx, const LoadOptions& o, const BodyMaker& make,
                    const ReplyCheck& check) {
  Shared sh{o, make, check};
  const int threads = std::clamp(o.threads, 1, std::max(1, o.clients));
  std::vector<std::unique_ptr<PollLoop>> loops;
  for (int t = 0; t < threads; ++t) {
    const int n = o.clients / threads + (t < o.clients % threads ? 1 : 0);
    loops.push_back(std::make_unique<PollLoop>(ctx, sh, n));
  }
  sh.t0 = Clock::now();
  sh.measure_from = sh.t0 + o.warmup;
  sh.measure_to = sh.measure_from + o.duration;
  std::vector<std::future<ThreadResult>> futures;
  for (auto& l : loops) futures.push_back(std::async(std::launch::async, [&l] { return l->run(); }));

  LoadResult r;
  std::vector<float> lat;
  Clock::time_point last{};
  for (auto& f : futures) {
    ThreadResult t = f.get();
    r.sent += t.sent;
    r.replies += t.replies;
    r.counted += t.counted;
    r.errors += t.errors;
    r.lost += t.lost;
    if (r.first_error.empty()) r.first_error = t.first_error;
    lat.insert(lat.end(), t.latency_ms.begin(), t.latency_ms.end());
    last = std::max(last, t.last_reply);
  }
  if (o.duration.count() > 0)
    r.seconds = std::chrono::duration<double>(o.duration).count();
  else
    r.seconds = last > sh.t0 ? std::chrono::duration<double>(last - sh.t0).count() : 0;
  r.rps = r.seconds > 0 ? static_cast<double>(r.counted) / r.seconds : 0;
  if (!lat.empty()) {
    r.max_ms = *std::max_element(lat.begin(), lat.end());
    r.p99_ms = percentile(lat, 0.99);
    r.p50_ms = percentile(lat, 0.50);
  }
  return r;
}

// ---------------------------------------------------------------- DirectEcho

struct DirectEcho::State {
  zmq::context_t ctx{1};
  std::atomic<bool> stop{false};
  std::thread thread;
};

DirectEcho::DirectEcho() : state_(std::make_unique<State>()) {
  std::promise<std::string> bound;
  auto endpoint = bound.get_future();
  state_->thread = std::thread([s = state_.get(), &bound] {
    zmq::socket_t router(s->ctx, zmq::socket_type::router);
    router.set(zmq::sockopt::linger, 0);
    router.set(zmq::sockopt::sndhwm, 100000);
    router.set(zmq::sockopt::rcvhwm, 100000);
    router.bind("tcp://127.0.0.1:*");
    bound.set_value(router.get(zmq::sockopt::last_endpoint));
    zmq::pollitem_t item{router.handle(), 0, ZMQ_POLLIN, 0};
    mdp::Frames frames;
    while (!s->stop.load(std::memory_order_relaxed)) {
      zmq::poll(&item, 1, std::chrono::milliseconds(50));
      for (int n = 0; n < 1000 && mdp::recv_frames(router, frames, zmq::recv_flags::dontwait); ++n)
        mdp::send_frames(router, frames, true);
    }
  });
  endpoint_ = endpoint.get();
}

DirectEcho::~DirectEcho() {
  state_->stop = true;
  state_->thread.join();
}

}  // namespace primary::bench
