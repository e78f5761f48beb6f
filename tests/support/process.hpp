// A child process owned by a test: started with fork/exec, killed and reaped
// when the Process goes away, and killed by the kernel if the test program
// itself dies (PR_SET_PDEATHSIG), so a crashed test leaves no orphans.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace primary::test {

// PRIMARY_BIN_DIR + "/" + name: where the product executables are built.
std::string bin(const std::string& name);

class Process {
 public:
  // Starts argv[0] (a path, or a name looked up in PATH) with the current
  // environment plus extra_env. Output goes to log_file (appended) when given,
  // else to the test's own stdout/stderr. If exec fails the child exits 127.
  // The death signal is tied to the calling thread: start from a thread that
  // outlives the child (normally the test's main thread).
  static Process start(std::vector<std::string> argv,
                       std::map<std::string, std::string> extra_env = {},
                       std::string log_file = "");

  Process() = default;  // no process
  ~Process();           // SIGKILL and reap if still running
  Process(Process&& other) noexcept;
  Process& operator=(Process&& other) noexcept;
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const { return pid_; }
  // Sends sig; false when the process has already been reaped.
  bool signal(int sig);
  // True while the process has not exited.
  bool alive();
  // Waits up to timeout for the exit; the exit code, or 128+signal if killed.
  std::optional<int> wait_exit(std::chrono::milliseconds timeout);
  // SIGKILL and reap; the exit status (128+9 unless it had already exited).
  int kill();

 private:
  bool reap(bool block);
  pid_t pid_ = -1;
  std::optional<int> status_;  // set once reaped
};

}  // namespace primary::test
