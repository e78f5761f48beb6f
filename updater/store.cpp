#include "updater/store.hpp"

#include <curl/curl.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <mutex>

#include "common/crypto.hpp"

namespace primary::updater {
namespace {

void curl_init_once() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

std::string errno_text(const std::string& what, const std::string& path) {
  return what + " " + path + ": " + std::strerror(errno);
}

bool make_dir(const std::string& path) { return ::mkdir(path.c_str(), 0750) == 0 || errno == EEXIST; }

int64_t file_size(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? static_cast<int64_t>(st.st_size) : -1;
}

bool fsync_dir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return false;
  const bool ok = ::fsync(fd) == 0;
  ::close(fd);
  return ok;
}

// Shared libcurl settings: protocols, timeouts, redirects.
void common_options(CURL* c, const std::string& url, char* errbuf) {
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https,file");
  curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(c, CURLOPT_MAXREDIRS, 5L);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);  // abort a transfer stalled
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 30L);  // for 30 s
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_FAILONERROR, 1L);
  curl_easy_setopt(c, CURLOPT_USERAGENT, "primary-updater/" PRIMARY_VERSION);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
  errbuf[0] = '\0';
}

std::string curl_error(CURLcode rc, const char* errbuf) {
  return errbuf[0] ? std::string(errbuf) : std::string(curl_easy_strerror(rc));
}

struct MemorySink {
  std::string data;
  int64_t limit = 0;
  bool overflow = false;
};

size_t memory_write(char* ptr, size_t size, size_t n, void* user) {
  auto* sink = static_cast<MemorySink*>(user);
  const size_t bytes = size * n;
  if (static_cast<int64_t>(sink->data.size() + bytes) > sink->limit) {
    sink->overflow = true;
    return 0;
  }
  sink->data.append(ptr, bytes);
  return bytes;
}

struct FileSink {
  int fd = -1;
  int64_t written = 0;  // total bytes in the file
  int64_t limit = 0;    // the release's size: more than that is an error
  bool overflow = false;
  bool write_failed = false;
  std::function<bool()> keepalive;
  std::chrono::steady_clock::time_point last_keepalive = std::chrono::steady_clock::now();
};

size_t file_write(char* ptr, size_t size, size_t n, void* user) {
  auto* sink = static_cast<FileSink*>(user);
  const size_t bytes = size * n;
  if (sink->written + static_cast<int64_t>(bytes) > sink->limit) {
    sink->overflow = true;
    return 0;
  }
  size_t done = 0;
  while (done < bytes) {
    ssize_t w = ::write(sink->fd, ptr + done, bytes - done);
    if (w <= 0) {
      if (w < 0 && errno == EINTR) continue;
      sink->write_failed = true;
      return 0;
    }
    done += static_cast<size_t>(w);
  }
  sink->written += static_cast<int64_t>(bytes);
  return bytes;
}

int file_progress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  auto* sink = static_cast<FileSink*>(user);
  const auto now = std::chrono::steady_clock::now();
  if (sink->keepalive && now - sink->last_keepalive > std::chrono::seconds(5)) {
    sink->last_keepalive = now;
    if (!sink->keepalive()) return 1;  // abort
  }
  return 0;
}

}  // namespace

Result<ArtifactStore> ArtifactStore::open(const std::string& dir) {
  if (dir.empty()) return Error{Code::Internal, "no update store directory given"};
  for (const std::string& d : {dir, dir + "/objects", dir + "/partial"})
    if (!make_dir(d)) return Error{Code::Internal, errno_text("cannot create", d)};
  if (::access((dir + "/partial").c_str(), W_OK) != 0)
    return Error{Code::Internal, errno_text("cannot write to", dir + "/partial")};
  return ArtifactStore(dir);
}

std::string ArtifactStore::object_path(const std::string& sha256) const { return dir_ + "/objects/" + sha256; }
std::string ArtifactStore::partial_path(const std::string& sha256) const { return dir_ + "/partial/" + sha256; }

bool ArtifactStore::has(const std::string& sha256) const {
  return valid_sha256_hex(sha256) && ::access(object_path(sha256).c_str(), R_OK) == 0;
}

std::optional<Error> ArtifactStore::commit(const Release& r, const std::string& path) {
  const int64_t size = file_size(path);
  if (size != r.size) {
    ::unlink(path.c_str());
    return Error{Code::BadRequest, "size mismatch: got " + std::to_string(size) + " bytes, signed " +
                                       std::to_string(r.size)};
  }
  auto hash = sha256_file_hex(path);
  if (!hash || *hash != r.sha256) {
    ::unlink(path.c_str());
    return Error{Code::BadRequest, "sha256 mismatch: got " + hash.value_or("(unreadable)") + ", signed " + r.sha256};
  }
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
  if (::rename(path.c_str(), object_path(r.sha256).c_str()) != 0)
    return Error{Code::Internal, errno_text("cannot move into the store", path)};
  fsync_dir(dir_ + "/objects");
  return std::nullopt;
}

std::optional<Error> ArtifactStore::adopt(const Release& r, const std::string& path) {
  if (has(r.sha256)) {
    ::unlink(path.c_str());
    return std::nullopt;
  }
  return commit(r, path);
}

Result<DownloadStats> ArtifactStore::download(const Release& r, const std::string& url,
                                              const std::function<bool()>& keepalive) {
  curl_init_once();
  DownloadStats stats;
  const std::string part = partial_path(r.sha256);
  // Two attempts at most: a resume the server refuses starts over once.
  for (int attempt = 0; attempt < 2; ++attempt) {
    int64_t have = std::max<int64_t>(file_size(part), 0);
    if (have > r.size) {
      ::truncate(part.c_str(), 0);
      have = 0;
    }
    FileSink sink;
    sink.fd = ::open(part.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (sink.fd < 0) return Error{Code::Internal, errno_text("cannot open", part)};
    sink.written = have;
    sink.limit = r.size;
    sink.keepalive = keepalive;
    stats.resumed_from = have;
    CURLcode rc = CURLE_OK;
    long status = 0;
    char errbuf[CURL_ERROR_SIZE];
    if (have < r.size) {
      CURL* c = curl_easy_init();
      common_options(c, url, errbuf);
      curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, file_write);
      curl_easy_setopt(c, CURLOPT_WRITEDATA, &sink);
      curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, file_progress);
      curl_easy_setopt(c, CURLOPT_XFERINFODATA, &sink);
      curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
      if (have > 0) curl_easy_setopt(c, CURLOPT_RESUME_FROM_LARGE, static_cast<curl_off_t>(have));
      rc = curl_easy_perform(c);
      curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
      curl_easy_cleanup(c);
    }
    ::fsync(sink.fd);
    ::close(sink.fd);
    stats.received = sink.written - have;
    if (rc == CURLE_RANGE_ERROR && have > 0 && attempt == 0) {
      ::truncate(part.c_str(), 0);  // the server cannot resume: start over
      continue;
    }
    if (sink.overflow) {
      ::unlink(part.c_str());
      return Error{Code::BadRequest, "the server sent more than the signed size " + std::to_string(r.size)};
    }
    if (sink.write_failed) return Error{Code::Internal, errno_text("cannot write", part)};
    if (rc != CURLE_OK) {
      std::string why = curl_error(rc, errbuf);
      if (status) why += " (HTTP " + std::to_string(status) + ")";
      return Error{Code::Unavailable, "download of " + url + " failed after " + std::to_string(sink.written) +
                                          " of " + std::to_string(r.size) + " bytes: " + why};
    }
    if (auto err = commit(r, part)) return *err;
    return stats;
  }
  return Error{Code::Unavailable, "download of " + url + " could not be resumed"};
}

std::optional<std::string> ArtifactStore::read(const std::string& sha256, int64_t offset, int64_t length,
                                               int64_t* size) {
  if (!valid_sha256_hex(sha256)) return std::nullopt;
  int fd = ::open(object_path(sha256).c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    return std::nullopt;
  }
  *size = static_cast<int64_t>(st.st_size);
  std::string out;
  if (offset < *size) {
    out.resize(static_cast<size_t>(std::min(length, *size - offset)));
    size_t done = 0;
    while (done < out.size()) {
      ssize_t n = ::pread(fd, out.data() + done, out.size() - done, static_cast<off_t>(offset) + static_cast<off_t>(done));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      done += static_cast<size_t>(n);
    }
    out.resize(done);
  }
  ::close(fd);
  return out;
}

Result<std::string> fetch_url(const std::string& url, int64_t max_bytes) {
  curl_init_once();
  MemorySink sink;
  sink.limit = max_bytes;
  char errbuf[CURL_ERROR_SIZE];
  CURL* c = curl_easy_init();
  common_options(c, url, errbuf);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, memory_write);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &sink);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 120000L);
  const CURLcode rc = curl_easy_perform(c);
  long status = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_cleanup(c);
  if (sink.overflow) return Error{Code::BadRequest, url + " is larger than " + std::to_string(max_bytes) + " bytes"};
  if (rc != CURLE_OK) {
    std::string why = curl_error(rc, errbuf);
    if (status) why += " (HTTP " + std::to_string(status) + ")";
    return Error{Code::Unavailable, "cannot fetch " + url + ": " + why};
  }
  return std::move(sink.data);
}

std::string sibling_url(const std::string& feed_url, const std::string& file) {
  std::string base = feed_url;
  if (auto q = base.find_first_of("?#"); q != std::string::npos) base.resize(q);
  if (auto slash = base.rfind('/'); slash != std::string::npos) base.resize(slash + 1);
  static const char* hex = "0123456789ABCDEF";
  for (unsigned char ch : file) {
    if (std::isalnum(ch) || ch == '-' || ch == '_' || ch == '.' || ch == '~') {
      base += static_cast<char>(ch);
    } else {
      base += '%';
      base += hex[ch >> 4];
      base += hex[ch & 15];
    }
  }
  return base;
}

}  // namespace primary::updater
