#include "tests/support/raw_dealer.hpp"

namespace primary::test {

RawDealer::RawDealer(zmq::context_t& ctx, const std::string& endpoint)
    : socket_(ctx, zmq::socket_type::dealer) {
  socket_.set(zmq::sockopt::linger, 0);
  socket_.set(zmq::sockopt::rcvhwm, 0);
  socket_.connect(endpoint);
}

void RawDealer::send_frames(const std::vector<std::string>& frames) {
  for (size_t i = 0; i < frames.size(); ++i)
    socket_.send(zmq::buffer(frames[i]),
                 i + 1 < frames.size() ? zmq::send_flags::sndmore : zmq::send_flags::none);
}

std::optional<std::vector<std::string>> RawDealer::recv(std::chrono::milliseconds timeout) {
  zmq::pollitem_t item{socket_.handle(), 0, ZMQ_POLLIN, 0};
  if (zmq::poll(&item, 1, timeout) <= 0) return std::nullopt;
  std::vector<std::string> frames;
  for (;;) {
    zmq::message_t m;
    if (!socket_.recv(m, zmq::recv_flags::none)) break;
    frames.emplace_back(static_cast<const char*>(m.data()), m.size());
    if (!m.more()) break;
  }
  return frames;
}

}  // namespace primary::test
