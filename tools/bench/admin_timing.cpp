#include "tools/bench/admin_timing.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <chrono>
#include <vector>

#include "tools/bench/load.hpp"
#include "tools/bench/stack.hpp"

namespace primary::bench {
namespace {

using Clock = std::chrono::steady_clock;

template <class... Args>
void line(fmt::format_string<Args...> f, Args&&... args) {
  fmt::print(f, std::forward<Args>(args)...);
  std::fputc('\n', stdout);
  std::fflush(stdout);
}

}  // namespace

std::map<std::string, double> admin_timings(zmq::context_t& ctx, const std::string& front, int repeats) {
  std::map<std::string, double> out;
  // A cursor deep in each listing: follow a few pages of 1000 first.
  auto deep_cursor = [&](const std::string& sort) -> std::string {
    std::string cursor;
    for (int page = 0; page < 5; ++page) {
      Value::Map f = {{"limit", Value(1000)}, {"sort", Value(sort)}};
      if (!cursor.empty()) f.emplace_back("cursor", Value(cursor));
      auto r = call(ctx, front, "admin", "computers", f, 30000);
      if (!r) return cursor;
      const Value* c = r->find("cursor");
      if (!c || !c->is_str()) return cursor;
      cursor = c->as_str();
    }
    return cursor;
  };
  struct Kind {
    std::string label, op;
    Value::Map fields;
  };
  std::vector<Kind> kinds = {
      {"status", "status", {}},
      {"computers name, first page", "computers", {{"limit", Value(100)}, {"sort", Value("name")}}},
      {"computers last-seen, first page", "computers", {{"limit", Value(100)}, {"sort", Value("last-seen")}}},
      {"computers state=active", "computers", {{"limit", Value(100)}, {"state", Value("active")}}},
  };
  if (auto c = deep_cursor("name"); !c.empty())
    kinds.push_back({"computers name, page 51", "computers",
                     {{"limit", Value(100)}, {"sort", Value("name")}, {"cursor", Value(c)}}});
  if (auto c = deep_cursor("last-seen"); !c.empty())
    kinds.push_back({"computers last-seen, page 51", "computers",
                     {{"limit", Value(100)}, {"sort", Value("last-seen")}, {"cursor", Value(c)}}});
  for (const auto& k : kinds) {
    for (int i = 0; i < 3; ++i) call(ctx, front, "admin", k.op, k.fields, 30000);  // warm-up, not timed
    std::vector<double> ms;
    bool failed = false;
    for (int i = 0; i < repeats && !failed; ++i) {
      const auto t0 = Clock::now();
      auto r = call(ctx, front, "admin", k.op, k.fields, 30000);
      const double took = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
      failed = !r || !reply_ok(*r);
      ms.push_back(took);
    }
    if (!failed) out[k.label] = median(ms);
  }
  return out;
}

double report_admin_timings(const std::map<std::string, double>& small, const std::string& small_label,
                            const std::map<std::string, double>& large, const std::string& large_label,
                            double bound) {
  double worst = 0;
  line("admin request times (median ms, {} vs {}; each call on a fresh connection):", small_label, large_label);
  for (const auto& [label, b] : large)
    if (!small.count(label)) line("  {:<34} {:>8} {:8.2f}  (no such page at {})", label, "-", b, small_label);
  for (const auto& [label, a] : small) {
    auto it = large.find(label);
    if (it == large.end()) {
      line("  {:<34} {:8.2f}   (failed at {})", label, a, large_label);
      worst = 1e9;
      continue;
    }
    const double ratio = a > 0 ? it->second / a : 0;
    worst = std::max(worst, ratio);
    line("  {:<34} {:8.2f} {:8.2f}  x{:.2f} {}", label, a, it->second, ratio, ratio <= bound ? "" : "(over target)");
  }
  return worst;
}

}  // namespace primary::bench
