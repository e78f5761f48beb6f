// A private redis-server for one test: its own directory, config, Unix socket
// and append-only file, so tests can run in parallel and can kill and restart
// it to check durability.
#pragma once

#include <string>

#include "tests/support/process.hpp"
#include "tests/support/temp_dir.hpp"

namespace primary::test {

class RedisServer {
 public:
  struct Options {
    bool tcp = false;  // also listen on 127.0.0.1:<free port>
  };

  // Writes the config and starts redis-server (from PATH); check ok().
  // On failure records a gtest failure with the server's log.
  RedisServer();
  explicit RedisServer(Options options);
  ~RedisServer();  // kills the server; the directory goes with it
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  // True once the server answered PING (after the constructor or restart()).
  bool ok() const { return ok_; }
  // unix://<dir>/redis.sock
  std::string url() const;
  // redis://127.0.0.1:<port>; empty unless Options::tcp.
  std::string tcp_url() const;
  const std::string& dir() const { return dir_.path(); }
  std::string socket_path() const { return dir_.file("redis.sock"); }
  pid_t pid() const { return proc_.pid(); }
  // The server's own log file.
  std::string log() const;

  // SIGTERM, then SIGKILL after 5 s; waits for the exit.
  void stop();
  // SIGKILL: no shutdown work, as in a crash.
  void kill9();
  // Starts it again on the same directory (reloading the AOF); waits (10 s)
  // until it answers PING. Stops a running server first.
  bool restart();

 private:
  bool launch();
  TempDir dir_;  // declared before proc_: the server dies before its dir
  Process proc_;
  int port_ = 0;
  bool ok_ = false;
};

}  // namespace primary::test
