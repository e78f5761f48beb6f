// Small process-level helpers shared by the executables.
#pragma once

#include <atomic>
#include <optional>
#include <cstdint>
#include <string>
#include <sys/types.h>
#include <vector>

#include "common/errors.hpp"

namespace primary {

// SIGTERM and SIGINT set the stop flag (and interrupt blocking polls);
// SIGPIPE is ignored. Call first in main: it also blocks the two signals so
// that threads started afterwards (ZeroMQ's I/O threads) never take them;
// call unblock_stop_signals() in the thread that polls, once they exist.
void install_stop_signals();
void unblock_stop_signals();
// SIGHUP sets the returned flag (the program clears it when it reloads).
std::atomic<bool>& install_reload_signal();
const std::atomic<bool>& stop_requested();

// The whole of `path`, byte for byte; nullopt when it cannot be opened or read.
std::optional<std::string> read_file(const std::string& path);

// What tells a file's versions apart without reading it: a rename over it
// (write_file_atomic) changes the inode, an edit in place the size or
// modification time. All zero for a file that cannot be stat'ed.
struct FileStamp {
  uint64_t dev = 0, ino = 0;
  int64_t size = 0, mtime_ns = 0;
  bool operator==(const FileStamp&) const = default;
};
FileStamp file_stamp(const std::string& path);

// Creates `path` with `mode` and writes `text` to it (fsync'd); refuses a
// file that already exists, so a key is never overwritten.
Status write_new_file(const std::string& path, const std::string& text, mode_t mode);

// Writes `text` to `path` with `mode` through a uniquely named temporary
// file beside it, fsync and rename, so readers never see a partial file and
// concurrent writers never share a temporary. The error says what failed.
Status write_file_atomic(const std::string& path, const std::string& text, mode_t mode);

// The value of a `key=value` line of a file such as the broker's endpoints
// file (front=, events=, workers=, event-sink=); nullopt when absent.
std::optional<std::string> endpoints_file_value(const std::string& file, const std::string& key);
// `endpoints` as configured, each tcp:// one whose port is a wildcard ("*"
// or "0", chosen by the broker when it bound) with the port of the broker's
// `key` line (front, events) in `endpoints_file` instead: tcp://host:* and
// a bound tcp://0.0.0.0:41234 give tcp://host:41234. Unchanged when there
// is no such file or line.
std::vector<std::string> with_bound_ports(const std::vector<std::string>& endpoints,
                                          const std::string& endpoints_file, const std::string& key);

// Up to `length` bytes of `fd` from `offset` (pread, restarted on EINTR);
// fewer at the end of the file or on a read error.
std::string read_at(int fd, int64_t offset, int64_t length);

// The wall clock as Unix time in milliseconds.
int64_t unix_ms();

// Splits "a,b,c" into its non-empty parts.
std::vector<std::string> split_list(const std::string& text, char sep = ',');

}  // namespace primary
