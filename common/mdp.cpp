#include "common/mdp.hpp"

namespace primary::mdp {
namespace {

void put(std::string& out, uint64_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

// Reads a `bytes`-wide length then that many bytes; false when truncated.
bool take(std::string_view& in, int bytes, std::string_view& field) {
  if (in.size() < static_cast<size_t>(bytes)) return false;
  size_t n = 0;
  for (int i = 0; i < bytes; ++i) n = (n << 8) | static_cast<uint8_t>(in[static_cast<size_t>(i)]);
  in.remove_prefix(static_cast<size_t>(bytes));
  if (in.size() < n) return false;
  field = in.substr(0, n);
  in.remove_prefix(n);
  return true;
}

}  // namespace

void append_entry(std::string& out, const BatchEntry& e, bool with_meta) {
  put(out, e.client.size(), 2);
  out.append(e.client);
  if (with_meta) {
    put(out, e.meta.size(), 2);
    out.append(e.meta);
  }
  put(out, e.tag.size(), 1);
  out.append(e.tag);
  put(out, e.body.size(), 4);
  out.append(e.body);
}

size_t entry_size(const BatchEntry& e, bool with_meta) {
  return 2 + e.client.size() + (with_meta ? 2 + e.meta.size() : 0) + 1 + e.tag.size() + 4 + e.body.size();
}

bool parse_batch(std::string_view frame, bool with_meta, std::vector<BatchEntry>& out) {
  out.clear();
  if (frame.empty()) return false;
  while (!frame.empty()) {
    BatchEntry e;
    if (!take(frame, 2, e.client) || e.client.empty() || e.client.size() > 255) return false;
    if (with_meta && !take(frame, 2, e.meta)) return false;
    if (!take(frame, 1, e.tag) || e.tag.empty()) return false;
    if (!take(frame, 4, e.body)) return false;
    out.push_back(e);
  }
  return true;
}

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

bool send_request(zmq::socket_ref s, std::string_view service, std::string_view body, bool dontwait) {
  const auto more = dontwait ? (zmq::send_flags::sndmore | zmq::send_flags::dontwait) : zmq::send_flags::sndmore;
  return s.send(zmq::message_t(), more) && s.send(zmq::buffer(kClient), more) &&
         s.send(zmq::buffer(service), more) &&
         s.send(zmq::buffer(body), dontwait ? zmq::send_flags::dontwait : zmq::send_flags::none);
}

std::vector<std::string> request_frames(std::string_view service, std::string_view body) {
  return {std::string(), std::string(kClient), std::string(service), std::string(body)};
}

std::optional<std::string_view> reply_body(const Frames& in, std::string_view service) {
  if (in.size() != 4 || in[0].size() != 0 || view(in[1]) != kClient || view(in[2]) != service) return std::nullopt;
  return view(in[3]);
}

std::optional<std::string_view> reply_body(const std::vector<std::string>& in, std::string_view service) {
  if (in.size() != 4 || !in[0].empty() || in[1] != kClient || in[2] != service) return std::nullopt;
  return in[3];
}

}  // namespace primary::mdp
