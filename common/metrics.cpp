#include "common/metrics.hpp"

#include <algorithm>
#include <charconv>
#include <cstdio>

#include "common/keys.hpp"
#include "common/lua_scripts.hpp"

namespace primary {
namespace {

// common/lua/metrics_flush.lua
const Script& flush_script() { return embedded_script<lua::kMetricsFlush>(); }

std::string seconds_text(double s) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.9f", s);
  return buf;
}

}  // namespace

OpMetrics::OpMetrics() {
  for (size_t i = 0; i < kLatencyBounds.size(); ++i) {
    const auto text = kLatencyBounds[i];
    std::from_chars(text.data(), text.data() + text.size(), bounds_[i]);
  }
}

size_t OpMetrics::add_service(std::string_view service) {
  Service s;
  s.name = std::string(service);
  for (const auto& spec : catalog())
    if (spec.service == service) s.slots.push_back(Slot{&spec});
  s.slots.push_back(Slot{});  // _invalid
  services_.push_back(std::move(s));
  return services_.size() - 1;
}

void OpMetrics::record(size_t service, const OpSpec* spec, std::optional<Code> error, double seconds) {
  auto& slots = services_[service].slots;
  Slot* slot = &slots.back();
  for (auto& s : slots)
    if (s.spec == spec) {
      slot = &s;
      break;
    }
  ++slot->requests;
  if (error) ++slot->errors[static_cast<size_t>(*error)];
  const auto b = std::lower_bound(bounds_.begin(), bounds_.end(), seconds);
  if (b != bounds_.end()) ++slot->buckets[static_cast<size_t>(b - bounds_.begin())];
  slot->seconds += seconds;
}

void OpMetrics::add(std::string_view name, int64_t delta) {
  for (auto& [n, v] : counters_)
    if (n == name) {
      v += delta;
      return;
    }
  counters_.emplace_back(std::string(name), delta);
}

std::vector<std::pair<std::string, std::string>> OpMetrics::pending() const {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& svc : services_) {
    for (const auto& slot : svc.slots) {
      if (slot.requests == 0) continue;
      const std::string prefix =
          svc.name + "|" + std::string(slot.spec ? slot.spec->op : kInvalidOp) + "|";
      out.emplace_back(prefix + "requests", std::to_string(slot.requests));
      for (size_t c = 0; c < kCodes; ++c)
        if (slot.errors[c])
          out.emplace_back(prefix + "error|" + std::string(code_name(static_cast<Code>(c))),
                           std::to_string(slot.errors[c]));
      for (size_t b = 0; b < kLatencyBounds.size(); ++b)
        if (slot.buckets[b])
          out.emplace_back(prefix + "le|" + std::string(kLatencyBounds[b]), std::to_string(slot.buckets[b]));
      out.emplace_back(prefix + "sum", seconds_text(slot.seconds));
    }
  }
  for (const auto& [name, v] : counters_)
    if (v) out.emplace_back("counter|" + name, std::to_string(v));
  return out;
}

Status OpMetrics::flush(Redis& redis) {
  const auto deltas = pending();
  if (deltas.empty()) return {};
  Redis::Argv args;
  args.reserve(deltas.size() * 2);
  for (const auto& [field, delta] : deltas) {
    args.push_back(field);
    args.push_back(delta);
  }
  auto r = redis.eval(flush_script(), {keys::kMetricsOps}, args);
  if (!r) return r.error();
  if (r->is_error()) return Error{Code::Unavailable, "metrics flush refused: " + r->str};
  clear();
  return {};
}

void OpMetrics::clear() {
  for (auto& svc : services_)
    for (auto& slot : svc.slots) slot = Slot{slot.spec};
  for (auto& c : counters_) c.second = 0;
}

}  // namespace primary
