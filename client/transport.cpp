#include "primary/client/transport.hpp"

#include <zmq.hpp>

#include <algorithm>
#include <atomic>
#include <cstring>

#include "common/mdp.hpp"

namespace primary::client {
namespace {

class SystemClock final : public Clock {
 public:
  std::chrono::steady_clock::time_point now() const override { return std::chrono::steady_clock::now(); }
  std::chrono::system_clock::time_point wall() const override { return std::chrono::system_clock::now(); }
};

class ZmqConnection final : public Connection {
 public:
  // `monitor`: the PAIR end of `socket`'s monitor, reporting completed handshakes.
  ZmqConnection(zmq::socket_t socket, zmq::socket_t monitor)
      : socket_(std::move(socket)), monitor_(std::move(monitor)) {}

  bool send(const std::vector<std::string>& frames) override {
    mdp::Frames out;
    for (const auto& f : frames) out.push_back(mdp::frame(f));
    try {
      return mdp::send_frames(socket_, out, /*dontwait=*/true);
    } catch (const zmq::error_t&) {
      return false;
    }
  }

  std::optional<std::vector<std::string>> receive(std::chrono::milliseconds timeout) override {
    try {
      const auto deadline = std::chrono::steady_clock::now() + timeout;
      for (;;) {
        zmq::pollitem_t items[] = {{socket_.handle(), 0, ZMQ_POLLIN, 0}, {monitor_.handle(), 0, ZMQ_POLLIN, 0}};
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        zmq::poll(items, 2, std::max(left, std::chrono::milliseconds(0)));
        if (items[1].revents & ZMQ_POLLIN) drain_monitor();
        if (items[0].revents & ZMQ_POLLIN) {
          mdp::Frames in;
          if (!mdp::recv_frames(socket_, in, zmq::recv_flags::dontwait)) return std::nullopt;
          reached_ = true;
          std::vector<std::string> frames;
          for (const auto& m : in) frames.emplace_back(mdp::view(m));
          return frames;
        }
        if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
      }
    } catch (const zmq::error_t&) {
      return std::nullopt;
    }
  }

  bool reached() override {
    drain_monitor();
    return reached_;
  }

 private:
  // Reads the monitor's pending events: [u16 event, u32 value] + endpoint.
  void drain_monitor() {
    try {
      for (;;) {
        zmq::message_t head, endpoint;
        if (!monitor_.recv(head, zmq::recv_flags::dontwait)) return;
        if (head.more()) (void)monitor_.recv(endpoint, zmq::recv_flags::dontwait);
        uint16_t event = 0;
        if (head.size() >= sizeof event) std::memcpy(&event, head.data(), sizeof event);
        if (event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) reached_ = true;
      }
    } catch (const zmq::error_t&) {
    }
  }

  zmq::socket_t socket_;
  zmq::socket_t monitor_;
  bool reached_ = false;
};

class ZmqTransport final : public Transport {
 public:
  explicit ZmqTransport(ZmqTransportOptions options) : options_(std::move(options)) {
    if (!options_.server_key.empty() && options_.public_key.empty()) {
      char pub[41], sec[41];
      zmq_curve_keypair(pub, sec);
      options_.public_key = pub;
      options_.secret_key = sec;
    }
  }

  Expected<std::unique_ptr<Connection>> connect(const std::string& endpoint) override {
    try {
      zmq::socket_t s(ctx_, zmq::socket_type::dealer);
      s.set(zmq::sockopt::linger, 0);
      s.set(zmq::sockopt::reconnect_ivl, -1);  // one connection attempt per connection
      if (!options_.server_key.empty()) {
        s.set(zmq::sockopt::curve_serverkey, options_.server_key);
        s.set(zmq::sockopt::curve_publickey, options_.public_key);
        s.set(zmq::sockopt::curve_secretkey, options_.secret_key);
      }
      // Before connect(), so that no event is missed.
      const std::string monitor_at = "inproc://primary-client-monitor-" + std::to_string(++monitors_);
      if (zmq_socket_monitor(s.handle(), monitor_at.c_str(), ZMQ_EVENT_HANDSHAKE_SUCCEEDED) != 0)
        throw zmq::error_t();
      zmq::socket_t monitor(ctx_, zmq::socket_type::pair);
      monitor.set(zmq::sockopt::linger, 0);
      monitor.connect(monitor_at);
      s.connect(endpoint);
      return std::unique_ptr<Connection>(std::make_unique<ZmqConnection>(std::move(s), std::move(monitor)));
    } catch (const zmq::error_t& e) {
      return Failure{"cannot connect to '" + endpoint + "': " + e.what()};
    }
  }

 private:
  ZmqTransportOptions options_;
  zmq::context_t ctx_{1};
  std::atomic<uint64_t> monitors_{0};  // names the monitors' inproc endpoints
};

}  // namespace

std::shared_ptr<Clock> system_clock() {
  static const auto clock = std::make_shared<SystemClock>();
  return clock;
}

ManualClock::ManualClock(std::chrono::system_clock::time_point wall_start)
    : now_(std::chrono::hours(1)), wall_(wall_start) {}

void ManualClock::advance(std::chrono::steady_clock::duration d) {
  if (d <= d.zero()) return;
  now_ += d;
  wall_ += std::chrono::duration_cast<std::chrono::system_clock::duration>(d);
}

void ManualClock::advance_to(std::chrono::steady_clock::time_point t) {
  if (t > now_) advance(t - now_);
}

std::shared_ptr<Transport> zmq_transport(ZmqTransportOptions options) {
  return std::make_shared<ZmqTransport>(std::move(options));
}

}  // namespace primary::client
