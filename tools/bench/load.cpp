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
#include "common/schema.hpp"

namespace primary::bench {

namespace {

using Clock = std::chrono::steady_clock;

// A MessagePack reader over a byte range: just enough to walk a map's
// top-level entries and step over any value.
class Scanner {
 public:
  explicit Scanner(std::string_view in) : in_(in) {}
  bool done() const { return in_.empty(); }

  // The next byte, which says what the value is; false at the end.
  bool peek(uint8_t& tag) const {
    if (in_.empty()) return false;
    tag = static_cast<uint8_t>(in_[0]);
    return true;
  }
  // A big-endian unsigned of `n` bytes, after the tag byte.
  bool number(size_t n, uint64_t& v) {
    if (in_.size() < 1 + n) return false;
    v = 0;
    for (size_t i = 1; i <= n; ++i) v = (v << 8) | static_cast<uint8_t>(in_[i]);
    in_.remove_prefix(1 + n);
    return true;
  }
  bool skip_bytes(uint64_t n) {
    if (in_.size() < n) return false;
    in_.remove_prefix(static_cast<size_t>(n));
    return true;
  }
  // A map header: its entry count.
  bool map(uint64_t& n) {
    uint8_t t;
    if (!peek(t)) return false;
    if ((t & 0xf0) == 0x80) return n = t & 0x0f, skip_bytes(1);
    if (t == 0xde) return number(2, n);
    if (t == 0xdf) return number(4, n);
    return false;
  }
  bool str(std::string_view& out) {
    uint8_t t;
    uint64_t n = 0;
    if (!peek(t)) return false;
    if ((t & 0xe0) == 0xa0) {
      n = t & 0x1f;
      in_.remove_prefix(1);
    } else if (t >= 0xd9 && t <= 0xdb) {
      if (!number(size_t{1} << (t - 0xd9), n)) return false;
    } else {
      return false;
    }
    if (in_.size() < n) return false;
    out = in_.substr(0, static_cast<size_t>(n));
    in_.remove_prefix(static_cast<size_t>(n));
    return true;
  }
  bool integer(int64_t& out) {
    uint8_t t;
    uint64_t v = 0;
    if (!peek(t)) return false;
    if (t <= 0x7f) return out = t, skip_bytes(1);
    if (t >= 0xe0) return out = static_cast<int8_t>(t), skip_bytes(1);
    if (t >= 0xcc && t <= 0xcf) {  // uint 8..64
      if (!number(size_t{1} << (t - 0xcc), v) || v > static_cast<uint64_t>(INT64_MAX)) return false;
      return out = static_cast<int64_t>(v), true;
    }
    if (t >= 0xd0 && t <= 0xd3) {  // int 8..64, sign-extended
      const size_t n = size_t{1} << (t - 0xd0);
      if (!number(n, v)) return false;
      const int shift = static_cast<int>(64 - 8 * n);
      return out = static_cast<int64_t>(v << shift) >> shift, true;
    }
    return false;
  }
  // Steps over one value of any kind.
  bool skip(int depth = 0) {
    uint8_t t;
    uint64_t n = 0;
    if (depth > 32 || !peek(t)) return false;
    if (t <= 0x7f || t >= 0xe0 || t == 0xc0 || t == 0xc2 || t == 0xc3) return skip_bytes(1);
    if ((t & 0xe0) == 0xa0) return skip_bytes(1 + (t & 0x1f));
    if ((t & 0xf0) == 0x90 || (t & 0xf0) == 0x80) {
      n = (t & 0x0f) * ((t & 0xf0) == 0x80 ? 2 : 1);
      in_.remove_prefix(1);
      return skip_items(n, depth);
    }
    switch (t) {
      case 0xc4: case 0xc5: case 0xc6:  // bin 8/16/32
        return number(size_t{1} << (t - 0xc4), n) && skip_bytes(n);
      case 0xd9: case 0xda: case 0xdb:  // str 8/16/32
        return number(size_t{1} << (t - 0xd9), n) && skip_bytes(n);
      case 0xc7: case 0xc8: case 0xc9:  // ext 8/16/32: length, type, data
        return number(size_t{1} << (t - 0xc7), n) && skip_bytes(n + 1);
      case 0xca: return skip_bytes(5);
      case 0xcb: return skip_bytes(9);
      case 0xcc: case 0xcd: case 0xce: case 0xcf: return skip_bytes(1 + (size_t{1} << (t - 0xcc)));
      case 0xd0: case 0xd1: case 0xd2: case 0xd3: return skip_bytes(1 + (size_t{1} << (t - 0xd0)));
      case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8:  // fixext 1..16: type, data
        return skip_bytes(2 + (size_t{1} << (t - 0xd4)));
      case 0xdc: case 0xdd:  // array 16/32
        return number(size_t{2} << (t - 0xdc), n) && skip_items(n, depth);
      case 0xde: case 0xdf:  // map 16/32
        return number(size_t{2} << (t - 0xde), n) && skip_items(2 * n, depth);
      default: return false;  // 0xc1, never used
    }
  }

 private:
  bool skip_items(uint64_t n, int depth) {
    for (uint64_t i = 0; i < n; ++i)
      if (!skip(depth + 1)) return false;
    return true;
  }
  std::string_view in_;
};

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
    mdp::send_request(c.sock, sh_.o.service, body);
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
    const auto reply = mdp::reply_body(f, sh_.o.service);
    if (!reply) {
      error("malformed reply envelope (" + std::to_string(f.size()) + " frames)");
      if (!sh_.o.decode && c.outstanding > 0) finish(c, 0, now, false);
      return;
    }
    const std::string_view body = *reply;
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
    if (sh_.o.quick && (r_.replies & 63) != 0) {
      TopFields top;
      if (scan_top_fields(body, top) && top.rid && *top.rid >= 0 && *top.rid < sh_.o.window &&
          c.seq[static_cast<size_t>(*top.rid)] >= 0 && sh_.o.quick(top)) {
        const int slot = static_cast<int>(*top.rid);
        if (in_window(now))
          r_.latency_ms.push_back(
              std::chrono::duration<float, std::milli>(now - c.sent_at[static_cast<size_t>(slot)]).count());
        return finish(c, slot, now, true);
      }
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

bool scan_top_fields(std::string_view body, TopFields& out) {
  out = TopFields{};
  Scanner in(body);
  uint64_t n = 0;
  if (!in.map(n)) return false;
  for (uint64_t i = 0; i < n; ++i) {
    std::string_view key;
    if (!in.str(key)) return false;
    uint8_t t = 0;
    if (!in.peek(t)) return false;
    if (key == "rid" && !out.rid) {
      int64_t v;
      Scanner probe = in;
      if (probe.integer(v)) {
        out.rid = v;
        in = probe;
        continue;
      }
    } else if (key == "ok" && (t == 0xc2 || t == 0xc3) && !out.ok) {
      out.ok = t == 0xc3;
    } else if (key == "status" && !out.status) {
      std::string_view v;
      Scanner probe = in;
      if (probe.str(v)) {
        out.status = v;
        in = probe;
        continue;
      }
    }
    if (!in.skip()) return false;
  }
  return in.done();
}

double median(std::vector<double> v) {
  if (v.empty()) return -1;
  std::sort(v.begin(), v.end());
  const size_t k = v.size() / 2;
  return v.size() % 2 ? v[k] : (v[k - 1] + v[k]) / 2;
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

// ---------------------------------------------------------------- DirectServer

struct DirectServer::State {
  zmq::context_t ctx{1};
  std::atomic<bool> stop{false};
  std::thread thread;
};

DirectServer::DirectServer(Handler handle) : state_(std::make_unique<State>()) {
  std::promise<std::string> bound;
  auto endpoint = bound.get_future();
  state_->thread = std::thread([s = state_.get(), &bound, handle = std::move(handle)] {
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
        if (handle(frames)) mdp::send_frames(router, frames, true);
    }
  });
  endpoint_ = endpoint.get();
}

DirectServer::~DirectServer() {
  state_->stop = true;
  state_->thread.join();
}

// ---------------------------------------------------------------- PlainEchoWorkers

std::string echo_reply_body(std::string_view request_body) {
  auto req = unpack_map(request_body);
  if (!req) return encode_error(Code::BadRequest, req.error().message);
  const Value* payload = req->find("payload");
  const Value* rid = req->find("rid");
  return encode_reply(Reply::success({{"payload", payload ? *payload : Value()}}), rid ? *rid : Value());
}

bool plain_reply(mdp::Frames& request, std::string_view reply_body, mdp::Frames& out) {
  const size_t n = request.size();
  if (n < 6 || request[0].size() != 0 || mdp::view(request[1]) != mdp::kWorker || request[2].size() != 1 ||
      *static_cast<const uint8_t*>(request[2].data()) != static_cast<uint8_t>(mdp::Command::Request) ||
      request[n - 2].size() != 0)
    return false;
  out.clear();
  out.push_back(mdp::frame(""));
  out.push_back(mdp::frame(mdp::kWorker));
  out.push_back(mdp::frame(mdp::Command::Reply));
  for (size_t k = 3; k + 2 < n; ++k) out.push_back(std::move(request[k]));
  out.push_back(mdp::frame(""));
  out.push_back(mdp::frame(reply_body));
  return true;
}

struct PlainEchoWorkers::State {
  zmq::context_t ctx{1};
  std::atomic<bool> stop{false};
  std::atomic<int64_t> served{0}, errors{0};
  std::thread thread;
};

PlainEchoWorkers::PlainEchoWorkers(const std::string& endpoint, const std::string& service, int count,
                                   std::chrono::milliseconds heartbeat)
    : state_(std::make_unique<State>()) {
  state_->thread = std::thread([s = state_.get(), endpoint, service, count, heartbeat] {
    auto command = [](zmq::socket_t& sock, mdp::Command cmd, const std::string* svc) {
      mdp::Frames f;
      f.push_back(mdp::frame(""));
      f.push_back(mdp::frame(mdp::kWorker));
      f.push_back(mdp::frame(cmd));
      if (svc) f.push_back(mdp::frame(*svc));
      mdp::send_frames(sock, f, true);
    };
    std::vector<zmq::socket_t> socks;
    std::vector<pollfd> fds;
    for (int i = 0; i < count; ++i) {
      socks.emplace_back(s->ctx, zmq::socket_type::dealer);
      socks.back().set(zmq::sockopt::linger, 0);
      socks.back().connect(endpoint);
      command(socks.back(), mdp::Command::Ready, &service);
    }
    for (auto& sock : socks) fds.push_back({sock.get(zmq::sockopt::fd), POLLIN, 0});
    // As the load generator: a socket is read until it runs dry after its
    // last send, and only then left to its descriptor.
    std::vector<char> ready(socks.size(), 1);
    auto next_heartbeat = Clock::now() + heartbeat;
    mdp::Frames in, out;
    // The bench sends the same body again and again: its reply is made once.
    std::string last_request, last_reply;
    while (!s->stop.load(std::memory_order_relaxed)) {
      const bool busy = std::find(ready.begin(), ready.end(), 1) != ready.end();
      if (::poll(fds.data(), fds.size(), busy ? 0 : 50) < 0 && errno != EINTR) break;
      for (size_t i = 0; i < socks.size(); ++i) {
        if (fds[i].revents) ready[i] = 1;
        if (!ready[i]) continue;
        int n = 0;
        for (; n < 64 && mdp::recv_frames(socks[i], in, zmq::recv_flags::dontwait); ++n) {
          const bool header = in.size() >= 3 && in[0].size() == 0 && mdp::view(in[1]) == mdp::kWorker &&
                              in[2].size() == 1;
          const auto cmd = header ? static_cast<mdp::Command>(*static_cast<const uint8_t*>(in[2].data()))
                                  : mdp::Command{};
          if (header && cmd == mdp::Command::Heartbeat) continue;
          if (header && cmd == mdp::Command::Disconnect) {
            command(socks[i], mdp::Command::Ready, &service);
            continue;
          }
          if (!header || cmd != mdp::Command::Request || in.size() < 6) {
            s->errors.fetch_add(1, std::memory_order_relaxed);
            continue;
          }
          const std::string_view body = mdp::view(in.back());
          if (body != last_request) {
            last_request = body;
            last_reply = echo_reply_body(body);
          }
          if (!plain_reply(in, last_reply, out)) {
            s->errors.fetch_add(1, std::memory_order_relaxed);
            continue;
          }
          mdp::send_frames(socks[i], out, true);
          s->served.fetch_add(1, std::memory_order_relaxed);
        }
        ready[i] = n == 64;
      }
      const auto now = Clock::now();
      if (now >= next_heartbeat) {
        for (size_t i = 0; i < socks.size(); ++i) {
          command(socks[i], mdp::Command::Heartbeat, nullptr);
          ready[i] = 1;
        }
        next_heartbeat = now + heartbeat;
      }
    }
    for (auto& sock : socks) command(sock, mdp::Command::Disconnect, nullptr);
  });
}

PlainEchoWorkers::~PlainEchoWorkers() {
  state_->stop = true;
  state_->thread.join();
}

int64_t PlainEchoWorkers::served() const { return state_->served.load(); }
int64_t PlainEchoWorkers::protocol_errors() const { return state_->errors.load(); }

}  // namespace primary::bench
