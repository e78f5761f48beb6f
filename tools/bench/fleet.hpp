// A synthetic fleet of Client computers for the licensing benchmarks:
// vendor key and unlock, bulk reservation, heartbeat load.
#pragma once

#include <zmq.hpp>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "common/errors.hpp"
#include "tools/bench/load.hpp"
#include "tools/bench/stack.hpp"

namespace primary::bench {

// The computer number i is "BENCH-" followed by i on 7 digits.
std::string computer_name(int64_t i);

// Writes DIR/vendor/vendor.{key,pub} with primary-vendor keygen.
Result<std::string> make_vendor_key(const BenchEnv& env, TempDir& dir);

// Registers a serial, has primary-vendor sign an unlock code for
// `licenses` and unlocks the server; returns `purchased`.
Result<int64_t> unlock(zmq::context_t& ctx, const BenchEnv& env, TempDir& dir,
                       const std::string& front, int64_t licenses);

struct LoadShape {
  int clients = 8;
  int window = 16;
  int threads = 1;
};

class Fleet {
 public:
  // Reserves computers [first, first + count) through license.control
  // reserve, remembering their licenses; the result counts errors (refusals
  // included). `created` receives how many were new reservations.
  LoadResult reserve(zmq::context_t& ctx, const std::string& front, int64_t first, int64_t count,
                     const LoadShape& shape, int64_t* created);

  // Heartbeats of computers drawn evenly at random from [0, population),
  // all of them reserved, for `seconds` after a one-second warm-up.
  LoadResult heartbeat(zmq::context_t& ctx, const std::string& front, int64_t population,
                       int seconds, const LoadShape& shape) const;

  // One heartbeat from each computer of [first, first + count), so that
  // all of them are "seen" (first contact signs a lease and logs an event).
  LoadResult heartbeat_each(zmq::context_t& ctx, const std::string& front, int64_t first,
                            int64_t count, const LoadShape& shape) const;

  int64_t size() const { return static_cast<int64_t>(licenses_.size()); }

 private:
  // Heartbeats of computer pick(seq) for request seq, shaped by `o`.
  LoadResult heartbeats(zmq::context_t& ctx, const std::string& front, LoadOptions o,
                        const LoadShape& shape, const std::function<int64_t(int64_t)>& pick) const;
  std::vector<std::string> licenses_;  // by computer number; empty: not reserved
};

}  // namespace primary::bench
