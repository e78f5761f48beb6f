#include "web/metrics.hpp"

#include <cctype>
#include <charconv>
#include <cmath>
#include <vector>

#include "web/sessions.hpp"

#include "common/names.hpp"

namespace primary::web {
namespace {

// Integers as they are; floats in their shortest form that reads back the
// same (`fixed`: 0.0005 rather than 5e-04, as bucket bounds are written).
std::string number(const Value& v, std::chars_format format = std::chars_format::general) {
  switch (v.kind()) {
    case Value::Kind::Int: return std::to_string(v.as_int());
    case Value::Kind::UInt: return std::to_string(v.as_uint());
    case Value::Kind::Float: {
      const double d = v.as_float();
      if (std::isnan(d)) return "NaN";
      if (std::isinf(d)) return d > 0 ? "+Inf" : "-Inf";
      char buf[64];
      auto [end, ec] = std::to_chars(buf, buf + sizeof buf, d, format);
      return ec == std::errc() ? std::string(buf, end) : "NaN";
    }
    default: return "0";
  }
}

const Value& field(const Value& map, std::string_view key) {
  static const Value nil;
  const Value* v = map.find(key);
  return v ? *v : nil;
}

// Builds the exposition one family at a time: HELP and TYPE, then samples.
class Exposition {
 public:
  void family(const std::string& name, std::string_view type, std::string_view help) {
    text_ += "# HELP " + name + " " + std::string(help) + "\n# TYPE " + name + " " + std::string(type) + "\n";
  }
  void sample(const std::string& name, const std::vector<std::pair<std::string, std::string>>& labels,
              const std::string& value) {
    text_ += name;
    if (!labels.empty()) {
      text_ += '{';
      for (size_t i = 0; i < labels.size(); ++i)
        text_ += (i ? "," : "") + labels[i].first + "=\"" + escape_label_value(labels[i].second) + "\"";
      text_ += '}';
    }
    text_ += ' ' + value + '\n';
  }
  std::string take() { return std::move(text_); }

 private:
  std::string text_;
};

bool metric_name_part(const std::string& s) {
  if (s.empty() || s.size() > 64) return false;
  for (char c : s)
    if (!(std::islower(static_cast<unsigned char>(c)) || std::isdigit(static_cast<unsigned char>(c)) || c == '_'))
      return false;
  return true;
}

const char* counter_help(std::string_view key) {
  if (key == "update_bytes_served") return "Bytes of release files served to update.fetch requests.";
  if (key == "leases_signed_ahead") return "Leases signed while Redis ran their heartbeats, before the answer.";
  if (key == "leases_signed_ahead_used") return "Of the leases signed ahead, those handed out.";
  return "Counted by the workers.";
}

}  // namespace

MetricsAccess metrics_access(bool loopback, bool require_token, const std::string& token,
                             std::string_view authorization) {
  if (loopback && !require_token) return MetricsAccess::Allow;
  if (token.empty()) return MetricsAccess::Forbidden;
  // "Bearer TOKEN": the scheme is case-insensitive (RFC 7235).
  constexpr std::string_view scheme = "bearer";
  if (authorization.size() <= scheme.size() || authorization[scheme.size()] != ' ')
    return MetricsAccess::Unauthorized;
  for (size_t i = 0; i < scheme.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(authorization[i])) != scheme[i]) return MetricsAccess::Unauthorized;
  std::string_view given = authorization.substr(scheme.size());
  while (!given.empty() && given.front() == ' ') given.remove_prefix(1);
  while (!given.empty() && given.back() == ' ') given.remove_suffix(1);
  return same_secret(std::string(given), token) ? MetricsAccess::Allow : MetricsAccess::Unauthorized;
}

std::string escape_label_value(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char ch : v) {
    const auto c = static_cast<unsigned char>(ch);
    if (ch == '\\') out += "\\\\";
    else if (ch == '"') out += "\\\"";
    else if (ch == '\n') out += "\\n";
    else if (c < 0x20 || c >= 0x7f) out += '?';
    else out += ch;
  }
  return out;
}

std::string render_prometheus(const Value& reply) {
  Exposition x;
  using Labels = std::vector<std::pair<std::string, std::string>>;
  const Value& ops = field(reply, field::kOps);
  const Value::Array none;
  const Value::Array& op_list = ops.is_array() ? ops.as_array() : none;
  auto op_labels = [](const Value& op) {
    return Labels{{"service", reply_str(op, "service")}, {field::kOp, reply_str(op, field::kOp)}};
  };

  x.family("primary_requests_total", "counter",
           "Requests answered by the workers (valid or not), per service and operation, since the counters began.");
  for (const Value& op : op_list) x.sample("primary_requests_total", op_labels(op), number(field(op, "requests")));

  x.family("primary_request_errors_total", "counter",
           "Requests answered with an error reply by the workers, per service, operation and error code.");
  for (const Value& op : op_list) {
    const Value& errors = field(op, "errors");
    if (!errors.is_map()) continue;
    for (const auto& [code, n] : errors.as_map()) {
      Labels l = op_labels(op);
      l.emplace_back(field::kCode, code);
      x.sample("primary_request_errors_total", l, number(n));
    }
  }

  x.family("primary_request_duration_seconds", "histogram",
           "Time a worker took for a request's batch, from decoding to the handler's return.");
  for (const Value& op : op_list) {
    const Value& buckets = field(op, "buckets");
    if (buckets.is_array())
      for (const Value& b : buckets.as_array()) {
        Labels l = op_labels(op);
        l.emplace_back("le", number(field(b, "le"), std::chars_format::fixed));
        x.sample("primary_request_duration_seconds_bucket", l, number(field(b, "count")));
      }
    Labels inf = op_labels(op);
    inf.emplace_back("le", "+Inf");
    x.sample("primary_request_duration_seconds_bucket", inf, number(field(op, "count")));
    x.sample("primary_request_duration_seconds_sum", op_labels(op), number(field(op, "sum")));
    x.sample("primary_request_duration_seconds_count", op_labels(op), number(field(op, "count")));
  }

  const Value& broker = field(reply, field::kBroker);
  const Value& services = field(broker, field::kServices);
  if (services.is_map()) {
    struct Family {
      const char* name;
      const char* type;
      const char* key;
      const char* help;
    };
    static const Family families[] = {
        {"primary_broker_queue_depth", "gauge", "queue", "Requests waiting in the broker for a worker, per service."},
        {"primary_broker_workers", "gauge", "workers",
         "Worker slots per service: requests its live workers may hold at once (--slots per process)."},
        {"primary_broker_routed_total", "counter", "routed",
         "Requests the broker handed to a worker, per service, since the broker started."},
        {"primary_broker_busy_total", "counter", "busy",
         "BUSY answers the broker made itself (queue full), per service, since the broker started."},
        {"primary_broker_unavailable_total", "counter", "unavailable",
         "UNAVAILABLE answers the broker made itself (no worker in time, worker lost), per service."},
    };
    for (const Family& f : families) {
      x.family(f.name, f.type, f.help);
      for (const auto& [name, s] : services.as_map()) x.sample(f.name, {{"service", name}}, number(field(s, f.key)));
    }
  }

  const Value& licenses = field(reply, field::kLicenses);
  static const std::pair<const char*, const char*> license_gauges[] = {
      {field::kPurchased, "Licenses purchased (the unlock code in force)."},
      {field::kReserved, "Licenses reserved (active + lost + never seen)."},
      {field::kActive, "Reserved computers seen within the check interval plus grace."},
      {field::kLost, "Reserved computers not seen within the check interval plus grace."},
      {field::kNeverSeen, "Reserved computers never seen."},
      {field::kClockSkewed, "Computers whose last heartbeat's clock was off beyond --clock-skew-s."},
  };
  for (const auto& [key, help] : license_gauges) {
    const std::string name = std::string("primary_licenses_") + key;
    x.family(name, "gauge", help);
    x.sample(name, {}, number(field(licenses, key)));
  }

  x.family("primary_computers_stale", "gauge",
           "Computers flagged stale: never seen for stale-unseen-s since reserved (recounted every stale-recount-s), "
           "or lost and silent for stale-lost-s.");
  x.sample("primary_computers_stale", {}, number(field(licenses, field::kStale)));

  x.family("primary_events_written_total", "counter", "Entries ever added to the activity log.");
  x.sample("primary_events_written_total", {}, number(field(reply, field::kEventsWritten)));

  const Value& counters = field(reply, field::kCounters);
  if (counters.is_map())
    for (const auto& [key, n] : counters.as_map()) {
      if (!metric_name_part(key)) continue;
      const std::string name = "primary_" + key + "_total";
      x.family(name, "counter", counter_help(key));
      x.sample(name, {}, number(n));
    }
  return x.take();
}

}  // namespace primary::web
