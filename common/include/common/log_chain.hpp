// The activity log as a hash chain, with signed checkpoints
// (docs/protocol.md "Activity log chain"; docs/security.md says what it
// proves). Entries are appended by common/lua/events.lua; checkpoints by the
// admin worker (admin/log_checkpoint.hpp); `primaryctl log verify` checks a
// run of entries read from the stream or from the rotated files.
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/redis.hpp"
#include "common/value.hpp"

namespace primary::logchain {

// `prev` of the first entry.
inline constexpr std::string_view kGenesis = "0000000000000000000000000000000000000000";

struct Entry {
  std::string id;    // the stream id, "ms-n"
  std::string type;
  int64_t ts = 0;    // ms
  int64_t seq = 0;   // position in the chain, from 1
  std::string prev;  // hash of the entry before (40 hex)
  std::string data;  // the MessagePack bytes as stored
  std::string where;            // for reports: "stream" or "FILE:LINE"
  bool text_differs = false;    // a file line whose readable part is not what its data renders to
};

// SHA-1, 40 lowercase hex, of the canonical bytes
// id "\n" type "\n" ts "\n" seq "\n" prev "\n" data (numbers in decimal).
std::string hash(const Entry& e);

// One stream entry of XRANGE / XREVRANGE ({id, [field, value, ...]});
// nullopt when it lacks a chain field (written before the chain existed).
std::optional<Entry> entry_of_stream(const RedisReply& entry);
// The chain head: the newest entry of the stream, if it is chained.
struct Head {
  int64_t seq = 0;
  std::string hash;
};
// The read of the head (XREVRANGE of the stream's newest entry), and the
// head in its reply; the admin worker shares one such read a second between
// its users. nullopt with `error` set when Redis failed; a Head with seq 0
// when there is no chained entry yet.
Redis::Argv newest_entry_command();
std::optional<Head> head_of(const Result<RedisReply>& newest, std::string* error);

// An item of admin.log with `chain: true`: {id, type, ts, seq, prev, data (bin)}.
Value to_value(const Entry& e);
std::optional<Entry> from_value(const Value& v);

// The bytes a checkpoint's Ed25519 signature covers:
// "primary-log-checkpoint-v1\n" count "\n" head "\n" ts.
std::string checkpoint_message(int64_t count, std::string_view head, int64_t ts);

struct Report {
  bool ok = true;
  int64_t verified = 0;             // entries whose place in the chain was checked
  int64_t checkpoints = 0;          // checkpoint signatures verified
  int64_t checkpoints_unchecked = 0;  // no key to check them with
  int64_t first_seq = 0, last_seq = 0;
  std::string last_id, last_hash;
  std::string problem;  // the first one: "entry P (WHERE, seq S): KIND: detail"
};

// Checks entries in log order, one at a time (memory: the hashes, 40 bytes
// an entry, and the last few entries). See verify() below for what it checks.
class Verifier {
 public:
  // `keys`: raw 32-byte Ed25519 public keys trusted for checkpoints.
  explicit Verifier(std::vector<std::string> keys);
  // Takes the next entry; false once a problem was found (stop adding).
  bool add(Entry e);
  // Judges what is still pending and reports.
  Report finish();

 private:
  const Entry& at(size_t i) const;  // one of the last four entries
  std::string_view hash_at(size_t i) const;
  bool links(size_t a, size_t b) const;
  bool fail(size_t i, std::string what);  // records the problem; false
  void step(size_t i, bool next);
  bool checkpoint(size_t i);

  std::vector<std::string> keys_;
  std::deque<Entry> window_;
  std::string hashes_;  // every entry's hash, 40 hex digits each, by position
  size_t count_ = 0;    // entries added
  size_t next_ = 1;     // the next entry whose link in is judged
  int64_t first_seq_ = 0;
  Report rep_;
};

// Checks entries in log order: each links to the one before (seq + 1 and
// prev = its hash), every checkpoint is signed by one of `keys` (raw 32-byte
// Ed25519 public keys; none given: signatures are counted as unchecked) and
// names the hash of the entry it counts. The first entry is taken on trust
// (the stream's oldest retained one, or the oldest file's first line).
// Reports the first problem: changed, removed, inserted, reordered, or
// forged checkpoint.
Report verify(const std::vector<Entry>& entries, const std::vector<std::string>& keys);

}  // namespace primary::logchain
