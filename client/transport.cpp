#include "primary/client/transport.hpp"

#include <zmq.hpp>

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
  explicit ZmqConnection(zmq::socket_t socket) : socket_(std::move(socket)) {}

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
      zmq::pollitem_t item{socket_.handle(), 0, ZMQ_POLLIN, 0};
      zmq::poll(&item, 1, timeout);
      if (!(item.revents & ZMQ_POLLIN)) return std::nullopt;
      mdp::Frames in;
      if (!mdp::recv_frames(socket_, in, zmq::recv_flags::dontwait)) return std::nullopt;
      std::vector<std::string> frames;
      for (const auto& m : in) frames.emplace_back(mdp::view(m));
      return frames;
    } catch (const zmq::error_t&) {
      return std::nullopt;
    }
  }

 private:
  zmq::socket_t socket_;
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
      if (!options_.server_key.empty()) {
        s.set(zmq::sockopt::curve_serverkey, options_.server_key);
        s.set(zmq::sockopt::curve_publickey, options_.public_key);
        s.set(zmq::sockopt::curve_secretkey, options_.secret_key);
      }
      s.connect(endpoint);
      return std::unique_ptr<Connection>(std::make_unique<ZmqConnection>(std::move(s)));
    } catch (const zmq::error_t& e) {
      return Failure{"cannot connect to '" + endpoint + "': " + e.what()};
    }
  }

 private:
  ZmqTransportOptions options_;
  zmq::context_t ctx_{1};
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
