// Backups of a Primary Server: the file format, the consistent Redis
// snapshot that goes into it, and putting it all back.
//
// A backup is one file holding everything a server needs to carry on where
// it was: every Redis key of the product (prefix `ps:`), the key files of
// DATA/keys (the lease key and the CURVE keys among them: the file is a
// secret) and, optionally, the updater's content-addressed artifacts.
//
// Format, version 2 (integers big-endian):
//
//     "PSBACKUP" | u32 format version (2) | u32 data layout version
//     record*    | u8 kind | u32 name length | name | u64 data length | data
//     end        | u8 'Z'  | u32 0 | u64 32 | SHA-256 of every byte before it
//
// Records: one manifest first ('M', a MessagePack map, informational),
// then Redis keys ('R': name = key, data = u64 absolute expiry in Unix ms
// or 0, then the key's DUMP payload), key files ('K': name = file name in
// DATA/keys) and artifacts ('A': name = path under DATA/updates/objects).
// The end record has a fixed size, so the checksum is checked before any
// record is trusted: a truncated or altered file is refused as a whole.
//
// The layout version (common/layout.hpp) is the one the Redis keys are in;
// restore refuses a newer one before touching anything and migrates an
// older one once the keys are back. Version 1, written before the layout
// was versioned, has no layout field (its keys are layout 0); it is still
// read.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/errors.hpp"
#include "common/redis.hpp"
#include "common/value.hpp"

namespace primary::backup {

inline constexpr uint32_t kFormatVersion = 2;
inline constexpr std::string_view kKeyPrefix = "ps:";  // every key of common/keys.hpp

struct RedisKey {
  std::string name;
  uint64_t expires_at_ms = 0;  // 0: no expiry
  std::string dump;            // DUMP payload (RDB encoding of the running Redis)
};

// The product's Redis state at one instant.
struct Snapshot {
  int64_t taken_ms = 0;  // Redis's own clock
  std::string redis_version;
  std::vector<RedisKey> keys;
  int64_t reservations = 0;  // members of ps:res
  int64_t purchased = 0;
  std::string serial;  // "" when none registered
};

// Takes every `ps:` key with its expiry in one Lua script, which Redis runs
// atomically: the snapshot is one point in time for all keys, however many.
// Redis serves nobody else while it runs (about a second per ~100 MB of
// state), and holds the reply in memory until sent.
Result<Snapshot> snapshot(Redis& redis);

// How many `ps:` keys the Redis holds.
Result<int64_t> count_product_keys(Redis& redis);

// Puts the keys back in one MULTI/EXEC: first deleting every `ps:` key
// when `replace`, then one RESTORE per key (a key whose expiry has passed
// is skipped by Redis). With appendfsync always, EXEC's reply comes after
// the whole transaction is fsynced to the AOF. If any RESTORE is refused
// (a payload from a newer Redis, a key that exists), the keys it did
// restore are deleted again and the error names the first refused key.
// Returns the number of keys restored.
Result<size_t> restore(Redis& redis, const std::vector<RedisKey>& keys, bool replace);

// ---- the file ----

// Writes a backup through a temporary file next to `path` (mode 0600),
// renamed into place by commit(); dropped without commit, it leaves nothing.
class Writer {
 public:
  // `layout`: the data layout version of the keys the file will hold.
  static Result<std::unique_ptr<Writer>> create(const std::string& path, uint32_t layout);
  ~Writer();
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;

  Status manifest(const Value& map);
  Status redis_key(const RedisKey& key);
  Status key_file(const std::string& name, std::string_view data);
  // Streams the file at `source` in as artifact `name`; when `expect_sha256`
  // (64 hex) is given and the content does not match it, nothing is added
  // and the result is false (a file still being written, or damaged).
  Result<bool> artifact(const std::string& name, const std::string& source,
                        const std::string& expect_sha256 = "");
  // Writes the checksum, fsyncs and renames; returns the SHA-256 (hex).
  Result<std::string> commit();
  uint64_t bytes() const { return written_; }

 private:
  Writer() = default;
  Status record(char kind, std::string_view name, std::string_view data);
  Status put(std::string_view bytes);
  struct Hash;
  std::unique_ptr<Hash> hash_;
  std::string path_, tmp_;
  int fd_ = -1;
  uint64_t written_ = 0;
  bool committed_ = false;
};

struct Artifact {
  std::string name;  // relative path, checked: no "..", not absolute
  uint64_t offset = 0, size = 0;  // of its data in the backup file
};

struct Contents {
  uint32_t version = 0;  // format
  uint32_t layout = 0;   // of the Redis keys; 0 in format 1
  Value manifest;  // a map
  std::vector<RedisKey> redis;
  std::vector<std::pair<std::string, std::string>> key_files;  // name, content
  std::vector<Artifact> artifacts;
  uint64_t bytes = 0;
  std::string sha256;  // hex
};

// Reads a backup: checks the magic, the format version and the checksum
// over the whole file first, then the records (names checked). The error
// message is one line saying what is wrong ("truncated", "checksum
// mismatch", "format version 3 is not one this program reads (1..2)").
Result<Contents> read(const std::string& path);

// Copies artifact `a` of the backup at `path` to `dest` (temp + rename, 0600).
Status extract_artifact(const std::string& path, const Artifact& a, const std::string& dest);

// True for a plain file name: no '/', not "." or "..", not empty.
bool safe_file_name(std::string_view name);
// True for a relative path of safe names joined by '/'.
bool safe_relative_path(std::string_view path);

}  // namespace primary::backup
