// A synchronous MDP/0.1 client (RFC 7) with the zguide's Lazy Pirate
// reliability: a request that gets no reply in time closes the socket,
// opens a fresh one to the next endpoint and tries again.
#pragma once

#include <zmq.hpp>

#include <memory>
#include <string>
#include <vector>

#include "common/errors.hpp"
#include "common/value.hpp"

namespace primary {

struct ClientOptions {
  std::vector<std::string> endpoints;  // tried in turn
  int timeout_ms = 3000;               // per attempt
  int attempts = 1;                    // total attempts across endpoints
  // CURVE: when server_key is set (Z85), the client connects securely
  // with its own keypair (generated when empty).
  std::string server_key, public_key, secret_key;
};

class MdpClient {
 public:
  MdpClient(zmq::context_t& ctx, ClientOptions options);
  ~MdpClient();

  // Sends one body to `service`; returns the reply body, or UNAVAILABLE
  // when no attempt got an answer.
  Result<std::string> request(const std::string& service, const std::string& body);
  // Encodes {op, ...fields}, decodes the reply map (ok or not). With
  // PRIMARY_CHECK_REPLIES=1 in the environment (the test suite sets it), a
  // success reply that breaks its operation's declared reply spec (schema.hpp)
  // is returned as an INTERNAL error instead.
  Result<Value> call(const std::string& service, const std::string& op, Value::Map fields = {});

  // True when PRIMARY_CHECK_REPLIES asks for the reply check above.
  static bool checking_replies();

  const std::string& endpoint() const { return options_.endpoints[current_]; }

 private:
  void connect();
  zmq::context_t& ctx_;
  ClientOptions options_;
  size_t current_ = 0;
  std::unique_ptr<zmq::socket_t> socket_;
};

}  // namespace primary
