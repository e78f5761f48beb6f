// Majordomo Protocol 0.1 (ZeroMQ RFC 7) framing shared by the broker, the
// worker runtime and the clients, and MMI (RFC 8) names.
#pragma once

#include <zmq.hpp>

#include <cstdint>
#include <optional>
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
  // Worker batches (docs/protocol.md "Worker batches", an extension of
  // RFC 7): many requests or replies in one frame.
  Requests = 0x06,
  Replies = 0x07,
};

// READY's last frame when the worker takes batches: "" | MDPW01 | READY |
// service | credit | "batch".
inline constexpr std::string_view kBatch = "batch";
// An entry bigger than this goes as a plain REQUEST or REPLY (no copy into
// a batch), and a batch frame is sent once it holds this much.
inline constexpr size_t kBatchBytes = 64 * 1024;

using Frames = std::vector<zmq::message_t>;

inline std::string_view view(const zmq::message_t& m) {
  return {static_cast<const char*>(m.data()), m.size()};
}
inline zmq::message_t frame(std::string_view s) { return zmq::message_t(s.data(), s.size()); }
inline zmq::message_t frame(Command c) {
  const auto b = static_cast<uint8_t>(c);
  return zmq::message_t(&b, 1);
}

// One request (REQUESTS, with meta) or reply (REPLIES, without) of a batch
// frame. Each entry is: u16 client length, client, [u16 meta length, meta,]
// u8 tag length, tag, u32 body length, body; lengths big-endian. Views
// point into the frame they were parsed from.
struct BatchEntry {
  std::string_view client, meta, tag, body;
};
void append_entry(std::string& out, const BatchEntry& e, bool with_meta);
// The bytes append_entry() adds for `e`.
size_t entry_size(const BatchEntry& e, bool with_meta);
// Splits a batch frame; false (and `out` unspecified) when it is empty,
// truncated, or an entry's client or tag is empty or too long.
bool parse_batch(std::string_view frame, bool with_meta, std::vector<BatchEntry>& out);

// Receives one whole multipart message; false when nothing was waiting
// (with dontwait) or the context is shutting down.
bool recv_frames(zmq::socket_ref s, Frames& out, zmq::recv_flags flags = zmq::recv_flags::none);
// Sends every frame; frames are consumed. False if the socket would block.
bool send_frames(zmq::socket_ref s, Frames& frames, bool dontwait = false);

// The client side of RFC 7's envelope, for every MDP client here (the
// client library, primaryctl, the console, the bench): a request and its
// reply are both "" | MDPC01 | service | body, on a DEALER.
//
// Sends one request; false if the socket would not take it (with dontwait).
bool send_request(zmq::socket_ref s, std::string_view service, std::string_view body, bool dontwait = false);
// The same request as frames, for transports that carry strings.
std::vector<std::string> request_frames(std::string_view service, std::string_view body);
// A reply's body when `in` is a reply from `service`; nullopt for any other
// shape (wrong header, service or frame count).
std::optional<std::string_view> reply_body(const Frames& in, std::string_view service);
std::optional<std::string_view> reply_body(const std::vector<std::string>& in, std::string_view service);

}  // namespace primary::mdp
