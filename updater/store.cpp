#include "updater/store.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "common/crypto.hpp"
#include "common/process.hpp"
#include "common/text.hpp"
#include "updater/net.hpp"

namespace primary::updater {
namespace {

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

Status ArtifactStore::commit(const Release& r, const std::string& path) {
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
  return {};
}

Status ArtifactStore::adopt(const Release& r, const std::string& path) {
  if (has(r.sha256)) {
    ::unlink(path.c_str());
    return {};
  }
  return commit(r, path);
}

Result<DownloadStats> ArtifactStore::download(const Release& r, const std::string& url,
                                              const std::function<bool()>& keepalive) {
  auto net = net_api();
  if (!net) return net.error();
  DownloadStats stats;
  const std::string part = partial_path(r.sha256);
  // Two attempts at most: a resume the server refuses starts over once.
  for (int attempt = 0; attempt < 2; ++attempt) {
    int64_t have = std::max<int64_t>(file_size(part), 0);
    if (have > r.size) {
      ::truncate(part.c_str(), 0);
      have = 0;
    }
    const int fd = ::open(part.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (fd < 0) return Error{Code::Internal, errno_text("cannot open", part)};
    stats.resumed_from = have;
    FileTransfer t;
    t.written = have;
    if (have < r.size) t = (*net)->fetch_into(url, fd, have, r.size, keepalive);
    ::fsync(fd);
    ::close(fd);
    stats.received = t.written - have;
    if (t.range_refused && have > 0 && attempt == 0) {
      ::truncate(part.c_str(), 0);  // the server cannot resume: start over
      continue;
    }
    if (t.overflow) {
      ::unlink(part.c_str());
      return Error{Code::BadRequest, "the server sent more than the signed size " + std::to_string(r.size)};
    }
    if (t.write_errno) {
      errno = t.write_errno;
      return Error{Code::Internal, errno_text("cannot write", part)};
    }
    if (!t.error.empty())
      return Error{Code::Unavailable, "download of " + url + " failed after " + std::to_string(t.written) +
                                          " of " + std::to_string(r.size) + " bytes: " + t.error};
    if (auto committed = commit(r, part); !committed) return committed.error();
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
  std::string out = offset < *size ? read_at(fd, offset, std::min(length, *size - offset)) : std::string();
  ::close(fd);
  return out;
}

Result<std::string> fetch_url(const std::string& url, int64_t max_bytes) {
  auto net = net_api();
  if (!net) return net.error();
  return (*net)->fetch_url(url, max_bytes);
}

std::string sibling_url(const std::string& feed_url, const std::string& file) {
  std::string base = feed_url;
  if (auto q = base.find_first_of("?#"); q != std::string::npos) base.resize(q);
  if (auto slash = base.rfind('/'); slash != std::string::npos) base.resize(slash + 1);
  base += url_component(file);
  return base;
}

}  // namespace primary::updater
