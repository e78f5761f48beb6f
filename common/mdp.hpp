// Majordomo Protocol 0.1 (ZeroMQ RFC 7) framing shared by the broker, the
// worker runtime and the clients, and MMI (RFC 8) names.
#pragma once

#include <zmq.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace primary::mdp {

inline constexpr std::string_view kClient = "MDPC01";
inline constexpr std::string_view kWorker = "MDPW01";
inline constexpr std::string_view kMmiPrefix = "mmi.";

enum class Command : uint8_t {
  Ready = 0x01,
  Request = 0x02,
  Reply = 0x03,
  Heartbeat = 0x04,
  Disconnect = 0x05,
};

using Frames = std::vector<zmq::message_t>;

inline std::string_view view(const zmq::message_t& m) {
  return {static_cast<const char*>(m.data()), m.size()};
}
inline zmq::message_t frame(std::string_view s) { return zmq::message_t(s.data(), s.size()); }
inline zmq::message_t frame(Command c) {
  const auto b = static_cast<uint8_t>(c);
  return zmq::message_t(&b, 1);
}

// Receives one whole multipart message; false when nothing was waiting
// (with dontwait) or the context is shutting down.
bool recv_frames(zmq::socket_ref s, Frames& out, zmq::recv_flags flags = zmq::recv_flags::none);
// Sends every frame; frames are consumed. False if the socket would block.
bool send_frames(zmq::socket_ref s, Frames& frames, bool dontwait = false);

}  // namespace primary::mdp
