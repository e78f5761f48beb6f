// The activity log as a file an admin can read with `less` or ship to a log
// system: one line per event of the activity log stream, in a rotating file.
//
// Any number of admin workers may run, but one file must get each event
// once. The writer is whoever holds a Redis lock with expiry; every poll
// renews it, so a dead writer is replaced within the expiry. The id of the
// last event written is kept in Redis, moved only by the lock holder and only
// after the lines are flushed. A writer killed between the flush and that
// update would make its successor repeat the batch, so on taking the lock a
// writer also reads the id on the last line of the file and continues after
// whichever of the two is later: no gap and no duplicate across restarts.
// The sink is opened only while holding the lock, so a writer never keeps a
// handle on a file that its predecessor has since rotated.
#pragma once

#include <spdlog/logger.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "common/log_chain.hpp"
#include "common/redis.hpp"
#include "common/redis_lock.hpp"
#include "common/value.hpp"

namespace primary::admin {

struct LogFileConfig {
  std::string path;                      // e.g. DATA/log/activity.log
  size_t max_size = 10 * 1024 * 1024;    // bytes per file before rotating
  size_t max_files = 5;                  // rotated files kept (activity.1.log ...)
  std::string owner;                     // this writer's lock value (unique per process)
  int64_t lock_ms = 10000;               // lock expiry
  // Events read per Redis round trip. A batch is held at once in hiredis's
  // reply, its copy and the lines, so this bounds the writer's memory peak.
  size_t batch = 100;
  std::chrono::milliseconds budget{50};  // time one poll may spend writing
};

// One event (the map of event_from_entry: id, ts, type, fields) as a line
// without the newline: ISO-8601 UTC time, type, then id=... and the other
// fields as key=value, strings quoted when they hold spaces.
// `log verify` renders each chained line again and compares: a change to
// how existing fields render makes files written before it fail verification.
std::string format_event_line(const Value& event);

// A chained entry (common/log_chain.hpp) as a file line: format_event_line
// of its event, then " seq=N prev=HASH raw=DATA", DATA the entry's
// MessagePack bytes in base64url, so that the line alone gives the hash input.
std::string format_chain_line(const logchain::Entry& e);
// The entry on a line made by format_chain_line, `where` left empty;
// text_differs set when the readable part is not what the entry renders to.
// nullopt for a line without the chain fields.
std::optional<logchain::Entry> parse_chain_line(const std::string& line);

// The event id on a line made by format_event_line ("" if there is none).
std::string event_id_of_line(const std::string& line);

// True when stream id a orders before b ("1700000000000-3" < "1700000000001-0").
bool stream_id_less(const std::string& a, const std::string& b);

class ActivityLogFile {
 public:
  ActivityLogFile(Redis& redis, LogFileConfig config);
  ~ActivityLogFile();
  ActivityLogFile(const ActivityLogFile&) = delete;
  ActivityLogFile& operator=(const ActivityLogFile&) = delete;

  // Takes or renews the lock and, while holding it, appends the events not
  // yet written (bounded by config.budget). Returns the number written.
  // Never throws; Redis or file trouble is logged and retried next time.
  int64_t poll();
  // Gives the lock up so that another worker takes over at once (on stop).
  void release();
  bool writing() const { return sink_ != nullptr; }

 private:
  int64_t write_events();
  // After a catch-up or a reopen, gives the heap they freed back to the
  // system (malloc_trim), at most every 5 s.
  void return_free_heap();
  bool hold_lock();
  bool open_sink();
  void close_sink();
  std::string last_line_id() const;

  Redis& redis_;
  LogFileConfig config_;
  ExpiringLock lock_;                     // config_.owner's, on keys::kLogFileLock
  std::shared_ptr<spdlog::logger> sink_;  // set while holding the lock
  std::string last_;                      // id of the last event in the file
  std::chrono::steady_clock::time_point quiet_until_{};  // rate-limits warnings
  // A poll peaked above the steady state (full batches, or the 64 KiB tail
  // read on taking the lock): glibc keeps what it freed in the polling
  // thread's arena unless trimmed.
  bool trim_pending_ = false;
  std::chrono::steady_clock::time_point trimmed_at_{};
};

}  // namespace primary::admin
