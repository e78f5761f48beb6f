// Per-operation counters of a worker process, kept cheaply on the hot path
// and added to Redis in batches, so that the figures are cumulative across
// every worker process and survive their restarts.
//
// The worker runtime records every request it answers, valid or not, under
// its (service, op): one request, its error code if it failed, and the time
// its batch took in a latency histogram. Only the executor thread records
// and flushes, so nothing here locks. flush() sends the deltas since the
// last successful flush in one Lua script call (HINCRBY / HINCRBYFLOAT into
// one hash, atomically); a failed flush keeps them for the next try.
//
// Hash fields (keys::kMetricsOps), read back by admin.metrics:
//   SERVICE|OP|requests        requests answered
//   SERVICE|OP|error|CODE      of them, failed with CODE
//   SERVICE|OP|le|BOUND        of them, took more than the previous bound
//                              and at most BOUND seconds (not cumulative)
//   SERVICE|OP|sum             seconds, summed
//   counter|NAME               a plain counter (add())
// OP is "_invalid" for a body whose operation could not be told (not a map,
// no op, an op the service does not have).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/errors.hpp"
#include "common/redis.hpp"
#include "common/schema.hpp"

namespace primary {

// Upper bounds of the latency histogram, seconds; the text is what the
// hash fields and the exposition carry.
inline constexpr std::array<std::string_view, 14> kLatencyBounds = {
    "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05",
    "0.1",    "0.25",  "0.5",    "1",     "2.5",  "5",     "10"};
inline constexpr std::string_view kInvalidOp = "_invalid";

class OpMetrics {
 public:
  OpMetrics();

  // Declares a service; its ops come from the catalog. Returns its index.
  size_t add_service(std::string_view service);
  // One request of `service` (index) and `spec` (nullptr: op unknown),
  // answered ok (error empty) or with `error`, in `seconds`.
  void record(size_t service, const OpSpec* spec, std::optional<Code> error, double seconds);
  // Adds to the plain counter `name` (e.g. update_bytes_served).
  void add(std::string_view name, int64_t delta);

  // The (field, delta) pairs not yet flushed; deltas are decimal text.
  std::vector<std::pair<std::string, std::string>> pending() const;
  // Sends pending() to Redis; on success forgets it, on failure keeps it.
  Status flush(Redis& redis);

 private:
  static constexpr size_t kCodes = static_cast<size_t>(Code::Internal) + 1;
  struct Slot {
    const OpSpec* spec = nullptr;  // nullptr: the _invalid slot
    uint64_t requests = 0;
    std::array<uint64_t, kCodes> errors{};
    std::array<uint64_t, kLatencyBounds.size()> buckets{};  // not cumulative; beyond the last: none
    double seconds = 0;
  };
  struct Service {
    std::string name;
    std::vector<Slot> slots;  // one per op of the catalog, then _invalid
  };
  void clear();

  std::array<double, kLatencyBounds.size()> bounds_{};
  std::vector<Service> services_;
  std::vector<std::pair<std::string, int64_t>> counters_;
};

}  // namespace primary
