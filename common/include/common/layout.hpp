// The layout version of the product's data in Redis.
//
// Redis holds, in ps:layout, the version of the layout its `ps:` keys are
// in (the keys and their shapes, common/keys.hpp). A release knows one
// layout, kCurrent, and how to move data up to it from every older one.
// A database without ps:layout but with other `ps:` keys is layout 0: data
// written before the layout was versioned.
//
// Every program that reads or writes the data checks the layout before
// anything else: a newer layout than its own is a refusal (the program
// would misread it), an older one is migrated once by whichever program
// gets there first, under ps:layout:lock, one step per version, each step
// one script that changes the data, writes the new version and appends
// data.migrated to the activity log. Others wait for the lock holder.
#pragma once

#include <cstdint>
#include <string>

#include "common/config.hpp"
#include "common/errors.hpp"
#include "common/redis.hpp"
#include "common/redis_url.hpp"

namespace primary::layout {

// The layout this release reads and writes. A release that changes the
// keys bumps it to N and adds common/lua/layout_step_N.lua (moving data
// from N-1, under the lock, as layout_step_1.lua does), listed in
// layout.cpp's step_script(), plus a fixture backup (tests/fixture_test.cpp).
inline constexpr int64_t kCurrent = 1;

// What a Redis holds, read without writing anything: its layout version
// (0 for product data from before versioning), or that it holds no product
// data at all.
struct Found {
  int64_t version = 0;
  bool empty = false;
};
Result<Found> read(Redis& redis);

// The one line a program prints when the data is newer than it knows.
std::string newer_message(int64_t version);

struct Outcome {
  enum class Kind { Fresh, Current, Migrated, Newer };
  Kind kind = Kind::Current;
  int64_t found = 0;  // the version the data was in (kCurrent when Fresh)
};

// Brings the data to kCurrent: an empty database gets ps:layout written
// (atomically with the check that it is empty); an older layout is
// migrated under the lock (waiting up to `wait_ms` while another process
// holds it); a newer one is left untouched and answered Newer. Errors:
// Redis unavailable or an error reply; the lock held longer than `wait_ms`
// (Code::Busy).
Result<Outcome> ensure(Redis& redis, int64_t event_cap, int64_t wait_ms = 120000);

// For a program's start-up: ensure() on a connection of its own, retrying
// while Redis is unavailable (until stop is requested: exit 0). A newer
// layout ends the program through cfg.fail (exit 2, one line); so does a
// refusal that is not about availability.
void ensure_or_exit(Config& cfg, const RedisUrl& url, int64_t event_cap);

}  // namespace primary::layout
