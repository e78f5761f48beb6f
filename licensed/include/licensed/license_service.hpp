// The licensing handlers: `license` (Client heartbeats) and
// `license.control` (reserve, setup_info, registration, unlock, command,
// retire, transfer),
// plus the lost-client sweep. Plain functions of decoded requests; every
// write is one of the Lua scripts in scripts.cpp, so any number of these
// can run side by side, in any number of processes.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "common/events.hpp"
#include "common/redis.hpp"
#include "common/schema.hpp"
#include "common/tokens.hpp"
#include "licensed/lease_cache.hpp"

namespace primary {

struct LicenseConfig {
  int64_t check_interval_s = 14400;    // licensed Clients come back after this
  int64_t unlicensed_interval_s = 60;  // unverified Clients retry after this
  int64_t grace_s = 3600;              // active = seen within check + grace
  std::string vendor_public;           // 32 bytes; empty: unlock is refused
  LeaseKeySet lease_keys;              // the server's lease keys (read_lease_keys)
  std::vector<std::string> client_endpoints = {"tcp://127.0.0.1:16770"};
  std::string endpoints_file;  // the broker's: fills in a wildcard port of client_endpoints
  std::string server_key;              // Z85 CURVE public key, empty when insecure
  int64_t event_cap = 1000000;
  int64_t last_seen_quantum_ms = -1;   // -1: the lease quantum; 0: every heartbeat writes
  int64_t reject_window_s = 3600;      // one client.rejected per computer per window
  int64_t command_queue_limit = 100;
  int64_t sweep_limit = 1000;
  // The sweep skips a run whose wall-clock progress since the last one
  // differs from the steady clock's by more than this.
  int64_t clock_jump_s = 300;
  // A heartbeat whose client_time is further than this from the server's
  // clock is skewed: recorded, reported (client.clock_skew), never refused.
  int64_t clock_skew_s = 300;
};

// The bytes a heartbeat script compares with a computer's meta entry: the
// MessagePack of the keys l, v, p (k, the clock skew in s, when the
// Client's clock is skewed; s, the last-seen bucket, when there is one) with
// their values, as the script's pack_meta() writes them.
std::string heartbeat_fingerprint(std::string_view license, std::string_view version, std::string_view peer,
                                  std::optional<int64_t> bucket, std::optional<int64_t> skew_s = std::nullopt);

class LicenseService {
 public:
  using Clock = std::function<int64_t()>;  // Unix time in ms
  using SteadyClock = std::function<int64_t()>;  // monotonic ms, any origin

  // `steady_ms` defaults to std::chrono::steady_clock.
  LicenseService(Redis& redis, LicenseConfig config, EventPublisher& events, Clock now_ms,
                 SteadyClock steady_ms = {});

  // `license` service: heartbeats, pipelined to Redis in one round trip.
  std::vector<Reply> handle_license(const std::vector<Request>& requests);
  // `license.control` service; reserves in a batch share one round trip.
  std::vector<Reply> handle_control(const std::vector<Request>& requests);
  // Marks computers silent for longer than check + grace as lost, if no
  // other worker holds the sweep lock. Returns how many were marked.
  //
  // Guarded against jumps of the wall clock: when its progress since this
  // worker's previous call differs from the steady clock's by more than
  // clock_jump_s, the run is skipped, the jump logged, and (once, whichever
  // worker sees it first) server.clock_jump {wall_delta_s, steady_delta_s}
  // emitted. Last-seen times recorded before a forward jump are in the old
  // clock, so for one check + grace after it the sweep forgives the jump's
  // length of silence: no computer is lost because of the jump, and one
  // silent since before it is lost on time in the new clock.
  int64_t sweep();
  // Milliseconds between sweep attempts.
  int64_t sweep_interval_ms() const;
  // The time grid of leases and of recorded last-seen times: check interval
  // / 240, between 1 s and 60 s (60 s by default).
  int64_t lease_quantum_s() const;
  // --last-seen-quantum-ms, or the lease quantum when it is -1.
  int64_t last_seen_quantum_ms() const;
  // Where the lease counters go (LeaseCache::count_with); the worker adds
  // them to its metrics.
  void count_with(std::function<void(std::string_view, int64_t)> add) { leases_.count_with(std::move(add)); }
  // The lease key file changed (a rotation): sign and publish by the new set.
  void set_lease_keys(LeaseKeySet keys) { leases_.set_keys(std::move(keys)); }

 private:
  std::vector<Reply> reserve_batch(const std::vector<const Request*>& reqs);
  // The replies to `items` requests sent as batch scripts of `per_call`
  // each, whose answers are {entries, events, ...} of at least `answer_size`
  // elements: publishes each call's events and builds an item's reply from
  // its entry (an array of `width`, or anything when `width` is 0) with
  // reply_of(item, entry, answer), or answers it the failure of its call or
  // entry.
  std::vector<Reply> batch_replies(
      const Result<std::vector<RedisReply>>& out, size_t items, size_t per_call, size_t answer_size, size_t width,
      const std::function<Reply(size_t, const RedisReply&, const RedisReply&)>& reply_of);
  // The reply to one heartbeat from its entry of the batched script's answer
  // ('OK', the reason, or {'OK', command...}), without the lease of a
  // licensed one (`licensed` says whether it is); nullopt when the entry is
  // none of those.
  std::optional<Reply> heartbeat_reply(const RedisReply& entry, int64_t now, bool& licensed);
  // The skew (client_time - server time, s) of a heartbeat whose Client
  // clock is off by more than clock_skew_s; nullopt otherwise or without
  // client_time. Logs a skewed one.
  std::optional<int64_t> skew_of(const Request& r, int64_t now_ms) const;
  Reply setup_info(const Request& req);
  Reply registration(const Request& req);
  Reply unlock(const Request& req);
  Reply command(const Request& req);
  // retire {code} and transfer {code}: a vendor-signed seat code
  // (tokens.hpp SeatCode), checked here for signature, kind and expiry and
  // applied by retire.lua / transfer.lua; every refusal is
  // INVALID_SEAT_CODE with a `reason` and a seat_code.refused event.
  Reply seat(const Request& req);
  Result<std::string> install_id();

  Redis& redis_;
  LicenseConfig config_;
  EventPublisher& events_;
  Clock now_ms_;
  SteadyClock steady_ms_;
  // This worker's previous sweep() call, for the clock-jump guard.
  int64_t last_sweep_wall_ms_ = 0, last_sweep_steady_ms_ = 0;
  bool swept_ = false;
  // A forward jump seen by this worker: silence forgiven until (wall ms).
  int64_t forgive_ms_ = 0, forgive_until_ms_ = 0;
  std::string install_id_;
  LeaseCache leases_;
  // What sign_ahead() guesses from: the unlocked serial as the last answer
  // had it, and the computers recently answered unlicensed (no lease is
  // signed ahead for them; forgotten after kRejectedForgetMs or when full).
  std::string serial_;
  std::unordered_set<std::string, LeaseCache::NameHash, std::equal_to<>> rejected_;
  int64_t rejected_since_ms_ = 0;
};

}  // namespace primary
