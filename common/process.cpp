#include "common/process.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <pthread.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <fstream>
#include <sstream>
#include <csignal>
#include <cstring>

namespace primary {
namespace {
std::atomic<bool> g_stop{false};
std::atomic<bool> g_reload{false};
void on_stop(int) { g_stop.store(true); }
void on_reload(int) { g_reload.store(true); }
}  // namespace

void install_stop_signals() {
  struct sigaction sa;
  std::memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_stop;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  std::signal(SIGPIPE, SIG_IGN);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

void unblock_stop_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
}

const std::atomic<bool>& stop_requested() { return g_stop; }

std::atomic<bool>& install_reload_signal() {
  struct sigaction sa;
  std::memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_reload;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGHUP, &sa, nullptr);
  return g_reload;
}

FileStamp file_stamp(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return {};
  return FileStamp{static_cast<uint64_t>(st.st_dev), static_cast<uint64_t>(st.st_ino), static_cast<int64_t>(st.st_size),
                   static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec};
}

std::optional<std::string> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream out;
  out << in.rdbuf();
  if (in.bad()) return std::nullopt;
  return out.str();
}

Status write_new_file(const std::string& path, const std::string& text, mode_t mode) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) return Error{Code::Internal, "cannot create " + path + ": " + std::strerror(errno)};
  const bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) && ::fsync(fd) == 0;
  ::close(fd);
  if (!ok) return Error{Code::Internal, "cannot write " + path};
  return {};
}

Status write_file_atomic(const std::string& path, const std::string& text, mode_t mode) {
  std::string tmp = path + ".XXXXXX";
  const int fd = ::mkostemp(tmp.data(), O_CLOEXEC);  // mode 0600 until fchmod
  if (fd < 0) return Error{Code::Internal, "cannot create a file next to " + path + ": " + std::strerror(errno)};
  bool ok = ::fchmod(fd, mode) == 0;
  for (size_t done = 0; ok && done < text.size();) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    ok = n > 0;
    if (ok) done += static_cast<size_t>(n);
  }
  ok = ok && ::fsync(fd) == 0;
  const int saved = errno;
  ok = ::close(fd) == 0 && ok;
  if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string why = std::strerror(ok ? errno : saved);
    ::unlink(tmp.c_str());
    return Error{Code::Internal, "cannot write " + path + ": " + why};
  }
  return {};
}

std::optional<std::string> endpoints_file_value(const std::string& file, const std::string& key) {
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(key + "=", 0) == 0) return line.substr(key.size() + 1);
  return std::nullopt;
}

std::vector<std::string> with_bound_ports(const std::vector<std::string>& endpoints,
                                          const std::string& endpoints_file, const std::string& key) {
  const auto bound = endpoints_file.empty() ? std::nullopt : endpoints_file_value(endpoints_file, key);
  const auto bound_colon = bound ? bound->rfind(':') : std::string::npos;
  const std::string bound_port = bound_colon == std::string::npos ? "" : bound->substr(bound_colon + 1);
  if (bound_port.empty() || bound_port.find_first_not_of("0123456789") != std::string::npos) return endpoints;
  std::vector<std::string> out;
  for (const auto& ep : endpoints) {
    const auto colon = ep.rfind(':');
    const bool wildcard = ep.starts_with("tcp://") && colon != std::string::npos &&
                          (ep.compare(colon + 1, std::string::npos, "*") == 0 ||
                           ep.compare(colon + 1, std::string::npos, "0") == 0);
    out.push_back(wildcard ? ep.substr(0, colon + 1) + bound_port : ep);
  }
  return out;
}

std::string read_at(int fd, int64_t offset, int64_t length) {
  std::string out(static_cast<size_t>(std::max<int64_t>(length, 0)), '\0');
  size_t done = 0;
  while (done < out.size()) {
    const ssize_t n = ::pread(fd, out.data() + done, out.size() - done, static_cast<off_t>(offset + static_cast<int64_t>(done)));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    done += static_cast<size_t>(n);
  }
  out.resize(done);
  return out;
}

int64_t unix_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::vector<std::string> split_list(const std::string& text, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find(sep, start);
    if (end == std::string::npos) end = text.size();
    if (end > start) out.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

}  // namespace primary
