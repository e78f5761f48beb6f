// primaryctl subcommands of the admin service and the event stream: status,
// computers, the activity log (paged, followed, or caught up into the live
// stream) and firewall rules.
#include <pwd.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <ctime>
#include <deque>
#include <memory>
#include <optional>
#include <ostream>
#include <sstream>
#include <tuple>

#include "ctl/commands.hpp"

#include "common/fleet_export.hpp"
#include "common/names.hpp"
#include "common/schema.hpp"
#include "common/text.hpp"

namespace primary::ctl {
namespace {

constexpr const char* kService = "admin";
constexpr int64_t kPage = 1000;       // the most admin.computers and admin.log give per call
constexpr int64_t kRecentScan = 1000;  // log entries `computer` looks through

std::optional<std::pair<uint64_t, uint64_t>> parse_event_id(std::string_view id) {
  const auto dash = id.find('-');
  if (dash == std::string_view::npos || dash == 0 || dash + 1 == id.size()) return std::nullopt;
  std::pair<uint64_t, uint64_t> out{0, 0};
  auto [p1, e1] = std::from_chars(id.data(), id.data() + dash, out.first);
  auto [p2, e2] = std::from_chars(id.data() + dash + 1, id.data() + id.size(), out.second);
  if (e1 != std::errc() || p1 != id.data() + dash || e2 != std::errc() ||
      p2 != id.data() + id.size())
    return std::nullopt;
  return out;
}

// One page of admin.log: entries strictly after `since`.
struct LogPage : primary::LogPage {
  int exit = kOk;
};

LogPage log_page(Context& ctx, const std::string& since, int64_t limit,
                 const std::vector<std::string>& types = {}, const std::string& actor = {}) {
  LogPage page;
  Answer a = ask(ctx, kService, opname::kLog, log_request(since, limit, types, actor));
  page.exit = a.exit;
  if (a) static_cast<primary::LogPage&>(page) = log_page_of(a.reply);
  return page;
}

// The newest `scan` entries of the activity log. admin.log only reads
// forward from an id, so this steps back in time from now (1 minute, then 4
// times further each step) until a window holds `scan` entries or reaches
// the oldest entry, then reads that window to its end. Each step is one
// bounded call; the last step reads every entry of its window.
LogPage recent_entries(Context& ctx, int64_t scan) {
  LogPage oldest = log_page(ctx, "", 1);
  if (oldest.exit != kOk || oldest.items.empty()) return oldest;
  const int64_t oldest_ms = reply_int(oldest.items.front(), field::kTs, 0);
  const int64_t now = ctx.host.now_ms();
  for (int64_t window = 60000;; window *= 4) {
    const bool whole = now - window <= oldest_ms;
    const std::string since = whole ? "" : std::to_string(now - window) + "-0";
    LogPage page = log_page(ctx, since, scan);
    if (page.exit != kOk) return page;
    if (static_cast<int64_t>(page.items.size()) < scan && !whole) continue;
    std::deque<Value> tail(page.items.begin(), page.items.end());
    std::string from = page.next;
    bool full = static_cast<int64_t>(page.items.size()) == scan;
    while (full) {
      LogPage more = log_page(ctx, from, kPage);
      if (more.exit != kOk) return more;
      for (auto& item : more.items) {
        tail.push_back(std::move(item));
        if (static_cast<int64_t>(tail.size()) > scan) tail.pop_front();
      }
      full = static_cast<int64_t>(more.items.size()) == kPage && more.next != from;
      from = more.next;
    }
    page.items.assign(tail.begin(), tail.end());
    return page;
  }
}

// Streams table rows page by page, the header with the first page: columns
// only grow, so the table stays aligned unless a later page has a longer value.
class TableWriter {
 public:
  TableWriter(std::ostream& out, std::vector<std::string> header)
      : out_(out), header_(std::move(header)) {}
  // Writes the header (once) and `rows`.
  void write(std::vector<std::vector<std::string>> rows) {
    if (!header_.empty()) {
      rows.insert(rows.begin(), std::move(header_));
      header_.clear();
    }
    for (const auto& row : rows)
      for (size_t i = 0; i < row.size(); ++i) {
        if (width_.size() <= i) width_.push_back(0);
        width_[i] = std::max(width_[i], row[i].size());
      }
    for (const auto& row : rows) {
      std::string line;
      for (size_t i = 0; i < row.size(); ++i) {
        line += row[i];
        if (i + 1 < row.size()) line += std::string(width_[i] - row[i].size() + 2, ' ');
      }
      out_ << line << "\n";
    }
    out_.flush();
  }

 private:
  std::ostream& out_;
  std::vector<std::string> header_;
  std::vector<size_t> width_;
};

int status(Context& ctx) {
  Answer a = ask(ctx, kService, field::kStatus);
  if (!a) return a.exit;
  if (ctx.json) {
    print_json(ctx, a.reply);
    return kOk;
  }
  const Value& r = a.reply;
  std::string services;
  if (const Value* s = r.find(field::kServices); s && s->is_map())
    for (const auto& [name, n] : s->as_map())
      services += (services.empty() ? "" : ", ") + name + " " + field_text(n);
  const std::string serial = reply_str(r, field::kSerial);
  print_table(ctx.out, {{field::kSerial, serial.empty() ? "(none registered)" : serial},
                        {field::kPurchased, std::to_string(reply_int(r, field::kPurchased, 0))},
                        {field::kReserved, std::to_string(reply_int(r, field::kReserved, 0))},
                        {field::kActive, std::to_string(reply_int(r, field::kActive, 0))},
                        {field::kLost, std::to_string(reply_int(r, field::kLost, 0))},
                        {"never seen", std::to_string(reply_int(r, field::kNeverSeen, 0))},
                        {"clock skewed", std::to_string(reply_int(r, field::kClockSkewed, 0))},
                        {field::kStale, std::to_string(reply_int(r, field::kStale, 0))},
                        {field::kVersion, reply_str(r, field::kVersion)},
                        {"uptime", duration_text(reply_int(r, field::kUptimeS, 0))},
                        {field::kServices, services.empty() ? "(none)" : services}});
  return kOk;
}

struct ComputersArgs {
  std::string state, sort = "name";
  int64_t limit = 0;  // 0: all
  bool csv = false, jsonl = false;
  bool stale = false;
};

// --csv / --jsonl: the whole fleet (of --state), a page at a time
// (common/fleet_export.hpp).
int export_computers(Context& ctx, const ComputersArgs& a) {
  if (ctx.json || a.limit) {
    ctx.err << "primaryctl: --csv and --jsonl export every computer; they go with neither --json nor --limit\n";
    return kUsage;
  }
  int exit = kOk;
  FleetExport fleet(a.csv ? ExportFormat::Csv : ExportFormat::Jsonl,
                    [&](Value::Map fields) -> Result<Value> {
                      Answer ans = ask(ctx, kService, opname::kComputers, std::move(fields));
                      exit = ans.exit;
                      return ans.reply;  // not ok when ask failed (the reason is on ctx.err)
                    },
                    a.state, a.sort);
  for (;;) {
    auto text = fleet.next();
    if (!text) return exit != kOk ? exit : kServerError;
    if (!*text) return kOk;
    ctx.out << **text;
    ctx.out.flush();
  }
}

// The table, or with --json one array of admin.computers items over all pages.
int computers(Context& ctx, const ComputersArgs& a) {
  if (a.csv || a.jsonl) return export_computers(ctx, a);
  TableWriter table(ctx.out, {"COMPUTER", "STATE", "LAST-SEEN", "VERSION"});
  JsonArray array(ctx.out);
  int64_t printed = 0;
  std::string cursor;
  for (;;) {
    const int64_t want = a.limit ? std::min(kPage, a.limit - printed) : kPage;
    Value::Map fields{{field::kLimit, Value(want)}, {field::kSort, Value(a.sort)}};
    if (!a.state.empty()) fields.emplace_back(field::kState, Value(a.state));
    if (a.stale) fields.emplace_back(field::kStale, Value(true));
    if (!cursor.empty()) fields.emplace_back(field::kCursor, Value(cursor));
    Answer ans = ask(ctx, kService, opname::kComputers, std::move(fields));
    if (!ans) return ans.exit;
    std::vector<std::vector<std::string>> rows;
    if (const Value* items = ans.reply.find(field::kItems); items && items->is_array())
      for (const Value& item : items->as_array()) {
        if (a.limit && printed >= a.limit) break;
        ++printed;
        if (ctx.json) {
          array.add(item);
          continue;
        }
        const Value* seen = item.find(field::kLastSeen);
        const std::string version = reply_str(item, field::kVersion);
        rows.push_back({reply_str(item, field::kComputer), reply_str(item, field::kState),
                        seen && seen->is_int() ? iso_utc(seen->as_int(), false) : "-",
                        version.empty() ? "-" : version});
      }
    if (!rows.empty()) table.write(std::move(rows));
    cursor = reply_str(ans.reply, field::kCursor);
    if (cursor.empty() || (a.limit && printed >= a.limit)) {
      if (ctx.json) array.close();
      else table.write({});  // the header alone when nothing matched
      return kOk;
    }
  }
}

int computer(Context& ctx, const std::string& name) {
  Answer info = ask(ctx, svc::kLicenseControl, opname::kSetupInfo, {{field::kComputer, Value(name)}});
  if (!info) return info.exit;
  const Value& r = info.reply;
  std::string endpoints;
  if (const Value* eps = r.find(field::kEndpoints); eps && eps->is_array())
    for (const Value& ep : eps->as_array()) endpoints += (endpoints.empty() ? "" : ", ") + field_text(ep);
  std::vector<std::vector<std::string>> rows = {{field::kComputer, reply_str(r, field::kComputer)},
                                                {field::kLicense, reply_str(r, field::kLicense)},
                                                {field::kSerial, reply_str(r, field::kSerial)},
                                                {field::kEndpoints, endpoints}};
  if (r.find(field::kServerKey)) rows.push_back({"server key", reply_str(r, field::kServerKey)});
  rows.push_back({"lease key", reply_str(r, field::kLeaseKey)});
  if (const Value* set = r.find(field::kLeaseKeys); set && set->is_array() && set->as_array().size() > 1) {
    std::string keys;  // during a rotation: every key a verifier must accept
    for (const Value& k : set->as_array()) keys += (keys.empty() ? "" : ", ") + field_text(k);
    rows.push_back({"lease keys", keys});
  }
  Answer state = ask(ctx, kService, field::kComputer, {{field::kComputer, Value(name)}});
  if (!state) return state.exit;
  auto when = [&](const char* key) {
    const Value* v = state.reply.find(key);
    return v && v->is_int() ? iso_utc(v->as_int(), false) : std::string("-");
  };
  rows.push_back({field::kState, reply_str(state.reply, field::kState)});
  rows.push_back({"reserved at", when(field::kReservedAt)});
  rows.push_back({"first seen", when(field::kFirstSeen)});
  rows.push_back({"last seen", when(field::kLastSeen)});
  rows.push_back({field::kVersion, state.reply.find(field::kVersion) ? reply_str(state.reply, field::kVersion) : "-"});
  rows.push_back({field::kPeer, state.reply.find(field::kPeer) ? reply_str(state.reply, field::kPeer) : "-"});
  rows.push_back({"clock skew", state.reply.find(field::kClockSkewS)
                                    ? std::to_string(reply_int(state.reply, field::kClockSkewS, 0)) + " s"
                                    : "-"});
  rows.push_back({"commands pending", std::to_string(reply_int(state.reply, field::kCommandsPending, 0))});

  LogPage recent = recent_entries(ctx, kRecentScan);
  if (recent.exit != kOk) return recent.exit;
  const std::string wanted = reply_str(r, field::kComputer);
  std::vector<const Value*> mine;
  for (const Value& e : recent.items)
    if (reply_str(e, field::kComputer) == wanted) mine.push_back(&e);
  if (ctx.json) {
    // {setup: setup_info, state: admin.computer, activity: [events], scanned: N}
    Value::Array activity;
    for (const Value* e : mine) activity.push_back(*e);
    print_json(ctx, Value(Value::Map{{"setup", without_envelope(r)},
                                     {field::kState, without_envelope(state.reply)},
                                     {"activity", Value(std::move(activity))},
                                     {"scanned", Value(static_cast<int64_t>(recent.items.size()))}}));
    return kOk;
  }
  print_table(ctx.out, rows);
  ctx.out << "\nactivity in the last " << recent.items.size() << " log entries: " << mine.size()
          << (mine.size() == 1 ? " event" : " events") << "\n";
  for (const Value* e : mine) ctx.out << event_line(*e) << "\n";
  return kOk;
}

struct LogArgs {
  std::string since, actor;
  std::vector<std::string> types;
  int64_t limit = 0;  // 0: no bound
  bool follow = false;
};

// Lines; with --json an array of the entries, or with --follow (a stream
// with no end) one entry a line.
int log(Context& ctx, const LogArgs& a) {
  std::string since = a.since;
  int64_t printed = 0;
  JsonArray array(ctx.out);
  const bool as_array = ctx.json && !a.follow;
  auto print = [&](const Value& e) {
    if (as_array) array.add(e);
    else if (ctx.json) print_json(ctx, e);
    else ctx.out << event_line(e) << "\n";
  };
  auto done = [&] {
    if (as_array) array.close();
    return static_cast<int>(kOk);
  };
  for (;;) {
    const int64_t want = a.limit ? std::min(kPage, a.limit - printed) : kPage;
    LogPage page = log_page(ctx, since, want, a.types, a.actor);
    if (page.exit == kUnreachable && a.follow) {  // the server may be restarting
      ctx.host.sleep(std::chrono::seconds(1));
      continue;
    }
    if (page.exit != kOk) return page.exit;
    for (const Value& e : page.items) {
      print(e);
      if (a.limit && ++printed >= a.limit) return done();
    }
    ctx.out.flush();
    // `next` moves past every entry scanned, kept or not; when it stays, the
    // log has nothing newer.
    if (!page.next.empty() && page.next != since) {
      since = page.next;
      continue;
    }
    if (!a.follow) return done();
    ctx.host.sleep(std::chrono::seconds(1));
  }
}

struct EventsArgs {
  std::string since;
  int64_t count = 0;  // 0: until interrupted
};

int events(Context& ctx, const EventsArgs& a) {
  auto next = ctx.subscribe();
  if (!next) {
    ctx.err << "primaryctl: " << next.error().message << "\n";
    return kUsage;
  }
  int64_t printed = 0;
  std::string log_last = a.since;  // the last id printed from the log
  auto print = [&](const Value& e) {
    if (ctx.json) print_json(ctx, e);  // a stream: one object a line
    else ctx.out << event_line(e) << "\n";
    ctx.out.flush();
    return a.count && ++printed >= a.count;
  };
  // Prints the log after log_last; true when --count is reached or on an error.
  auto catch_up = [&](int* exit) {
    for (;;) {
      LogPage page = log_page(ctx, log_last, kPage);
      if (page.exit != kOk) {
        *exit = page.exit;
        return true;
      }
      for (const Value& e : page.items) {
        log_last = reply_str(e, field::kId);
        if (print(e)) return true;
      }
      if (static_cast<int64_t>(page.items.size()) < kPage) return false;
    }
  };
  int exit = kOk;
  // Subscribed first, then the log: nothing falls between the two.
  if (!a.since.empty() && catch_up(&exit)) return exit;
  bool rejoined = a.since.empty();
  for (;;) {
    std::optional<Value> e = (*next)(1000);
    if (!e) continue;
    if (!rejoined) {
      // The subscription takes effect a little after connecting; read the
      // log once more up to this first live event so none is lost.
      rejoined = true;
      if (catch_up(&exit)) return exit;
    }
    if (!log_last.empty() && !event_id_less(log_last, reply_str(*e, field::kId))) continue;
    if (print(*e)) return kOk;
  }
}

struct HistoryArgs {
  std::string from, to, resolution = resolution::kHour;
};

// "1796688000000" (Unix ms), "2026-12-08" or "2026-12-08T09:30:00Z" (UTC).
std::optional<int64_t> parse_time(const std::string& text) {
  int64_t ms = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), ms);
  if (ec == std::errc() && end == text.data() + text.size()) return ms;
  std::tm tm{};
  const char* rest = ::strptime(text.c_str(), "%Y-%m-%d", &tm);
  if (!rest) return std::nullopt;
  if (*rest == 'T' || *rest == ' ') {
    rest = ::strptime(rest + 1, "%H:%M:%S", &tm);
    if (!rest) return std::nullopt;
    if (*rest == 'Z') ++rest;
  }
  if (*rest != '\0') return std::nullopt;
  return static_cast<int64_t>(::timegm(&tm)) * 1000;
}

// One line per period with a sample, every page; --json an array of points.
int history(Context& ctx, const HistoryArgs& a) {
  Value::Map base{{field::kResolution, Value(a.resolution)}};
  for (const auto& [flag, text, key] : {std::tuple{"--from", a.from, field::kFrom}, std::tuple{"--to", a.to, field::kTo}}) {
    if (text.empty()) continue;
    const auto t = parse_time(text);
    if (!t) {
      ctx.err << "primaryctl: " << flag << " " << text << ": expected Unix ms, YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ\n";
      return kUsage;
    }
    base.emplace_back(key, Value(*t));
  }
  TableWriter table(ctx.out, {"PERIOD", "PURCHASED", "RESERVED", "ACTIVE", "LOST", "NEVER-SEEN", "HEARTBEATS",
                              "FIRST-VERIFIED", "REJECTED", "WENT-LOST", "RETURNED", "RESERVATIONS", "REFUSALS",
                              "UPDATE-CHECKS", "BYTES-SERVED"});
  JsonArray array(ctx.out);
  for (;;) {
    Answer ans = ask(ctx, kService, opname::kHistory, base);
    if (!ans) return ans.exit;
    std::vector<std::vector<std::string>> rows;
    if (const Value* points = ans.reply.find(field::kPoints); points && points->is_array())
      for (const Value& p : points->as_array()) {
        if (ctx.json) {
          array.add(p);
          continue;
        }
        std::vector<std::string> row{iso_utc(reply_int(p, field::kTs, 0), false)};
        for (const char* key : {field::kPurchased, field::kReserved, field::kActive, field::kLost, field::kNeverSeen,
                                field::kHeartbeats, field::kFirstVerifications, field::kRejections, field::kWentLost,
                                field::kReturned, field::kReservations, field::kRefusals, field::kUpdateChecks,
                                field::kBytesServed})
          row.push_back(p.find(key) ? std::to_string(reply_int(p, key, 0)) : "-");
        rows.push_back(std::move(row));
      }
    if (!rows.empty()) table.write(std::move(rows));
    const Value* next = ans.reply.find(field::kNext);
    if (!next || !next->is_int()) break;
    bool replaced = false;
    for (auto& [k, v] : base)
      if (k == field::kFrom) v = *next, replaced = true;
    if (!replaced) base.emplace_back(field::kFrom, *next);
  }
  if (ctx.json) array.close();
  else table.write({});
  return kOk;
}

struct FirewallArgs {
  bool apply = false, yes = false;
  std::string tool;
};

// Tool name -> the key of admin.firewall's `rules`, and the program that
// tells it is installed, in the order --apply looks for them.
struct Tool {
  const char* name;
  const char* rules_key;
  const char* program;
};
constexpr Tool kTools[] = {{"nft", "nftables", "nft"},
                           {"firewalld", "firewalld", "firewall-cmd"},
                           {"ufw", "ufw", "ufw"},
                           {"iptables", "iptables", "iptables"}};

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    if (end > start) out.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

// The activity log's record of rules applied on this host: who (the key
// this primaryctl used, as the broker proves it) and, as reported, the tool
// and the Unix user. A failure to record is reported, not fatal: the rules
// are in force.
void record_applied(Context& ctx, const std::string& tool) {
  Value::Map fields{{field::kAction, Value(event::kFirewallApplied)}, {field::kTool, Value(tool)}};
  if (const passwd* pw = ::getpwuid(::geteuid())) fields.emplace_back(field::kUser, Value(std::string(pw->pw_name)));
  std::ostringstream quiet;
  Context muted{ctx.send, ctx.out, quiet, ctx.send_many, ctx.subscribe, ctx.host, ctx.json};
  if (Answer a = ask(muted, kService, opname::kRecord, std::move(fields)); !a)
    ctx.err << "primaryctl: the rules are applied, but the activity log does not say so: " << quiet.str();
}

int firewall(Context& ctx, const FirewallArgs& a) {
  Answer ans = ask(ctx, kService, opname::kFirewall);
  if (!ans) return ans.exit;
  const Value* rules = ans.reply.find(field::kRules);
  auto rules_of = [&](const Tool& t) { return rules ? reply_str(*rules, t.rules_key) : std::string(); };
  const Tool* chosen = nullptr;
  for (const Tool& t : kTools)
    if (a.tool == t.name) chosen = &t;

  if (!a.apply && ctx.json) {
    Value out = without_envelope(ans.reply);
    if (chosen) out.set(field::kRules, Value(Value::Map{{chosen->rules_key, Value(rules_of(*chosen))}}));
    print_json(ctx, out);
    return kOk;
  }
  if (!a.apply) {
    std::string ports;
    if (const Value* p = ans.reply.find(field::kPorts); p && p->is_array())
      for (const Value& port : p->as_array())
        ports += " " + std::to_string(reply_int(port, field::kPort, 0)) + "/" + reply_str(port, field::kProtocol);
    ctx.out << "ports:" << (ports.empty() ? " (none)" : ports) << "\n";
    for (const Tool& t : kTools) {
      if (chosen && chosen != &t) continue;
      ctx.out << "\n# " << t.name << "\n";
      for (const auto& line : lines_of(rules_of(t))) ctx.out << line << "\n";
    }
    return kOk;
  }

  if (!chosen)
    for (const Tool& t : kTools)
      if (ctx.host.on_path(t.program)) {
        chosen = &t;
        break;
      }
  if (!chosen) {
    ctx.err << "primaryctl: no firewall tool found on PATH (nft, firewall-cmd, ufw, iptables); "
               "name one with --tool\n";
    return kServerError;
  }
  const auto commands = lines_of(rules_of(*chosen));
  // --json: {tool, dry_run, commands: [{command, exit (when run)}]}
  Value::Array ran;
  auto report = [&](int exit) {
    if (!ctx.json) return exit;
    if (!a.yes)
      for (const auto& line : commands) ran.emplace_back(Value::Map{{field::kCommand, Value(line)}});
    print_json(ctx, Value(Value::Map{{"tool", Value(chosen->name)},
                                     {"dry_run", Value(!a.yes)},
                                     {field::kCommands, Value(std::move(ran))}}));
    return exit;
  };
  if (ctx.json && (!a.yes || commands.empty())) return report(kOk);
  if (commands.empty()) {
    ctx.out << "# " << chosen->name << ": no ports to open\n";
    return kOk;
  }
  if (!a.yes) {
    ctx.out << "# dry run for " << chosen->name
            << ": these commands would run with /bin/sh (add --yes to run them)\n";
    for (const auto& line : commands) ctx.out << line << "\n";
    return kOk;
  }
  for (const auto& line : commands) {
    if (!ctx.json) {
      ctx.out << "+ " << line << "\n";
      ctx.out.flush();
    }
    // With --json the tool's own output goes to stderr: stdout is one document.
    const int rc = ctx.host.shell(ctx.json ? "(" + line + ") 1>&2" : line);
    ran.emplace_back(Value::Map{{field::kCommand, Value(line)}, {"exit", Value(rc)}});
    if (rc != 0) {
      ctx.err << "primaryctl: '" << line << "' failed with exit status " << rc
              << "; the commands after it were not run\n";
      return report(kServerError);
    }
  }
  record_applied(ctx, chosen->name);
  return report(kOk);
}

}  // namespace

bool event_id_less(std::string_view a, std::string_view b) {
  auto x = parse_event_id(a), y = parse_event_id(b);
  if (!y) return false;
  if (!x) return true;  // an id that is not one sorts before every id
  return *x < *y;
}

std::string iso_utc(int64_t unix_ms, bool millis) {
  int64_t s = unix_ms / 1000, ms = unix_ms % 1000;
  if (ms < 0) {
    ms += 1000;
    --s;
  }
  const std::time_t t = static_cast<std::time_t>(s);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char buf[40];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  std::string out = buf;
  if (millis) {
    char frac[8];
    std::snprintf(frac, sizeof frac, ".%03d", static_cast<int>(ms));
    out += frac;
  }
  return out + "Z";
}

std::string event_line(const Value& event) {
  std::string line = iso_utc(reply_int(event, field::kTs, 0)) + " " + reply_str(event, field::kType);
  // The server's field order is not stable (it comes from a Lua table):
  // `computer` first, then by name.
  std::vector<const Value::Map::value_type*> fields;
  if (event.is_map())
    for (const auto& kv : event.as_map())
      if (kv.first != field::kId && kv.first != field::kTs && kv.first != field::kType &&
          kv.first != field::kActor && kv.first != field::kVia)
        fields.push_back(&kv);
  std::sort(fields.begin(), fields.end(), [](auto* a, auto* b) {
    return std::make_pair(a->first != field::kComputer, a->first) <
           std::make_pair(b->first != field::kComputer, b->first);
  });
  for (const auto* kv : fields) line += " " + kv->first + "=" + field_text(kv->second);
  line += " id=" + reply_str(event, field::kId);
  if (const std::string actor = event_actor(event, true); !actor.empty()) line += " by " + actor;
  return line;
}

Action declare_status(CLI::App&) { return status; }

Action declare_computers(CLI::App& sub) {
  auto a = std::make_shared<ComputersArgs>();
  sub.add_option("--state", a->state, "Only computers in this state")
      ->check(CLI::IsMember({field::kReserved, field::kActive, field::kLost}));
  sub.add_option("--sort", a->sort, "Order: name (default) or last-seen (newest first)")
      ->check(CLI::IsMember({"name", "last-seen"}));
  sub.add_option("--limit", a->limit, "Print at most N rows (default: all)")
      ->check(CLI::PositiveNumber);
  auto* csv = sub.add_flag("--csv", a->csv,
                           "Export every computer as CSV (RFC 4180, header row; a cell starting with = + - @ "
                           "gets a leading ')");
  sub.add_flag("--jsonl", a->jsonl, "Export every computer as JSON lines, one object a line")->excludes(csv);
  sub.add_flag("--stale", a->stale,
               "Only stale computers: never seen long after their reservation, or lost and long silent "
               "(seats to ask the vendor about)");
  return [a](Context& ctx) { return computers(ctx, *a); };
}

Action declare_computer(CLI::App& sub) {
  auto name = std::make_shared<std::string>();
  sub.add_option("name", *name, "Computer name")->required();
  return [name](Context& ctx) { return computer(ctx, *name); };
}

Action declare_log(CLI::App& sub) {
  auto a = std::make_shared<LogArgs>();
  sub.add_option("--since", a->since, "Only entries after this event id");
  sub.add_option("--type", a->types, "Only events of this type (repeat, or comma-separate)")
      ->delimiter(',');
  sub.add_option("--actor", a->actor, "Only events caused by this actor (an admin key's name, web:IP, local, ...), "
                                      "or done through it (the console's key)")
      ->check(CLI::Validator(
          [](std::string& v) { return v.empty() || v.size() > 128 ? std::string("1 to 128 characters") : std::string(); },
          ""));
  sub.add_option("--limit", a->limit, "Print at most N events (default: all)")
      ->check(CLI::PositiveNumber);
  sub.add_flag("--follow,-f", a->follow, "Keep polling every second for new events");
  auto v = std::make_shared<LogVerifyArgs>();
  CLI::App* verify = sub.add_subcommand("verify", "Check the hash chain and signed checkpoints; exit 1 at the first break");
  verify->add_option("--file", v->files, "Activity log files, oldest first (default: the stream, via the server)");
  verify->add_option("--key", v->keys, "Also trust this log public key (base64url; e.g. one rotated out)");
  verify->add_flag("--offline", v->offline, "With --file: do not ask the server (tail cuts go unseen)");
  CLI::App* key = sub.add_subcommand("key", "Print the server's log checkpoint public key (base64url)");
  return [a, v, verify, key](Context& ctx) {
    if (verify->parsed()) return log_verify(ctx, *v);
    if (key->parsed()) return log_key(ctx);
    return log(ctx, *a);
  };
}

Action declare_events(CLI::App& sub) {
  auto a = std::make_shared<EventsArgs>();
  sub.add_option("--since", a->since,
                 "First print the activity log after this event id, then the live events");
  sub.add_option("--count", a->count, "Stop after N events (default: until interrupted)")
      ->check(CLI::PositiveNumber);
  return [a](Context& ctx) { return events(ctx, *a); };
}

Action declare_history(CLI::App& sub) {
  auto a = std::make_shared<HistoryArgs>();
  sub.add_option("--from", a->from, "First period: Unix ms, YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ (default: 48 h or 30 days ago)");
  sub.add_option("--to", a->to, "Last period, the same forms (default: now)");
  sub.add_option("--resolution", a->resolution, "hour (kept 14 days, default) or day (kept 2 years)")
      ->check(CLI::IsMember({resolution::kHour, resolution::kDay}));
  return [a](Context& ctx) { return history(ctx, *a); };
}

Action declare_firewall(CLI::App& sub) {
  auto a = std::make_shared<FirewallArgs>();
  sub.add_flag("--apply", a->apply,
               "Use the host's tool (first found of nft, firewall-cmd, ufw, iptables); a dry "
               "run unless --yes");
  sub.add_option("--tool", a->tool, "Only this tool's rules (with --apply: use it)")
      ->check(CLI::IsMember({"nft", "iptables", "firewalld", "ufw"}));
  sub.add_flag("--yes", a->yes, "With --apply: run the commands, stopping at the first failure");
  return [a](Context& ctx) { return firewall(ctx, *a); };
}

}  // namespace primary::ctl
