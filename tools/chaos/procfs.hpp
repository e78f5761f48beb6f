// Looking at processes through /proc: who is whose child, and who is gone.
// Shared by the system tests (tests/support/procfs.hpp) and the chaos runs.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace primary::chaos {

struct ProcInfo {
  pid_t pid;
  pid_t ppid;
  char state;
  std::string exe;  // argv[0]
};

// /proc/PID/stat and cmdline; nullopt when the process is gone.
std::optional<ProcInfo> proc_info(pid_t pid);
std::vector<ProcInfo> children_of(pid_t parent);
// Every descendant of `root` (children, grandchildren, ...), not root itself.
std::vector<ProcInfo> descendants_of(pid_t root);
// Children of `parent` whose argv[0] file name is `exe_name`.
std::set<pid_t> children_named(pid_t parent, const std::string& exe_name);
// Gone, or a zombie waiting for an init that does not reap.
bool process_gone(pid_t pid);
// Context switches so far of every thread of `pid`, voluntary and not: how
// often it woke (threads that already exited are not counted).
int64_t context_switches(pid_t pid);

}  // namespace primary::chaos
