#include "tests/support/procfs.hpp"

#include <algorithm>
#include <filesystem>
#include <sstream>

#include "tests/support/util.hpp"

namespace primary::test {

namespace fs = std::filesystem;

// /proc/PID/stat and cmdline; nullopt when the process is gone.
std::optional<ProcInfo> proc_info(pid_t pid) {
  const std::string stat = read_file("/proc/" + std::to_string(pid) + "/stat");
  const auto close = stat.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::istringstream rest(stat.substr(close + 2));
  ProcInfo info{pid, 0, '?', ""};
  rest >> info.state >> info.ppid;
  const std::string cmdline = read_file("/proc/" + std::to_string(pid) + "/cmdline");
  // Up to the first NUL or space: redis-server rewrites its title as
  // "/usr/bin/redis-server unixsocket:...".
  info.exe = cmdline.substr(0, cmdline.find_first_of(std::string("\0 ", 2)));
  return info;
}

std::vector<ProcInfo> children_of(pid_t parent) {
  std::vector<ProcInfo> out;
  for (const auto& entry : fs::directory_iterator("/proc")) {
    const std::string name = entry.path().filename().string();
    if (name.empty() || !std::all_of(name.begin(), name.end(), ::isdigit)) continue;
    if (auto info = proc_info(std::stoi(name)); info && info->ppid == parent) out.push_back(*info);
  }
  return out;
}

std::set<pid_t> children_named(pid_t parent, const std::string& exe_name) {
  std::set<pid_t> out;
  for (const auto& c : children_of(parent))
    if (fs::path(c.exe).filename() == exe_name) out.insert(c.pid);
  return out;
}

// Gone, or a zombie waiting for an init that does not reap.
bool process_gone(pid_t pid) {
  auto info = proc_info(pid);
  return !info || info->state == 'Z';
}

}  // namespace primary::test
