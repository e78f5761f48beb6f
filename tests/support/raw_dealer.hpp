// A DEALER that sends whatever frames a test wants and reads whole messages
// back: for feeding the broker malformed envelopes.
#pragma once

#include <zmq.hpp>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace primary::test {

class RawDealer {
 public:
  RawDealer(zmq::context_t& ctx, const std::string& endpoint);

  // Sends the frames as one multipart message.
  void send_frames(const std::vector<std::string>& frames);
  // The next whole message (without frames the DEALER strips), or nullopt.
  std::optional<std::vector<std::string>> recv(std::chrono::milliseconds timeout);

  zmq::socket_t& socket() { return socket_; }

 private:
  zmq::socket_t socket_;
};

}  // namespace primary::test
