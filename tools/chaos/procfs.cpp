#include "tools/chaos/procfs.hpp"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "common/process.hpp"

namespace primary::chaos {

namespace fs = std::filesystem;

namespace {

std::string slurp(const std::string& path) { return read_file(path).value_or(""); }

// Every process of the system, read once.
std::vector<ProcInfo> all_processes() {
  std::vector<ProcInfo> out;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator("/proc", ec)) {
    const std::string name = entry.path().filename().string();
    if (name.empty() || !std::all_of(name.begin(), name.end(), ::isdigit)) continue;
    if (auto info = proc_info(std::stoi(name))) out.push_back(std::move(*info));
  }
  return out;
}

}  // namespace

std::optional<ProcInfo> proc_info(pid_t pid) {
  const std::string stat = slurp("/proc/" + std::to_string(pid) + "/stat");
  const auto close = stat.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::istringstream rest(stat.substr(close + 2));
  ProcInfo info{pid, 0, '?', ""};
  rest >> info.state >> info.ppid;
  const std::string cmdline = slurp("/proc/" + std::to_string(pid) + "/cmdline");
  // Up to the first NUL or space: redis-server rewrites its title as
  // "/usr/bin/redis-server unixsocket:...".
  info.exe = cmdline.substr(0, cmdline.find_first_of(std::string("\0 ", 2)));
  return info;
}

std::vector<ProcInfo> children_of(pid_t parent) {
  std::vector<ProcInfo> out;
  for (auto& p : all_processes())
    if (p.ppid == parent) out.push_back(std::move(p));
  return out;
}

std::vector<ProcInfo> descendants_of(pid_t root) {
  std::multimap<pid_t, ProcInfo> by_parent;
  for (auto& p : all_processes()) by_parent.emplace(p.ppid, std::move(p));
  std::vector<ProcInfo> out;
  std::vector<pid_t> parents = {root};
  while (!parents.empty()) {
    const pid_t parent = parents.back();
    parents.pop_back();
    auto [lo, hi] = by_parent.equal_range(parent);
    for (auto it = lo; it != hi; ++it) {
      out.push_back(it->second);
      parents.push_back(it->second.pid);
    }
  }
  return out;
}

std::set<pid_t> children_named(pid_t parent, const std::string& exe_name) {
  std::set<pid_t> out;
  for (const auto& c : children_of(parent))
    if (fs::path(c.exe).filename() == exe_name) out.insert(c.pid);
  return out;
}

bool process_gone(pid_t pid) {
  auto info = proc_info(pid);
  return !info || info->state == 'Z';
}

int64_t context_switches(pid_t pid) {
  int64_t sum = 0;
  std::error_code ec;
  for (const auto& task : fs::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec)) {
    std::ifstream in(task.path() / "status");
    for (std::string line; std::getline(in, line);)
      if (line.rfind("voluntary_ctxt_switches:", 0) == 0 || line.rfind("nonvoluntary_ctxt_switches:", 0) == 0)
        sum += std::strtoll(line.c_str() + line.find(':') + 1, nullptr, 10);
  }
  return sum;
}

}  // namespace primary::chaos
