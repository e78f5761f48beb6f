// primary-updater-net.so: the libcurl and libarchive side of the updater
// (net.hpp says why it is a module). Loaded by net_loader.cpp.
#include <curl/curl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <mutex>

#include "updater/net.hpp"

namespace primary::updater {
namespace {

void curl_init_once() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
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

std::string curl_error(CURLcode rc, const char* errbuf, long status) {
  std::string why = errbuf[0] ? std::string(errbuf) : std::string(curl_easy_strerror(rc));
  if (status) why += " (HTTP " + std::to_string(status) + ")";
  return why;
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
  int64_t limit = 0;  // the release's size: more than that is an error
  FileTransfer* out;
  const std::function<bool()>* keepalive;
  std::chrono::steady_clock::time_point last_keepalive = std::chrono::steady_clock::now();
};

size_t file_write(char* ptr, size_t size, size_t n, void* user) {
  auto* sink = static_cast<FileSink*>(user);
  const size_t bytes = size * n;
  if (sink->out->written + static_cast<int64_t>(bytes) > sink->limit) {
    sink->out->overflow = true;
    return 0;
  }
  size_t done = 0;
  while (done < bytes) {
    const ssize_t w = ::write(sink->fd, ptr + done, bytes - done);
    if (w <= 0) {
      if (w < 0 && errno == EINTR) continue;
      sink->out->write_errno = w < 0 ? errno : ENOSPC;
      return 0;
    }
    done += static_cast<size_t>(w);
  }
  sink->out->written += static_cast<int64_t>(bytes);
  return bytes;
}

int file_progress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  auto* sink = static_cast<FileSink*>(user);
  const auto now = std::chrono::steady_clock::now();
  if (*sink->keepalive && now - sink->last_keepalive > std::chrono::seconds(5)) {
    sink->last_keepalive = now;
    if (!(*sink->keepalive)()) return 1;  // abort
  }
  return 0;
}

Result<std::string> fetch_url(const std::string& url, int64_t max_bytes) {
  curl_init_once();
  MemorySink sink;
  sink.limit = max_bytes;
  char errbuf[CURL_ERROR_SIZE];
  CURL* c = curl_easy_init();
  if (!c) return Error{Code::Internal, "libcurl cannot start a transfer"};
  common_options(c, url, errbuf);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, memory_write);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &sink);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 120000L);
  const CURLcode rc = curl_easy_perform(c);
  long status = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_cleanup(c);
  if (sink.overflow) return Error{Code::BadRequest, url + " is larger than " + std::to_string(max_bytes) + " bytes"};
  if (rc != CURLE_OK) return Error{Code::Unavailable, "cannot fetch " + url + ": " + curl_error(rc, errbuf, status)};
  return std::move(sink.data);
}

FileTransfer fetch_into(const std::string& url, int fd, int64_t have, int64_t limit,
                        const std::function<bool()>& keepalive) {
  curl_init_once();
  FileTransfer out;
  out.written = have;
  FileSink sink{fd, limit, &out, &keepalive};
  char errbuf[CURL_ERROR_SIZE];
  CURL* c = curl_easy_init();
  if (!c) {
    out.error = "libcurl cannot start a transfer";
    return out;
  }
  common_options(c, url, errbuf);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, file_write);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &sink);
  curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, file_progress);
  curl_easy_setopt(c, CURLOPT_XFERINFODATA, &sink);
  curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
  if (have > 0) curl_easy_setopt(c, CURLOPT_RESUME_FROM_LARGE, static_cast<curl_off_t>(have));
  const CURLcode rc = curl_easy_perform(c);
  long status = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_cleanup(c);
  out.range_refused = rc == CURLE_RANGE_ERROR;
  if (rc != CURLE_OK) out.error = curl_error(rc, errbuf, status);
  return out;
}

const NetApi kApi{&fetch_url, &fetch_into, &read_bundle};

}  // namespace
}  // namespace primary::updater

// The one symbol net_loader.cpp looks up.
extern "C" __attribute__((visibility("default"))) const primary::updater::NetApi* primary_updater_net_api() {
  return &primary::updater::kApi;
}
