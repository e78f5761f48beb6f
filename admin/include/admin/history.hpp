// The fleet's history: what the console charts and `primaryctl history`
// show. An admin worker samples every --history-interval-ms (default one
// minute) and when the activity log moves: the state of the fleet (purchased, reserved, active, lost, never
// seen) and how much each counter grew since the sample before (heartbeats,
// first verifications, rejections, computers gone lost and returned,
// reservations, refusals, update checks, bytes served). A sample lands in
// the hash of its hour and of its day, keyed by the wall clock, kept 14
// days and 2 years (keys::history_key, expiring). The sampling script
// (admin/lua/history_sample.lua) keeps its own last totals in Redis, so any
// number of admin workers, restarted at any time, count each increment
// once, and the licensing workers' counters are summed by the metrics they
// already flush.
#pragma once

#include <cstdint>
#include <string_view>

#include "common/errors.hpp"
#include "common/redis.hpp"
#include "common/schema.hpp"

namespace primary::admin {

inline constexpr int64_t kHourMs = 3600 * 1000;
inline constexpr int64_t kDayMs = 24 * kHourMs;
inline constexpr int64_t kHourlyKeptMs = 14 * kDayMs;  // hourly points are kept this long
inline constexpr int64_t kDailyKeptMs = 731 * kDayMs;  // daily: two years
inline constexpr int64_t kHistoryPage = 500;           // periods per admin.history answer by default
inline constexpr int64_t kHistoryEvents = 10000;       // log entries one sample reads at most

// Records one sample at `now_ms`; active = last seen at or after `cutoff_ms`.
Status sample_history(Redis& redis, int64_t now_ms, int64_t cutoff_ms);

// admin.history {from?, to?, resolution?, limit?}: the points of the periods
// from `from` to `to` (Unix ms, both included; default: the last 48 hours
// hourly, the last 30 days daily), oldest first. One page looks at `limit`
// periods (default 500) from the later of `from` and the start of the
// retention; `next` is the `from` of the following page when periods remain.
// A period with no sample has no point. `from` after `to` is BAD_REQUEST.
Reply history_reply(Redis& redis, const Request& req, int64_t now_ms);

}  // namespace primary::admin
