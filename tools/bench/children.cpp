#include "tools/bench/children.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>

#include "common/process.hpp"

extern char** environ;

namespace primary::bench {

namespace fs = std::filesystem;

namespace {

// Everything the watchdog must clean up if the run is cut short.
struct Registry {
  std::mutex mu;
  std::vector<pid_t> children;
  std::vector<std::string> dirs;
};
Registry& registry() {
  static Registry r;
  return r;
}

void add_child(pid_t pid) {
  std::lock_guard lock(registry().mu);
  registry().children.push_back(pid);
}
void remove_child(pid_t pid) {
  std::lock_guard lock(registry().mu);
  std::erase(registry().children, pid);
}

sigset_t stop_signals() {
  sigset_t set;
  sigemptyset(&set);
  for (int s : {SIGINT, SIGTERM, SIGHUP}) sigaddset(&set, s);
  return set;
}

// Kills every registered child tree, removes the temp dirs, exits.
[[noreturn]] void abort_run(int code, const std::string& why) {
  std::cerr << "primary-bench: " << why << "; killing children and cleaning up" << std::endl;
  std::lock_guard lock(registry().mu);
  for (pid_t pid : registry().children)
    for (pid_t p : process_tree(pid)) ::kill(p, SIGKILL);
  // As child subreaper the bench inherits orphaned grandchildren: reap
  // them all, for at most two seconds.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while (std::chrono::steady_clock::now() < deadline) {
    const pid_t r = ::waitpid(-1, nullptr, WNOHANG);
    if (r < 0 && errno == ECHILD) break;
    if (r <= 0) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  std::error_code ec;
  for (const auto& d : registry().dirs) fs::remove_all(d, ec);
  std::_Exit(code);
}

std::string resolve(const std::string& name) {
  if (name.find('/') != std::string::npos) return name;
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path ? path : "/usr/local/bin:/usr/bin:/bin");
  std::string dir;
  while (std::getline(dirs, dir, ':'))
    if (!dir.empty() && ::access((dir + "/" + name).c_str(), X_OK) == 0) return dir + "/" + name;
  return name;
}

// fork/exec; stdout to out_file (or err_file when empty), stderr to err_file.
pid_t spawn(const std::vector<std::string>& args, const std::string& out_file,
            const std::string& err_file, int death_signal,
            const std::vector<std::string>& extra_env = {}) {
  std::vector<std::string> argv = args;
  const std::string exe = resolve(argv.at(0));
  std::vector<char*> cargv;
  for (auto& a : argv) cargv.push_back(a.data());
  cargv.push_back(nullptr);
  // The systems under test see only their command lines and what the mode
  // sets on purpose: no PRIMARY_* settings leak in from the bench's
  // environment (e.g. PRIMARY_REDIS).
  std::vector<std::string> own_env = extra_env;
  std::vector<char*> cenv;
  for (char** e = environ; *e; ++e)
    if (std::strncmp(*e, "PRIMARY_", 8) != 0) cenv.push_back(*e);
  for (auto& e : own_env) cenv.push_back(e.data());
  cenv.push_back(nullptr);
  const int err_fd = ::open(err_file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  const int out_fd = out_file.empty()
                         ? -1
                         : ::open(out_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  const int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  const std::string failed = "primary-bench: cannot exec " + exe + "\n";
  const pid_t parent = ::getpid();

  const pid_t pid = ::fork();
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, death_signal);
    if (::getppid() != parent) ::_exit(127);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::signal(SIGPIPE, SIG_DFL);
    if (null_fd >= 0) ::dup2(null_fd, STDIN_FILENO);
    if (err_fd >= 0) ::dup2(err_fd, STDERR_FILENO);
    if (out_fd >= 0) ::dup2(out_fd, STDOUT_FILENO);
    else if (err_fd >= 0) ::dup2(err_fd, STDOUT_FILENO);
    ::execve(exe.c_str(), cargv.data(), cenv.data());
    [[maybe_unused]] auto n = ::write(STDERR_FILENO, failed.data(), failed.size());
    ::_exit(127);
  }
  for (int fd : {err_fd, out_fd, null_fd})
    if (fd >= 0) ::close(fd);
  if (pid > 0) add_child(pid);
  return pid;
}

}  // namespace

void start_watchdog(std::chrono::seconds limit) {
  // Orphans of a killed supervisor become ours, not init's, so we reap them.
  ::prctl(PR_SET_CHILD_SUBREAPER, 1);
  sigset_t set = stop_signals();
  ::pthread_sigmask(SIG_BLOCK, &set, nullptr);
  const auto deadline = std::chrono::steady_clock::now() + limit;
  std::thread([set, deadline, limit] {
    for (;;) {
      timespec ts{1, 0};
      const int sig = ::sigtimedwait(&set, nullptr, &ts);
      if (sig > 0) abort_run(128 + sig, std::string("interrupted by ") + strsignal(sig));
      if (std::chrono::steady_clock::now() >= deadline)
        abort_run(3, "time limit of " + std::to_string(limit.count()) + " s exceeded");
    }
  }).detach();
}

// ---------------------------------------------------------------- TempDir

TempDir::TempDir(const std::string& prefix) {
  const char* tmp = std::getenv("TMPDIR");
  std::string pattern = std::string(tmp && *tmp ? tmp : "/tmp") + "/" + prefix + "-XXXXXX";
  if (::mkdtemp(pattern.data()) == nullptr) return;
  path_ = pattern;
  std::lock_guard lock(registry().mu);
  registry().dirs.push_back(path_);
}

TempDir::~TempDir() {
  if (path_.empty()) return;
  {
    std::lock_guard lock(registry().mu);
    std::erase(registry().dirs, path_);
  }
  if (keep_) {
    std::cerr << "primary-bench: kept " << path_ << std::endl;
    return;
  }
  std::error_code ec;
  fs::remove_all(path_, ec);
}

// ---------------------------------------------------------------- Child

Child Child::start(const std::vector<std::string>& argv, const std::string& log_file,
                   int death_signal, const std::vector<std::string>& env) {
  Child c;
  c.pid_ = spawn(argv, "", log_file, death_signal, env);
  if (c.pid_ < 0) c.status_ = 127;
  return c;
}

Child::~Child() {
  if (pid_ > 0 && !status_) kill_tree();
}

Child::Child(Child&& other) noexcept : pid_(other.pid_), status_(other.status_) {
  other.pid_ = -1;
  other.status_.reset();
}

Child& Child::operator=(Child&& other) noexcept {
  if (this != &other) {
    if (pid_ > 0 && !status_) kill_tree();
    pid_ = other.pid_;
    status_ = other.status_;
    other.pid_ = -1;
    other.status_.reset();
  }
  return *this;
}

bool Child::reap(bool block) {
  if (status_) return true;
  if (pid_ <= 0) return false;
  int st = 0;
  pid_t r;
  do {
    r = ::waitpid(pid_, &st, block ? 0 : WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r == 0) return false;
  status_ = r == pid_ ? (WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st)) : 127;
  remove_child(pid_);
  return true;
}

bool Child::alive() { return pid_ > 0 && !reap(false); }

bool Child::signal(int sig) { return alive() && ::kill(pid_, sig) == 0; }

std::optional<int> Child::wait_exit(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!reap(false)) {
    if (pid_ <= 0 || std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return status_;
}

void Child::kill_tree() {
  if (!alive()) return;
  const auto tree = process_tree(pid_);
  for (pid_t p : tree) ::kill(p, SIGKILL);
  reap(true);
  reap_orphans(tree);
}

void reap_orphans(const std::vector<pid_t>& pids) {
  for (pid_t p : pids) {
    for (int i = 0; i < 100; ++i) {
      const pid_t r = ::waitpid(p, nullptr, WNOHANG);
      if (r != 0) break;  // reaped, or not our child
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
}

std::optional<std::string> run_capture(const std::vector<std::string>& argv,
                                       const std::string& log_file,
                                       std::chrono::milliseconds timeout) {
  const std::string out_file = log_file + ".out";
  const pid_t pid = spawn(argv, out_file, log_file, SIGKILL);
  if (pid < 0) return std::nullopt;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  int st = 0;
  for (;;) {
    pid_t r = ::waitpid(pid, &st, WNOHANG);
    if (r == pid) break;
    if (r < 0 && errno != EINTR) {
      remove_child(pid);
      return std::nullopt;
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      for (pid_t p : process_tree(pid)) ::kill(p, SIGKILL);
      ::waitpid(pid, nullptr, 0);
      remove_child(pid);
      std::cerr << "primary-bench: " << argv[0] << " did not finish in " << timeout.count()
                << " ms" << std::endl;
      return std::nullopt;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  remove_child(pid);
  std::string out = read_text_file(out_file);
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
    std::cerr << "primary-bench: " << argv[0] << " failed; see " << log_file << std::endl;
    return std::nullopt;
  }
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return out;
}

// ---------------------------------------------------------------- /proc

namespace {

struct StatLine {
  std::string name;
  pid_t ppid = 0;
  uint64_t ticks = 0;
};

std::optional<StatLine> read_stat(pid_t pid) {
  const std::string text = read_text_file("/proc/" + std::to_string(pid) + "/stat");
  const auto open = text.find('(');
  const auto close = text.rfind(')');
  if (open == std::string::npos || close == std::string::npos || close < open) return std::nullopt;
  StatLine s;
  s.name = text.substr(open + 1, close - open - 1);
  std::istringstream in(text.substr(close + 2));
  std::vector<std::string> f;
  std::string tok;
  while (in >> tok && f.size() < 13) f.push_back(tok);
  if (f.size() < 13) return std::nullopt;
  // After "pid (comm) ": state ppid pgrp session tty tpgid flags minflt
  // cminflt majflt cmajflt utime stime.
  s.ppid = static_cast<pid_t>(std::stol(f[1]));
  s.ticks = std::stoull(f[11]) + std::stoull(f[12]);
  return s;
}

uint64_t status_kib(const std::string& file, const std::string& key) {
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(key, 0) == 0) return std::strtoull(line.c_str() + key.size(), nullptr, 10);
  return 0;
}

}  // namespace

std::vector<pid_t> process_tree(pid_t root) {
  std::multimap<pid_t, pid_t> children;  // ppid -> pid
  if (DIR* d = ::opendir("/proc")) {
    while (dirent* e = ::readdir(d)) {
      char* end = nullptr;
      const long pid = std::strtol(e->d_name, &end, 10);
      if (*end != '\0' || pid <= 0) continue;
      if (auto s = read_stat(static_cast<pid_t>(pid))) children.emplace(s->ppid, static_cast<pid_t>(pid));
    }
    ::closedir(d);
  }
  std::vector<pid_t> out = {root};
  for (size_t i = 0; i < out.size(); ++i) {
    auto [lo, hi] = children.equal_range(out[i]);
    for (auto it = lo; it != hi; ++it) out.push_back(it->second);
  }
  return out;
}

std::vector<ProcSample> sample_tree(pid_t root) {
  std::vector<ProcSample> out;
  for (pid_t pid : process_tree(root)) {
    auto s = read_stat(pid);
    if (!s) continue;
    const std::string dir = "/proc/" + std::to_string(pid);
    ProcSample p;
    p.pid = pid;
    p.name = s->name;
    p.cpu_ticks = s->ticks;
    p.rss_kib = status_kib(dir + "/status", "VmRSS:");
    p.pss_kib = status_kib(dir + "/smaps_rollup", "Pss:");
    out.push_back(p);
  }
  return out;
}

std::string read_text_file(const std::string& path) { return read_file(path).value_or(""); }

std::string self_dir() {
  std::error_code ec;
  auto exe = fs::read_symlink("/proc/self/exe", ec);
  return ec ? std::string(".") : exe.parent_path().string();
}

}  // namespace primary::bench
