#include "tests/support/process.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>

extern char** environ;

namespace primary::test {

namespace {

std::string resolve(const std::string& name) {
  if (name.find('/') != std::string::npos) return name;
  const char* path = std::getenv("PATH");
  std::string dirs = path ? path : "/usr/local/bin:/usr/bin:/bin";
  size_t start = 0;
  while (start <= dirs.size()) {
    size_t end = dirs.find(':', start);
    if (end == std::string::npos) end = dirs.size();
    std::string candidate = dirs.substr(start, end - start) + "/" + name;
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
    start = end + 1;
  }
  return name;  // exec fails and the child exits 127
}

}  // namespace

std::string bin(const std::string& name) { return std::string(PRIMARY_BIN_DIR) + "/" + name; }

Process Process::start(std::vector<std::string> argv, std::map<std::string, std::string> extra_env,
                       std::string log_file) {
  // Everything the child needs is built before fork: after fork only
  // async-signal-safe calls are allowed.
  std::string exe = resolve(argv.at(0));
  std::vector<char*> cargv;
  for (std::string& a : argv) cargv.push_back(a.data());
  cargv.push_back(nullptr);

  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) {
    std::string entry = *e;
    std::string name = entry.substr(0, entry.find('='));
    if (!extra_env.count(name)) env.push_back(entry);
  }
  for (const auto& [name, value] : extra_env) env.push_back(name + "=" + value);
  std::vector<char*> cenv;
  for (std::string& e : env) cenv.push_back(e.data());
  cenv.push_back(nullptr);

  int log_fd = -1;
  if (!log_file.empty()) {
    log_fd = open(log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (log_fd < 0) std::perror(("Process: open " + log_file).c_str());
  }
  std::string exec_failed = "Process: cannot exec " + exe + "\n";

  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);  // the parent died before prctl
    sigset_t all;
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, nullptr);
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    sigaction(SIGPIPE, &dfl, nullptr);
    if (log_fd >= 0) {
      dup2(log_fd, STDOUT_FILENO);
      dup2(log_fd, STDERR_FILENO);
    }
    execve(exe.c_str(), cargv.data(), cenv.data());
    ssize_t ignored = write(STDERR_FILENO, exec_failed.data(), exec_failed.size());
    (void)ignored;
    _exit(127);
  }
  if (log_fd >= 0) close(log_fd);
  Process p;
  if (pid < 0) {
    std::perror("Process: fork");
    p.status_ = 127;
    return p;
  }
  p.pid_ = pid;
  return p;
}

Process::~Process() {
  if (pid_ > 0 && !status_) kill();
}

Process::Process(Process&& other) noexcept : pid_(other.pid_), status_(other.status_) {
  other.pid_ = -1;
  other.status_.reset();
}

Process& Process::operator=(Process&& other) noexcept {
  if (this != &other) {
    if (pid_ > 0 && !status_) kill();
    pid_ = other.pid_;
    status_ = other.status_;
    other.pid_ = -1;
    other.status_.reset();
  }
  return *this;
}

bool Process::reap(bool block) {
  if (status_) return true;
  if (pid_ <= 0) return false;
  int st = 0;
  pid_t r;
  do {
    r = waitpid(pid_, &st, block ? 0 : WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r == pid_) {
    status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    return true;
  }
  if (r < 0) status_ = 127;  // not our child any more: treat as gone
  return r < 0;
}

bool Process::signal(int sig) {
  if (pid_ <= 0 || reap(false)) return false;
  return ::kill(pid_, sig) == 0;
}

bool Process::alive() { return pid_ > 0 && !reap(false); }

std::optional<int> Process::wait_exit(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!reap(false)) {
    if (pid_ <= 0 || std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return status_;
}

int Process::kill() {
  if (pid_ <= 0) return status_.value_or(127);
  if (!reap(false)) {
    ::kill(pid_, SIGKILL);
    reap(true);
  }
  return *status_;
}

}  // namespace primary::test
