// Redis keys of the server's state, shared by every worker. The layout is
// described in docs/operations.md; changing it needs a new layout version
// and a migration step (common/layout.hpp).
#pragma once

#include <cstdint>
#include <string>

namespace primary::keys {

inline constexpr const char* kLayout = "ps:layout";            // string: the data's layout version (common/layout.hpp)
inline constexpr const char* kLayoutLock = "ps:layout:lock";  // string with expiry: one migration at a time
inline constexpr const char* kSerial = "ps:serial";        // hash: serial, registration, unlocked, purchased, issued, code
inline constexpr const char* kInstallId = "ps:install_id";  // string, made once
inline constexpr const char* kReservations = "ps:res";      // zset (scores 0): "NAME:LICENSE"
inline constexpr const char* kMeta = "ps:meta";             // hash: NAME -> msgpack {r, l, f, v, p}
inline constexpr const char* kActive = "ps:active";         // zset: NAME -> last seen (ms)
inline constexpr const char* kLost = "ps:lost";             // zset: NAME -> last seen (ms)
inline constexpr const char* kRetired = "ps:retired";       // hash: NAME -> the license its last seat code retired
inline constexpr const char* kSeatCodes = "ps:seat_codes";  // set: ids of the seat codes applied (each once)
inline constexpr const char* kSkewed = "ps:skewed";         // set: NAMEs whose last heartbeat's clock was skewed
inline constexpr const char* kStats = "ps:stats";           // hash of counters
inline constexpr const char* kEvents = "ps:events";        // stream: the activity log
inline constexpr const char* kSweepLock = "ps:sweep:lock";  // string with expiry
inline constexpr const char* kClockJump = "ps:clock_jump";  // string with expiry: ms of silence the sweep forgives
inline constexpr const char* kLogFileLock = "ps:logfile:lock";  // string with expiry: the log file writer
inline constexpr const char* kLogFileLast = "ps:logfile:last";  // string: last event id written to the file
inline constexpr const char* kLogCheckpoint = "ps:logchk";  // hash: seq, at of the last log.checkpoint entry
// The rolling count of stale never-seen computers (admin/lua/stale_count.lua):
// n, at of the last complete pass; cur, part of the one in progress.
inline constexpr const char* kStaleCount = "ps:stale";
inline constexpr const char* kMetricsOps = "ps:metrics:ops";    // hash: per-op counters of every worker (common/metrics.hpp)
// Fleet history (admin/include/admin/history.hpp): the totals of the last
// sample, and a hash per hour (ps:hist:h:START) and per day (ps:hist:d:START),
// START the period's first second (Unix s), each expiring with its retention.
inline constexpr const char* kHistLast = "ps:hist:last";
inline const std::string history_key(bool daily, int64_t start_s) {
  return std::string(daily ? "ps:hist:d:" : "ps:hist:h:") + std::to_string(start_s);
}
// Updates (see updater/update_service.hpp for their shapes).
inline constexpr const char* kUpdReleases = "ps:upd:releases";  // hash "COMPONENT VERSION" -> msgpack record
inline constexpr const char* kUpdState = "ps:upd:state";        // hash "COMPONENT VERSION" -> held | approved:P
inline constexpr const char* kUpdGen = "ps:upd:gen";            // counter: catalogue generation
inline constexpr const char* kUpdFeed = "ps:upd:feed";          // hash: the feed in force
inline constexpr const char* kUpdSync = "ps:upd:sync";          // hash: the last sync/import job
inline constexpr const char* kUpdLock = "ps:upd:lock";          // string with expiry: one sync at a time
inline const std::string command_key(const std::string& name) { return "ps:cmd:" + name; }
inline const std::string reject_key(const std::string& name) { return "ps:rej:" + name; }
// Set of command ids delivered to NAME and not yet reported (expires after 30 days).
inline const std::string sent_key(const std::string& name) { return "ps:sent:" + name; }
}  // namespace primary::keys
