// What the licensing agent needs from the world, as interfaces: a clock and
// a way to exchange multipart messages with a server endpoint. The real ones
// are the system clocks and ZeroMQ DEALER sockets; tests substitute a
// ManualClock and an in-memory transport, and so drive hours of agent
// behaviour in milliseconds.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "primary/client/expected.hpp"

namespace primary::client {

class Clock {
 public:
  virtual ~Clock() = default;
  // Monotonic time: what contacts are scheduled on.
  virtual std::chrono::steady_clock::time_point now() const = 0;
  // Calendar time: what lease expiry is checked against.
  virtual std::chrono::system_clock::time_point wall() const = 0;
};

// The process's real clocks.
std::shared_ptr<Clock> system_clock();

// A clock that moves only when told to; both of its times move together.
class ManualClock final : public Clock {
 public:
  // Starts at `wall_start` (default 2024-01-01T00:00:00Z).
  explicit ManualClock(std::chrono::system_clock::time_point wall_start =
                           std::chrono::system_clock::time_point(std::chrono::seconds(1704067200)));
  std::chrono::steady_clock::time_point now() const override { return now_; }
  std::chrono::system_clock::time_point wall() const override { return wall_; }
  void advance(std::chrono::steady_clock::duration d);
  // Moves forward to `t`; never backwards.
  void advance_to(std::chrono::steady_clock::time_point t);

 private:
  std::chrono::steady_clock::time_point now_;
  std::chrono::system_clock::time_point wall_;
};

// One conversation with one endpoint, like one DEALER socket: messages go
// out and come back as lists of frames. Dropping it abandons whatever reply
// is still on its way (Lazy Pirate's "close the socket").
class Connection {
 public:
  virtual ~Connection() = default;
  // Queues one multipart message; false if it could not be sent.
  virtual bool send(const std::vector<std::string>& frames) = 0;
  // Waits up to `timeout` for one multipart message; nullopt on timeout.
  virtual std::optional<std::vector<std::string>> receive(std::chrono::milliseconds timeout) = 0;
  // False while the connection has not reached a server (for ZeroMQ: no
  // completed handshake; refused, unreachable or still connecting). An
  // agent does not retry, within one contact, an endpoint whose connection
  // timed out unreached. Transports that cannot tell answer true.
  virtual bool reached() { return true; }
};

class Transport {
 public:
  virtual ~Transport() = default;
  // Opens a fresh connection to `endpoint` (e.g. "tcp://server:16770");
  // fails only for an endpoint that cannot be used at all.
  virtual Expected<std::unique_ptr<Connection>> connect(const std::string& endpoint) = 0;
};

struct ZmqTransportOptions {
  // The server's CURVE public key (Z85). When set, connections use CURVE
  // with the keypair below, generated once per transport when empty.
  std::string server_key;
  std::string public_key, secret_key;  // Z85
};

// ZeroMQ DEALER sockets (linger 0) on one context shared by every
// connection of this transport; safe to share between agents and threads.
// Each connection makes one connection attempt: libzmq's reconnects are off
// (ZMQ_RECONNECT_IVL -1), so a refused or broken connection stays down until
// the caller drops it and opens another. An idle transport (no connection
// open) holds no socket and wakes no thread.
std::shared_ptr<Transport> zmq_transport(ZmqTransportOptions options = {});

}  // namespace primary::client
