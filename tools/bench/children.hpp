// Process plumbing for primary-bench: children that cannot outlive the
// bench, temporary directories that are always removed, a watchdog that
// bounds the run time, and /proc sampling of a process tree.
//
// Every child and temp dir is registered in one process-wide list. Normal
// teardown is RAII (Child, TempDir); the watchdog thread handles the rest:
// on SIGINT/SIGTERM/SIGHUP or when the run's deadline passes it SIGKILLs
// every registered child together with all of its descendants, removes the
// temp dirs and exits. Children also get PR_SET_PDEATHSIG, so even a
// SIGKILLed bench leaves nothing behind.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace primary::bench {

// Blocks the stop signals in the calling thread (call first in main, before
// any thread exists) and starts the watchdog: after `limit` it aborts the run
// with exit code 3; a stop signal aborts it with 130.
void start_watchdog(std::chrono::seconds limit);

// A temporary directory under $TMPDIR (or /tmp), removed with its contents
// when destroyed unless keep() was called.
class TempDir {
 public:
  explicit TempDir(const std::string& prefix);
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  bool ok() const { return !path_.empty(); }
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }
  void keep() { keep_ = true; }

 private:
  std::string path_;
  bool keep_ = false;
};

// A child process: stdin from /dev/null, stdout and stderr appended to
// `log_file`, signals unblocked, killed by the kernel (`death_signal`) if the
// bench dies. Destroying a Child that still runs SIGKILLs its whole tree.
// Its environment is the bench's without PRIMARY_* variables, plus `env`
// ("NAME=VALUE" entries).
class Child {
 public:
  static Child start(const std::vector<std::string>& argv, const std::string& log_file,
                     int death_signal = 9 /* SIGKILL */, const std::vector<std::string>& env = {});
  Child() = default;
  ~Child();
  Child(Child&& other) noexcept;
  Child& operator=(Child&& other) noexcept;
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  pid_t pid() const { return pid_; }
  bool started() const { return pid_ > 0; }
  bool alive();
  bool signal(int sig);
  // The exit code (128 + signal when killed), or nullopt on timeout.
  std::optional<int> wait_exit(std::chrono::milliseconds timeout);
  // SIGKILLs the child and every descendant, then reaps the child.
  void kill_tree();

 private:
  bool reap(bool block);
  pid_t pid_ = -1;
  std::optional<int> status_;
};

// Runs argv to completion (bounded by `timeout`), capturing stdout; stderr
// goes to `log_file`. nullopt when it could not run, timed out or exited
// non-zero.
std::optional<std::string> run_capture(const std::vector<std::string>& argv,
                                       const std::string& log_file,
                                       std::chrono::milliseconds timeout);

// Reaps those of `pids` that were orphaned to the bench (it is their child
// subreaper) once they exit, waiting up to a second for each.
void reap_orphans(const std::vector<pid_t>& pids);

// `pid` and all its descendants (children first found through /proc).
std::vector<pid_t> process_tree(pid_t pid);

struct ProcSample {
  pid_t pid = 0;
  std::string name;
  uint64_t cpu_ticks = 0;  // utime + stime, all threads
  uint64_t rss_kib = 0;    // VmRSS
  uint64_t pss_kib = 0;    // Pss from smaps_rollup (0 when unreadable)
};
// One sample per live process of the tree.
std::vector<ProcSample> sample_tree(pid_t root);

std::string read_text_file(const std::string& path);
// The directory holding this executable.
std::string self_dir();

}  // namespace primary::bench
