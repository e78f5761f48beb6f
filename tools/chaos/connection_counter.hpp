// A TCP listener that counts the connections made to it, closing each at
// once: put where a server was, it shows how often a Client tries to connect
// while the server is down. Shared by tests/client_system_test and
// primary-bench client-idle.
#pragma once

#include <atomic>
#include <chrono>
#include <mutex>
#include <string>
#include <thread>

namespace primary::chaos {

class ConnectionCounter {
 public:
  // Binds 127.0.0.1:`port`, retrying for up to 5 s while the port is still
  // held (a server that was just stopped); ok() says whether it listens.
  explicit ConnectionCounter(int port);
  ~ConnectionCounter();
  ConnectionCounter(const ConnectionCounter&) = delete;
  ConnectionCounter& operator=(const ConnectionCounter&) = delete;

  bool ok() const { return ok_; }
  int count() const { return count_.load(); }
  // One line per connection: when (ms since the counter started) and from
  // which port.
  std::string seen() const;

 private:
  int fd_ = -1;
  bool ok_ = false;
  std::atomic<int> count_{0};
  const std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
  mutable std::mutex mu_;
  std::string seen_;
  std::jthread thread_;
};

}  // namespace primary::chaos
