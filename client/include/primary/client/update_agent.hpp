// Software updates for a Client (or any component): ask the server whether a
// newer approved release exists, then download it in 1 MiB chunks with
// several requests in flight (credit-based flow control), resuming from a
// partial file after a break, and accept it only when its size, SHA-256 and
// the vendor's signature (checked with the vendor key the Client ships with)
// all agree.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "primary/client/expected.hpp"
#include "primary/client/transport.hpp"

namespace primary::client {

struct UpdateInfo {
  std::string component, version, channel;
  int64_t size = 0;
  std::string sha256;     // 64 lowercase hex digits
  std::string signature;  // base64url Ed25519 by the vendor
  std::string notes;
};

struct UpdateOptions {
  std::vector<std::string> endpoints;  // failover order; at least one
  std::string server_key;              // Z85, for the default (ZeroMQ) transport; empty: insecure
  std::string vendor_key;              // base64url or raw 32 bytes; required
  std::chrono::milliseconds timeout{6000};  // without any reply, the connection is given up
  int attempts = 0;                    // reconnects per call; 0: max(3, 2 per endpoint)
  int window = 8;                      // chunk requests in flight
  int64_t chunk = 1024 * 1024;         // bytes per request (at most 1 MiB)
  // Called after each chunk is written: bytes on disk, total size.
  std::function<void(int64_t done, int64_t total)> on_progress;
};

// True when the vendor signed exactly this release (component, version,
// channel, size, sha256).
bool verify_update(const UpdateInfo& update, const std::string& vendor_key);

class UpdateAgent {
 public:
  // `transport` defaults to zmq_transport({options.server_key}).
  explicit UpdateAgent(UpdateOptions options, std::shared_ptr<Transport> transport = nullptr);

  // The newest approved release newer than `version` this computer may take,
  // nullopt when there is none; an offer without a valid vendor signature
  // is a failure.
  Expected<std::optional<UpdateInfo>> check(const std::string& component, const std::string& version,
                                            const std::string& channel = "stable",
                                            const std::string& computer = "");

  // Downloads `update` to `path`. Bytes go to `path + ".part"` first, which a
  // later call resumes from; the file is renamed to `path` only after the
  // size, hash and signature check. Returns the bytes fetched by this call.
  Expected<int64_t> download(const UpdateInfo& update, const std::string& path);

 private:
  UpdateOptions options_;
  std::shared_ptr<Transport> transport_;
  std::string vendor_key_;  // raw 32 bytes, empty if unusable
  size_t current_ = 0;      // endpoint that answered last
};

}  // namespace primary::client
