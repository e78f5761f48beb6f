// Redis Sentinel for tests: a master and a replica (private redis-servers on
// 127.0.0.1 TCP ports) and redis-sentinel processes watching them, with
// short failure-detection and failover timeouts, every port picked free.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "tests/support/process.hpp"
#include "tests/support/redis_server.hpp"
#include "tests/support/temp_dir.hpp"

namespace primary::test {

// The redis-sentinel executable found on PATH, or "" (not installed).
std::string sentinel_executable();

// A TCP port on 127.0.0.1 that was free a moment ago.
int free_tcp_port();

// The port of a RedisServer started with Options::tcp.
int tcp_port(const RedisServer& server);

// One redis-sentinel process watching `master_name` at 127.0.0.1:master_port.
class SentinelProcess {
 public:
  struct Options {
    std::string master_name = "mymaster";
    int master_port = 0;
    int quorum = 2;
    int down_after_ms = 1000;
    int failover_timeout_ms = 2000;
  };
  // Writes its config and starts it; check ok(). Retries once on another
  // port if the first one was taken meanwhile.
  explicit SentinelProcess(Options options);
  ~SentinelProcess();
  SentinelProcess(const SentinelProcess&) = delete;
  SentinelProcess& operator=(const SentinelProcess&) = delete;

  bool ok() const { return ok_; }
  int port() const { return port_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  std::string log() const;
  void kill9() { proc_.kill(); }

 private:
  bool launch();
  Options options_;
  TempDir dir_;
  Process proc_;
  int port_ = 0;
  bool ok_ = false;
};

// A master, one replica of it and `sentinels` Sentinels; ok() once the
// replica is in sync and every Sentinel knows the replica and can reach its
// quorum and a majority for a failover (SENTINEL CKQUORUM).
class SentinelGroup {
 public:
  struct Options {
    int sentinels = 3;
    std::string master_name = "mymaster";
    int down_after_ms = 1000;
    int failover_timeout_ms = 2000;
  };
  SentinelGroup();
  explicit SentinelGroup(Options options);
  bool ok() const { return ok_; }

  // sentinel://127.0.0.1:P1,127.0.0.1:P2,.../MASTER_NAME
  std::string url() const;
  // The servers as started; after a failover the replica is the master.
  RedisServer& master() { return *master_; }
  RedisServer& replica() { return *replica_; }
  // The master's port as a Sentinel reports it now, or 0 when none answers.
  int reported_master_port();
  // What went wrong, for a failure message: the Sentinels' logs.
  std::string logs() const;

  std::vector<std::unique_ptr<SentinelProcess>> sentinels;

 private:
  Options options_;
  std::unique_ptr<RedisServer> master_, replica_;
  bool ok_ = false;
};

}  // namespace primary::test
