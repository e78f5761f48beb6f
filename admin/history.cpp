#include "admin/history.hpp"

#include <algorithm>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include "admin/lua_scripts.hpp"
#include "common/keys.hpp"
#include "common/names.hpp"
#include "common/redis_failure.hpp"

namespace primary::admin {
namespace {

constexpr std::string_view kStore = "store";

const Script& sample_script() { return embedded_script<lua::kHistorySample>(); }

// The counters of a point and where the sampler reads their totals.
struct Counter {
  const char* name;
  std::string source;
};
const std::vector<Counter>& counters() {
  static const std::vector<Counter> list = {
      {field::kHeartbeats, std::string("ops:") + svc::kLicense + "|" + opname::kHeartbeat + "|requests"},
      {field::kFirstVerifications, std::string("event:") + event::kClientLicensed},
      {field::kRejections, "stats:rejected"},
      {field::kWentLost, std::string("event:") + event::kClientLost},
      {field::kReturned, std::string("event:") + event::kClientReturned},
      {field::kReservations, std::string("event:") + event::kLicenseReserved},
      {field::kRefusals, std::string("event:") + event::kLicenseRefused},
      {field::kUpdateChecks, std::string("ops:") + svc::kUpdate + "|" + opname::kCheck + "|requests"},
      {field::kBytesServed, "ops:counter|update_bytes_served"},
  };
  return list;
}

// The state fields of a point, as the sampler stores them.
constexpr const char* kStateFields[] = {field::kPurchased, field::kReserved, field::kActive, field::kLost,
                                        field::kNeverSeen, field::kSampledAt};

int64_t floor_to(int64_t ms, int64_t period) { return ms - ((ms % period) + period) % period; }

}  // namespace

Status sample_history(Redis& redis, int64_t now_ms, int64_t cutoff_ms) {
  const int64_t hour = floor_to(now_ms, kHourMs), day = floor_to(now_ms, kDayMs);
  Redis::Argv args{std::to_string(cutoff_ms), std::to_string(now_ms),
                   std::to_string((hour + kHourlyKeptMs + kHourMs) / 1000),
                   std::to_string((day + kDailyKeptMs + kDayMs) / 1000), std::to_string(kHistoryEvents)};
  for (const auto& c : counters()) {
    args.push_back(c.name);
    args.push_back(c.source);
  }
  auto r = redis.eval(sample_script(),
                      {keys::kSerial, keys::kReservations, keys::kActive, keys::kLost, keys::kMetricsOps,
                       keys::kStats, keys::kEvents, keys::kHistLast, keys::history_key(false, hour / 1000),
                       keys::history_key(true, day / 1000)},
                      args);
  if (!r) return r.error();
  if (r->is_error()) return Error{Code::Unavailable, "history sample refused: " + r->str};
  return {};
}

Reply history_reply(Redis& redis, const Request& req, int64_t now_ms) {
  const bool daily = req.str(field::kResolution, resolution::kHour) == std::string_view(resolution::kDay);
  const int64_t period = daily ? kDayMs : kHourMs;
  const int64_t to = req.integer(field::kTo, now_ms);
  const int64_t from = req.integer(field::kFrom, std::max<int64_t>(0, to - (daily ? 30 * kDayMs : 48 * kHourMs)));
  const int64_t limit = req.integer(field::kLimit, kHistoryPage);
  if (from > to) return Reply::failure(Code::BadRequest, "field 'from': after 'to'");
  const int64_t kept_from = floor_to(now_ms - (daily ? kDailyKeptMs : kHourlyKeptMs), period);
  const int64_t first = std::max(floor_to(from, period), kept_from), last = floor_to(to, period);
  std::vector<Redis::Argv> cmds;
  std::vector<int64_t> starts;
  for (int64_t t = first; t <= last && static_cast<int64_t>(starts.size()) < limit; t += period) {
    starts.push_back(t);
    cmds.push_back({"HGETALL", keys::history_key(daily, t / 1000)});
  }
  Value::Array points;
  if (!cmds.empty()) {
    auto out = redis.pipeline(cmds);
    if (!out) return redis_failure(out.error(), kStore);
    for (size_t i = 0; i < out->size(); ++i) {
      const RedisReply& h = (*out)[i];
      if (h.is_error()) return redis_failure(h, kStore);
      if (h.elements.empty()) continue;
      std::vector<std::pair<std::string_view, int64_t>> stored;
      for (size_t k = 0; k + 1 < h.elements.size(); k += 2)
        stored.emplace_back(h.elements[k].str, std::atoll(h.elements[k + 1].str.c_str()));
      auto value_of = [&](std::string_view name) -> const int64_t* {
        for (const auto& [n, v] : stored)
          if (n == name) return &v;
        return nullptr;
      };
      Value::Map point{{field::kTs, Value(starts[i])}};
      for (const char* name : kStateFields)
        if (const int64_t* v = value_of(name)) point.emplace_back(name, Value(*v));
      for (const auto& c : counters()) {
        const int64_t* v = value_of(c.name);
        point.emplace_back(c.name, Value(v ? *v : 0));
      }
      points.push_back(Value(std::move(point)));
    }
  }
  Value::Map fields{{field::kResolution, Value(daily ? resolution::kDay : resolution::kHour)},
                    {field::kPoints, Value(std::move(points))}};
  const int64_t after = starts.empty() ? last + period : starts.back() + period;
  fields.emplace_back(field::kNext, after <= last ? Value(after) : Value());
  return Reply::success(std::move(fields));
}

}  // namespace primary::admin
