#include "admin/admin_service.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <set>

#include "admin/history.hpp"
#include "admin/scripts.hpp"
#include "common/names.hpp"
#include "common/events.hpp"
#include "common/keys.hpp"
#include "common/crypto.hpp"
#include "common/log_chain.hpp"
#include "common/metrics.hpp"
#include "common/process.hpp"
#include "common/redis_failure.hpp"

namespace primary {

using namespace keys;

namespace {

// The store named in failure replies (common/redis_failure.hpp).
constexpr std::string_view kStore = "store";

int64_t to_int(const RedisReply& r) {
  if (r.is_int()) return r.integer;
  if (r.is_str() && !r.str.empty()) return std::atoll(r.str.c_str());
  return 0;
}

Value::Map item_from_row(const admin::ComputerRow& c) {
  Value::Map item{{field::kComputer, Value(std::string(c.name))},
                  {field::kLicense, Value(std::string(c.license))},
                  {field::kState, Value(std::string(c.state))},
                  {field::kReservedAt, Value(c.reserved_at)}};
  if (c.first_seen) item.emplace_back(field::kFirstSeen, Value(*c.first_seen));
  if (c.last_seen) item.emplace_back(field::kLastSeen, Value(*c.last_seen));
  if (!c.version.empty()) item.emplace_back(field::kVersion, Value(std::string(c.version)));
  if (!c.peer.empty()) item.emplace_back(field::kPeer, Value(std::string(c.peer)));
  if (c.clock_skew_s) item.emplace_back(field::kClockSkewS, Value(*c.clock_skew_s));
  item.emplace_back(field::kStale, Value(c.stale));
  return item;
}

}  // namespace

std::vector<int> tcp_ports(const std::vector<std::string>& endpoints) {
  std::set<int> ports;
  for (const auto& ep : endpoints) {
    if (!ep.starts_with("tcp://")) continue;
    const auto colon = ep.rfind(':');
    if (colon == std::string::npos) continue;
    const int port = std::atoi(ep.c_str() + colon + 1);
    if (port > 0 && port < 65536) ports.insert(port);
  }
  return {ports.begin(), ports.end()};
}

OpCounters op_counters_from_hash(const std::vector<std::pair<std::string, std::string>>& fields) {
  struct Op {
    int64_t requests = 0;
    std::map<std::string, int64_t> errors;
    std::map<double, int64_t> buckets;  // upper bound -> observations in that bucket alone
    double sum = 0;
  };
  std::map<std::pair<std::string, std::string>, Op> ops;
  OpCounters out;
  out.counters.emplace_back("update_bytes_served", Value(0));
  for (const auto& [field, value] : fields) {
    std::vector<std::string_view> parts;
    for (std::string_view rest = field;;) {
      const auto bar = rest.find('|');
      parts.push_back(rest.substr(0, bar));
      if (bar == std::string_view::npos) break;
      rest.remove_prefix(bar + 1);
    }
    const int64_t n = std::atoll(value.c_str());
    if (parts.size() == 2 && parts[0] == "counter") {
      auto it = std::find_if(out.counters.begin(), out.counters.end(),
                             [&](const auto& kv) { return kv.first == parts[1]; });
      if (it != out.counters.end()) it->second = Value(n);
      else out.counters.emplace_back(std::string(parts[1]), Value(n));
      continue;
    }
    if (parts.size() < 3) continue;
    Op& op = ops[{std::string(parts[0]), std::string(parts[1])}];
    if (parts.size() == 3 && parts[2] == "requests") op.requests = n;
    else if (parts.size() == 3 && parts[2] == "sum") op.sum = std::strtod(value.c_str(), nullptr);
    else if (parts.size() == 4 && parts[2] == "error") op.errors[std::string(parts[3])] = n;
    else if (parts.size() == 4 && parts[2] == "le") {
      char* end = nullptr;
      const std::string bound(parts[3]);
      const double le = std::strtod(bound.c_str(), &end);
      if (end && *end == '\0' && le > 0) op.buckets[le] += n;
    }
  }
  for (auto& [key, op] : ops) {
    // Every series gets the same bounds: this build's, plus any other found.
    for (auto text : kLatencyBounds) op.buckets.try_emplace(std::strtod(std::string(text).c_str(), nullptr), 0);
    Value::Map errors;
    for (const auto& [code, n] : op.errors) errors.emplace_back(code, Value(n));
    Value::Array buckets;
    int64_t cumulative = 0;
    for (const auto& [le, n] : op.buckets) {
      cumulative += n;
      buckets.push_back(Value(Value::Map{{"le", Value(le)}, {"count", Value(cumulative)}}));
    }
    out.ops.push_back(Value(Value::Map{{"service", Value(key.first)},
                                       {field::kOp, Value(key.second)},
                                       {"requests", Value(op.requests)},
                                       {"errors", Value(std::move(errors))},
                                       {"buckets", Value(std::move(buckets))},
                                       {"sum", Value(op.sum)},
                                       {"count", Value(op.requests)}}));
  }
  return out;
}

AdminService::AdminService(Redis& redis, AdminConfig config, Clock now_ms, BrokerCall broker, EventPublisher* events)
    : redis_(redis),
      config_(std::move(config)),
      now_ms_(std::move(now_ms)),
      events_(events),
      broker_(std::move(broker)) {}

Reply AdminService::handle(const Request& req) {
  switch (req.id()) {
    case Op::Status: return status();
    case Op::Computers: return computers(req);
    case Op::Computer: return computer(req);
    case Op::Log: return log(req);
    case Op::Firewall: return firewall();
    case Op::Record: return record(req);
    case Op::Metrics: return metrics();
    case Op::History: return admin::history_reply(redis_, req, now_ms_());
    default: return Reply::failure(Code::UnknownOp, "operation not served");
  }
}

Status AdminService::sample_history() {
  const int64_t now = now_ms_();
  return admin::sample_history(redis_, now, now - (config_.check_interval_s + config_.grace_s) * 1000);
}

Status AdminService::sample_history_on_change() {
  return sample_history_on_change(redis_.command(logchain::newest_entry_command()));
}

Status AdminService::sample_history_on_change(const Result<RedisReply>& r) {
  if (!r) return r.error();
  if (r->is_error()) return Error{Code::Unavailable, r->str};
  const std::string newest =
      r->is_array() && !r->elements.empty() && !r->elements[0].elements.empty() ? r->elements[0].elements[0].str : "";
  if (newest == newest_event_) return {};
  auto sampled = sample_history();
  if (sampled) newest_event_ = newest;
  return sampled;
}

Status AdminService::count_stale() {
  const int64_t now = now_ms_();
  if (now < stale_due_ms_) return {};
  auto r = redis_.eval(admin::stale_count_script(), {kStaleCount, kReservations, kActive, kLost, kMeta},
                       {std::to_string(now), std::to_string(now - config_.stale_unseen_s * 1000),
                        std::to_string(config_.stale_count_batch), std::to_string(config_.stale_recount_s * 1000)});
  if (!r) return r.error();
  if (!r->is_array() || r->elements.size() != 3) return Error{Code::Unavailable, "stale count: " + r->str};
  const bool in_progress = to_int(r->elements[2]) != 0;
  // Between passes, sleep until the next is due (another worker may start
  // it first; this one then joins in).
  stale_due_ms_ = in_progress ? 0 : to_int(r->elements[1]) + config_.stale_recount_s * 1000;
  return {};
}

// The commands license_fields() reads, first in a pipeline.
std::vector<Redis::Argv> AdminService::license_commands(int64_t now) const {
  const int64_t cutoff_ms = now - (config_.check_interval_s + config_.grace_s) * 1000;
  const int64_t stale_lost_ms = now - config_.stale_lost_s * 1000;
  const std::string cutoff = std::to_string(cutoff_ms);
  return {{"HMGET", kSerial, "unlocked", field::kSerial, field::kPurchased},
          {"ZCARD", kReservations},
          {"ZCOUNT", kActive, cutoff, "+inf"},
          {"ZCOUNT", kActive, "-inf", "(" + cutoff},
          {"ZCARD", kLost},
          {"SCARD", kSkewed},
          // Stale: lost and last seen before stale_lost_ms (describe.lua),
          // plus the never-seen ones of the last complete recount.
          {"ZCOUNT", kLost, "-inf", "(" + std::to_string(stale_lost_ms)},
          {"ZCOUNT", kActive, "-inf", "(" + std::to_string(std::min(cutoff_ms, stale_lost_ms))},
          {"HGET", kStaleCount, "n"}};
}

// serial?, purchased, reserved, active, lost, never_seen, clock_skewed,
// stale from the replies of license_commands().
Value::Map AdminService::license_fields(const std::vector<RedisReply>& out) {
  const auto& serial = out[0].elements;
  const int64_t reserved = to_int(out[1]);
  const int64_t active = to_int(out[2]);
  const int64_t lost = to_int(out[3]) + to_int(out[4]);
  Value::Map fields;
  if (serial.size() == 3 && (serial[0].is_str() || serial[1].is_str()))
    fields.emplace_back(field::kSerial, Value(serial[0].is_str() ? serial[0].str : serial[1].str));
  fields.emplace_back(field::kPurchased, Value(serial.size() == 3 ? to_int(serial[2]) : 0));
  fields.emplace_back(field::kReserved, Value(reserved));
  fields.emplace_back(field::kActive, Value(active));
  fields.emplace_back(field::kLost, Value(lost));
  fields.emplace_back(field::kNeverSeen, Value(std::max<int64_t>(0, reserved - active - lost)));
  fields.emplace_back(field::kClockSkewed, Value(to_int(out[5])));
  fields.emplace_back(field::kStale, Value(to_int(out[6]) + to_int(out[7]) + std::max<int64_t>(0, to_int(out[8]))));
  return fields;
}

Reply AdminService::status() {
  const int64_t now = now_ms_();
  auto out = redis_.pipeline(license_commands(now));
  if (!out) return redis_failure(out.error(), kStore);
  for (const auto& r : *out)
    if (r.is_error()) return redis_failure(r, kStore);
  Value::Map fields = license_fields(*out);
  fields.emplace_back(field::kVersion, Value(PRIMARY_VERSION));
  fields.emplace_back(field::kUptimeS, Value(config_.started_ms ? (now - config_.started_ms) / 1000 : 0));
  const Value workers = broker_ ? broker_("workers") : Value();
  const Value* services = workers.find(field::kServices);
  fields.emplace_back(field::kServices, services && services->is_map() ? *services : Value(Value::Map{}));
  return Reply::success(std::move(fields));
}

// Everything GET /metrics of primary-web shows: the op counters of every
// worker, the broker's queues and workers, the license counts, the events
// written to the activity log. Two reads from Redis and one broker call.
Reply AdminService::metrics() {
  auto cmds = license_commands(now_ms_());
  const size_t n = cmds.size();
  cmds.push_back({"HGETALL", kMetricsOps});
  cmds.push_back({"XINFO", "STREAM", kEventStream});
  auto out = redis_.pipeline(cmds);
  if (!out) return redis_failure(out.error(), kStore);
  for (size_t i = 0; i <= n; ++i)
    if ((*out)[i].is_error()) return redis_failure((*out)[i], kStore);
  Value::Map licenses = license_fields(*out);
  licenses.erase(std::remove_if(licenses.begin(), licenses.end(), [](const auto& kv) { return kv.first == field::kSerial; }),
                 licenses.end());
  std::vector<std::pair<std::string, std::string>> hash;
  const auto& pairs = (*out)[n].elements;
  for (size_t i = 0; i + 1 < pairs.size(); i += 2) hash.emplace_back(pairs[i].str, pairs[i + 1].str);
  OpCounters counters = op_counters_from_hash(hash);
  // XINFO STREAM: entries-added (Redis 7) counts every entry ever written,
  // trimmed ones too; length is the fallback. No stream yet: an error, 0.
  int64_t events = 0;
  const RedisReply& info = (*out)[n + 1];
  if (transient_error(info)) return redis_failure(info, kStore);
  for (size_t i = 0; i + 1 < info.elements.size(); i += 2) {
    if (info.elements[i].str == "entries-added") {
      events = to_int(info.elements[i + 1]);
      break;
    }
    if (info.elements[i].str == field::kLength) events = to_int(info.elements[i + 1]);
  }
  Value::Map fields{{field::kOps, Value(std::move(counters.ops))},
                    {field::kCounters, Value(std::move(counters.counters))},
                    {field::kLicenses, Value(std::move(licenses))},
                    {field::kEventsWritten, Value(events)}};
  Value broker = broker_ ? broker_("stats") : Value();
  if (broker.is_map()) {
    broker.as_map().erase(std::remove_if(broker.as_map().begin(), broker.as_map().end(),
                                         [](const auto& kv) { return kv.first == field::kOk || kv.first == field::kRid; }),
                          broker.as_map().end());
    fields.emplace_back(field::kBroker, std::move(broker));
  }
  return Reply::success(std::move(fields));
}

Reply AdminService::computers(const Request& req) {
  const int64_t limit = req.integer(field::kLimit, 100);
  const std::string sort(req.str(field::kSort, "name"));
  const int64_t cutoff = now_ms_() - (config_.check_interval_s + config_.grace_s) * 1000;
  const int64_t now = now_ms_();
  auto out = redis_.eval(admin::computers_script(), {kReservations, kActive, kLost, kMeta},
                         {sort, std::string(req.str(field::kCursor)), std::to_string(limit),
                          std::string(req.str(field::kState)), std::to_string(cutoff),
                          std::to_string(std::max<int64_t>(limit * 10, 1000)),
                          std::to_string(now - config_.stale_unseen_s * 1000),
                          std::to_string(now - config_.stale_lost_s * 1000), req.flag(field::kStale) ? "1" : ""});
  if (!out) return redis_failure(out.error(), kStore);
  if (out->is_error()) {
    if (out->str.find("bad cursor") != std::string::npos)
      return Reply::failure(Code::BadRequest, "field 'cursor': not a cursor from this listing");
    return redis_failure(*out, kStore);
  }
  const auto page = admin::computers_page(*out);
  if (!page) return redis_failure(*out, kStore);
  Value::Array items;
  for (const auto& row : page->rows) items.push_back(Value(item_from_row(row)));
  Value::Map fields{{field::kItems, Value(std::move(items))}};
  fields.emplace_back(field::kCursor, page->next.empty() ? Value() : Value(std::string(page->next)));
  return Reply::success(std::move(fields));
}

Reply AdminService::computer(const Request& req) {
  const std::string name(req.str(field::kComputer));
  const int64_t cutoff = now_ms_() - (config_.check_interval_s + config_.grace_s) * 1000;
  const int64_t now = now_ms_();
  auto out = redis_.eval(admin::computer_script(), {kReservations, kActive, kLost, kMeta, command_key(name)},
                         {name, std::to_string(cutoff), std::to_string(now - config_.stale_unseen_s * 1000),
                          std::to_string(now - config_.stale_lost_s * 1000)});
  if (!out) return redis_failure(out.error(), kStore);
  if (out->is_error()) return redis_failure(*out, kStore);
  const auto a = admin::computer_answer(*out);
  if (!a) return Reply::failure(Code::NotFound, "no license is reserved for " + name);
  Value::Map item = item_from_row(a->row);
  item.emplace_back(field::kCommandsPending, Value(a->commands_pending));
  return Reply::success(std::move(item));
}

Reply AdminService::log_chain(const Request& req) {
  const int64_t limit = req.integer(field::kLimit, 100);
  const std::string since(req.str(field::kSince));
  auto out = redis_.pipeline({{"XRANGE", kEventStream, since.empty() ? "-" : "(" + since, "+", "COUNT",
                               std::to_string(limit)},
                              {"GET", kLogFileLast}});
  if (!out) return redis_failure(out.error(), kStore);
  const RedisReply& range = (*out)[0];
  if (transient_error(range)) return redis_failure(range, kStore);
  if (range.is_error()) return Reply::failure(Code::BadRequest, "field 'since': not an event id");
  Value::Array items;
  std::string next = since;
  for (const auto& entry : range.elements) {
    if (!entry.is_array() || entry.elements.empty()) continue;
    next = entry.elements[0].str;
    if (auto e = logchain::entry_of_stream(entry)) items.push_back(logchain::to_value(*e));
  }
  Value::Map fields{{field::kItems, Value(std::move(items))}, {field::kNext, Value(next)}};
  if (!config_.log_public.empty()) fields.emplace_back(field::kLogKey, Value(base64url_encode(config_.log_public)));
  if ((*out)[1].is_str()) fields.emplace_back(field::kWritten, Value((*out)[1].str));
  return Reply::success(std::move(fields));
}

Reply AdminService::log(const Request& req) {
  if (req.flag(field::kChain)) return log_chain(req);
  const int64_t limit = req.integer(field::kLimit, 100);
  const std::string since(req.str(field::kSince));
  std::set<std::string> types;
  if (const Value* t = req.get(field::kTypes))
    for (const auto& v : t->as_array()) types.insert(v.as_str());
  const std::string actor(req.str(field::kActor));
  // Entries strictly after `since`; with a type or actor filter, scan a
  // bounded number of entries per page and continue from the last one scanned.
  const bool filtered = !types.empty() || !actor.empty();
  const int64_t budget = filtered ? std::max<int64_t>(limit * 10, 1000) : limit;
  std::string start = since.empty() ? "-" : "(" + since;
  Value::Array items;
  std::string next = since;
  int64_t scanned = 0;
  while (static_cast<int64_t>(items.size()) < limit && scanned < budget) {
    const int64_t count = std::min<int64_t>(budget - scanned, 1000);
    auto out = redis_.command({"XRANGE", kEventStream, start, "+", "COUNT", std::to_string(count)});
    if (!out) return redis_failure(out.error(), kStore);
    if (transient_error(*out)) return redis_failure(*out, kStore);
    if (out->is_error()) return Reply::failure(Code::BadRequest, "field 'since': not an event id");
    for (const auto& entry : out->elements) {
      if (entry.elements.size() != 2) continue;
      ++scanned;
      next = entry.elements[0].str;
      // Fields: type, ts, data.
      const auto& f = entry.elements[1].elements;
      RedisReply collected;
      collected.type = RedisReply::Type::Array;
      collected.elements.push_back(entry.elements[0]);
      for (size_t k = 0; k + 1 < f.size(); k += 2)
        if (f[k].str == field::kType || f[k].str == field::kTs || f[k].str == field::kData) collected.elements.push_back(f[k + 1]);
      auto ev = event_from_entry(collected);
      if (!ev) continue;
      if (!types.empty() && !types.count(ev->find(field::kType)->as_str())) continue;
      if (!actor.empty() && !acted_by(*ev, actor)) continue;
      items.push_back(std::move(*ev));
      if (static_cast<int64_t>(items.size()) >= limit) break;
    }
    if (static_cast<int64_t>(out->elements.size()) < count) break;
    start = "(" + next;
  }
  return Reply::success({{field::kItems, Value(std::move(items))}, {field::kNext, Value(next)}});
}

// What was done on the server's host, outside any request (primaryctl
// firewall --apply, web-password): logged with who reported it, which the
// broker proved, and what the report says (tool, Unix user).
Reply AdminService::record(const Request& req) {
  Value fields(Value::Map{});
  for (const char* f : {field::kTool, field::kUser})
    if (const Value* v = req.get(f)) fields.set(f, *v);
  auto done = append_event(redis_, req.str(field::kAction), fields, pack_who(who_of(req)), config_.event_cap, now_ms_());
  if (!done) return redis_failure(done.error(), kStore);
  if (events_) events_->publish_entries(done->entries);
  return Reply::success({{field::kId, Value(done->id)}});
}

Reply AdminService::firewall() {
  // A wildcard port (*, 0) is the one the broker bound, from its endpoints file.
  std::vector<std::string> all = with_bound_ports(config_.front, config_.endpoints_file, "front");
  for (auto& ep : with_bound_ports(config_.events, config_.endpoints_file, "events")) all.push_back(std::move(ep));
  all.insert(all.end(), config_.web.begin(), config_.web.end());
  const std::vector<int> ports = tcp_ports(all);
  Value::Array port_list;
  std::string nft, iptables, firewalld, ufw;
  for (int p : ports) {
    const std::string ps = std::to_string(p);
    port_list.push_back(Value(Value::Map{{field::kPort, Value(p)}, {field::kProtocol, Value("tcp")}}));
    nft += "nft add rule inet filter input tcp dport " + ps + " accept\n";
    iptables += "iptables -A INPUT -p tcp --dport " + ps + " -j ACCEPT\n";
    iptables += "ip6tables -A INPUT -p tcp --dport " + ps + " -j ACCEPT\n";
    firewalld += "firewall-cmd --permanent --add-port=" + ps + "/tcp\n";
    ufw += "ufw allow " + ps + "/tcp\n";
  }
  if (!firewalld.empty()) firewalld += "firewall-cmd --reload\n";
  return Reply::success({{field::kPorts, Value(std::move(port_list))},
                         {field::kRules, Value(Value::Map{{"nftables", Value(nft)},
                                                    {"iptables", Value(iptables)},
                                                    {"firewalld", Value(firewalld)},
                                                    {"ufw", Value(ufw)}})}});
}

}  // namespace primary
