// The `admin` service: what the administration window shows. Reads only;
// every figure comes from Redis (or, for worker counts, from the broker),
// so any number of admin workers agree.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "common/redis.hpp"
#include "common/schema.hpp"

namespace primary {

struct AdminConfig {
  int64_t check_interval_s = 14400;
  int64_t grace_s = 3600;
  int64_t started_ms = 0;                 // when the server started (uptime)
  std::vector<std::string> front = {"tcp://*:16770"};
  std::vector<std::string> events = {"tcp://*:16771"};
  std::vector<std::string> web;           // console endpoint(s), if any
};

class AdminService {
 public:
  using Clock = std::function<int64_t()>;           // Unix ms
  using WorkerCounts = std::function<Value()>;      // {service: connections} or nil

  AdminService(Redis& redis, AdminConfig config, Clock now_ms, WorkerCounts workers);

  Reply handle(const Request& req);

 private:
  Reply status();
  Reply computers(const Request& req);
  Reply computer(const Request& req);
  Reply log(const Request& req);
  Reply firewall();
  Reply unavailable(const Error& e);
  Reply redis_error(const RedisReply& r);

  Redis& redis_;
  AdminConfig config_;
  Clock now_ms_;
  WorkerCounts workers_;
};

// The TCP ports an endpoint list needs open ("tcp://*:16770" -> 16770).
std::vector<int> tcp_ports(const std::vector<std::string>& endpoints);

}  // namespace primary
