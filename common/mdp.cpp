#include "common/mdp.hpp"

namespace primary::mdp {

bool recv_frames(zmq::socket_ref s, Frames& out, zmq::recv_flags flags) {
  out.clear();
  for (;;) {
    zmq::message_t m;
    auto r = s.recv(m, out.empty() ? flags : zmq::recv_flags::none);
    if (!r) return false;
    const bool more = m.more();
    out.push_back(std::move(m));
    if (!more) return true;
  }
}

bool send_frames(zmq::socket_ref s, Frames& frames, bool dontwait) {
  for (size_t i = 0; i < frames.size(); ++i) {
    auto flags = (i + 1 < frames.size()) ? zmq::send_flags::sndmore : zmq::send_flags::none;
    if (dontwait) flags = flags | zmq::send_flags::dontwait;
    if (!s.send(frames[i], flags)) return false;
  }
  return true;
}

}  // namespace primary::mdp
