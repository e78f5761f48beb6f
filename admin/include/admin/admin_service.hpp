// The `admin` service: what the administration window shows. Reads only;
// every figure comes from Redis (or, for worker counts, from the broker),
// so any number of admin workers agree.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/events.hpp"
#include "common/redis.hpp"
#include "common/schema.hpp"

namespace primary {

struct AdminConfig {
  int64_t check_interval_s = 14400;
  int64_t grace_s = 3600;
  // A computer is stale (flagged, nothing more) when never seen this long
  // after its reservation, or lost and silent this long.
  int64_t stale_unseen_s = 30 * 86400;
  int64_t stale_lost_s = 90 * 86400;
  // The stale never-seen computers are recounted by a rolling pass of
  // `stale_count_batch` reservations per count_stale() call, a new pass at
  // most `stale_recount_s` after the last one ended (admin/lua/stale_count.lua).
  int64_t stale_recount_s = 60;
  int64_t stale_count_batch = 1000;
  int64_t started_ms = 0;                 // when the server started (uptime)
  std::vector<std::string> front = {"tcp://*:16770"};
  std::vector<std::string> events = {"tcp://*:16771"};
  std::vector<std::string> web;           // console endpoint(s), if any
  std::string endpoints_file;             // the broker's: fills in wildcard ports of front and events
  std::string log_public;                 // the log checkpoint key, raw 32 bytes (empty: none)
  int64_t event_cap = kEventLogCap;       // entries the activity log keeps
};

class AdminService {
 public:
  using Clock = std::function<int64_t()>;           // Unix ms
  // Asks the broker's own service (broker.control) for `op`; its success
  // reply map, or nil when it did not answer.
  using BrokerCall = std::function<Value(std::string_view op)>;

  // `events` publishes what admin.record appends (nullptr: the log only).
  AdminService(Redis& redis, AdminConfig config, Clock now_ms, BrokerCall broker, EventPublisher* events = nullptr);

  Reply handle(const Request& req);
  // Records a sample of the fleet's history now (admin/history.hpp).
  Status sample_history();
  // The same when the activity log has a new entry since the last call
  // (a reservation, a computer licensed, lost or returned, an unlock...).
  Status sample_history_on_change();
  // The same with the log's newest entry already read
  // (logchain::newest_entry_command()), shared with another user.
  Status sample_history_on_change(const Result<RedisReply>& newest);
  // Moves the rolling count of stale never-seen computers on by one batch,
  // when a pass is in progress or due (call it about once a second). The
  // lost stale ones need no pass: admin.status counts them in O(log n).
  Status count_stale();

 private:
  Reply status();
  Reply computers(const Request& req);
  Reply computer(const Request& req);
  Reply log(const Request& req);
  // admin.log with `chain: true`: raw chained entries, for `log verify`.
  Reply log_chain(const Request& req);
  Reply firewall();
  Reply record(const Request& req);
  Reply metrics();
  std::vector<Redis::Argv> license_commands(int64_t now) const;
  static Value::Map license_fields(const std::vector<RedisReply>& replies);

  Redis& redis_;
  AdminConfig config_;
  Clock now_ms_;
  EventPublisher* events_ = nullptr;
  BrokerCall broker_;
  // The activity log's newest id ("" when empty) at the last sample of
  // sample_history_on_change(); nullopt before the first.
  std::optional<std::string> newest_event_;
  // count_stale(): no call to Redis before this (Unix ms) while no pass runs.
  int64_t stale_due_ms_ = 0;
};

// The op counters hash (keys::kMetricsOps, HGETALL as field/value pairs) as
// admin.metrics reports them: `ops` (one map per service and op, histogram
// buckets made cumulative) and `counters`.
struct OpCounters {
  Value::Array ops;
  Value::Map counters;
};
OpCounters op_counters_from_hash(const std::vector<std::pair<std::string, std::string>>& fields);

// The TCP ports an endpoint list needs open ("tcp://*:16770" -> 16770).
std::vector<int> tcp_ports(const std::vector<std::string>& endpoints);

}  // namespace primary
