#include "updater/bundle.hpp"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>

namespace primary::updater {
namespace {

constexpr int64_t kMaxFeedBytes = 64 * 1024 * 1024;
constexpr size_t kMaxEntries = 10000;

struct ArchiveWriter {
  archive* a = archive_write_new();
  ~ArchiveWriter() { archive_write_free(a); }
};
struct ArchiveReader {
  archive* a = archive_read_new();
  ~ArchiveReader() { archive_read_free(a); }
};

Error fail(std::string what) { return Error{Code::BadRequest, std::move(what)}; }

Status add_entry(archive* a, const std::string& name, int64_t size,
                 const std::function<bool(archive*)>& body) {
  std::unique_ptr<archive_entry, decltype(&archive_entry_free)> e(archive_entry_new(), archive_entry_free);
  archive_entry_set_pathname(e.get(), name.c_str());
  archive_entry_set_size(e.get(), size);
  archive_entry_set_filetype(e.get(), AE_IFREG);
  archive_entry_set_perm(e.get(), 0644);
  archive_entry_set_mtime(e.get(), ::time(nullptr), 0);
  if (archive_write_header(a, e.get()) != ARCHIVE_OK) return fail(archive_error_string(a));
  if (!body(a)) return fail(std::string("writing ") + name + ": " + (archive_error_string(a) ? archive_error_string(a) : "short write"));
  return {};
}

}  // namespace

Status write_bundle(const std::string& out, const std::string& feed,
                    const std::vector<std::pair<std::string, std::string>>& files) {
  const std::string tmp = out + ".tmp." + std::to_string(::getpid());
  {
    ArchiveWriter w;
    archive_write_set_format_pax_restricted(w.a);
    if (archive_write_open_filename(w.a, tmp.c_str()) != ARCHIVE_OK)
      return fail("cannot write " + tmp + ": " + archive_error_string(w.a));
    Status result = add_entry(w.a, "feed", static_cast<int64_t>(feed.size()), [&](archive* a) {
      return archive_write_data(a, feed.data(), feed.size()) == static_cast<la_ssize_t>(feed.size());
    });
    for (const auto& [name, src] : files) {
      if (!result) break;
      int fd = ::open(src.c_str(), O_RDONLY | O_CLOEXEC);
      struct stat st {};
      if (fd < 0 || ::fstat(fd, &st) != 0) {
        if (fd >= 0) ::close(fd);
        result = fail("cannot read " + src + ": " + std::strerror(errno));
        break;
      }
      result = add_entry(w.a, "files/" + name, static_cast<int64_t>(st.st_size), [&](archive* a) {
        std::string buf(1 << 20, '\0');
        while (true) {
          ssize_t n = ::read(fd, buf.data(), buf.size());
          if (n < 0 && errno == EINTR) continue;
          if (n < 0) return false;
          if (n == 0) return true;
          if (archive_write_data(a, buf.data(), static_cast<size_t>(n)) != n) return false;
        }
      });
      ::close(fd);
    }
    if (result && archive_write_close(w.a) != ARCHIVE_OK) result = fail(archive_error_string(w.a));
    if (!result) {
      ::unlink(tmp.c_str());
      return result;
    }
  }
  if (::rename(tmp.c_str(), out.c_str()) != 0) {
    ::unlink(tmp.c_str());
    return fail("cannot rename to " + out + ": " + std::strerror(errno));
  }
  return {};
}

Result<UnpackedBundle> read_bundle(const std::string& path, const std::string& staging_dir) {
  ArchiveReader r;
  archive_read_support_format_tar(r.a);
  archive_read_support_format_gnutar(r.a);
  archive_read_support_filter_none(r.a);
  archive_read_support_filter_gzip(r.a);
  if (archive_read_open_filename(r.a, path.c_str(), 1 << 16) != ARCHIVE_OK)
    return fail("cannot open bundle " + path + ": " + archive_error_string(r.a));
  UnpackedBundle out;
  bool have_feed = false;
  auto cleanup = [&] {
    for (auto& [name, staged] : out.files) ::unlink(staged.c_str());
  };
  archive_entry* e = nullptr;
  size_t entries = 0;
  int rc;
  while ((rc = archive_read_next_header(r.a, &e)) == ARCHIVE_OK) {
    if (++entries > kMaxEntries) {
      cleanup();
      return fail("bundle has more than " + std::to_string(kMaxEntries) + " entries");
    }
    const char* raw = archive_entry_pathname(e);
    const std::string name = raw ? raw : "";
    const bool regular = archive_entry_filetype(e) == AE_IFREG;
    if (name == "files/" || name == "files") continue;  // a directory entry
    if (!regular) {
      cleanup();
      return fail("bundle entry '" + name + "' is not a regular file");
    }
    if (name == "feed") {
      if (have_feed || archive_entry_size(e) > kMaxFeedBytes) {
        cleanup();
        return fail("bundle has a second or oversized feed");
      }
      std::string feed(static_cast<size_t>(archive_entry_size(e)), '\0');
      if (archive_read_data(r.a, feed.data(), feed.size()) != static_cast<la_ssize_t>(feed.size())) {
        cleanup();
        return fail("bundle feed is truncated");
      }
      out.feed = std::move(feed);
      have_feed = true;
      continue;
    }
    const std::string file = name.rfind("files/", 0) == 0 ? name.substr(6) : "";
    if (file.empty() || file.find('/') != std::string::npos || file == "." || file == ".." ||
        out.files.count(file)) {
      cleanup();
      return fail("unexpected bundle entry '" + name + "'");
    }
    std::string staged = staging_dir + "/import-XXXXXX";
    int fd = ::mkostemp(staged.data(), O_CLOEXEC);
    if (fd < 0 || ::fchmod(fd, 0640) != 0) {
      const std::string why = std::strerror(errno);
      if (fd >= 0) {
        ::close(fd);
        ::unlink(staged.c_str());
      }
      cleanup();
      return Error{Code::Internal, "cannot stage a file in " + staging_dir + ": " + why};
    }
    out.files[file] = staged;
    if (archive_read_data_into_fd(r.a, fd) != ARCHIVE_OK) {
      ::close(fd);
      cleanup();
      return fail("bundle entry '" + name + "' is truncated or corrupt: " + archive_error_string(r.a));
    }
    ::close(fd);
  }
  if (rc != ARCHIVE_EOF) {
    cleanup();
    return fail(std::string("bundle is corrupt: ") + (archive_error_string(r.a) ? archive_error_string(r.a) : "bad header"));
  }
  if (!have_feed) {
    cleanup();
    return fail("bundle has no feed entry");
  }
  return out;
}

}  // namespace primary::updater
