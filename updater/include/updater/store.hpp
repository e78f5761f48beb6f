// The updater's artifact store: verified release files, content-addressed
// under DIR/objects/<sha256>, and partial downloads under DIR/partial/.
//
// A file enters objects/ only by rename(2) after its size and SHA-256 were
// checked against the vendor-signed release, so a half-written or tampered
// file is never served. Partial downloads keep their bytes across failures
// (and process restarts), so the next attempt resumes with an HTTP Range
// request instead of starting over.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "common/errors.hpp"
#include "common/release.hpp"

namespace primary::updater {

struct DownloadStats {
  int64_t resumed_from = 0;  // bytes already present before this attempt
  int64_t received = 0;      // bytes received in this attempt
};

class ArtifactStore {
 public:
  // Creates DIR/objects and DIR/partial when missing; fails with a clear line.
  static Result<ArtifactStore> open(const std::string& dir);

  const std::string& dir() const { return dir_; }
  std::string object_path(const std::string& sha256) const;
  std::string partial_path(const std::string& sha256) const;
  bool has(const std::string& sha256) const;

  // Downloads `url` into the partial file for `r` (resuming what is there),
  // verifies size and hash and moves it into objects/. `keepalive` is called
  // now and then during the transfer (e.g. to renew a lock); returning false
  // aborts it. The error message is the reason, for the activity log.
  Result<DownloadStats> download(const Release& r, const std::string& url,
                                 const std::function<bool()>& keepalive);

  // Verifies a complete file elsewhere (e.g. unpacked from a bundle) against
  // `r` and moves it into objects/. The source is removed either way.
  Status adopt(const Release& r, const std::string& path);

  // Reads up to `length` bytes at `offset` of a stored object; nullopt when
  // the object is not stored.
  std::optional<std::string> read(const std::string& sha256, int64_t offset, int64_t length,
                                  int64_t* size);

 private:
  explicit ArtifactStore(std::string dir) : dir_(std::move(dir)) {}
  Status commit(const Release& r, const std::string& path);

  std::string dir_;
};

// Fetches a whole (small) resource into memory, at most `max_bytes`.
Result<std::string> fetch_url(const std::string& url, int64_t max_bytes);

// `file` resolved against the folder of `feed_url` ("http://h/a/feed" + "x" ->
// "http://h/a/x"); the file name is percent-encoded.
std::string sibling_url(const std::string& feed_url, const std::string& file);

}  // namespace primary::updater
