// primary-bench chaos: the fault-injection run of tests/fault_test
// (tools/chaos) for minutes instead of seconds, with its figures: kills per
// kind, requests made and failed per kind, recovery times, the invariants
// checked at the end, orphans, and the RSS of each process kind (and of the
// supervisor's whole tree) at the start and end of the faults, against the
// target: each kind within 10% of its start, Redis beyond its data's growth.
#include <signal.h>
#include <spdlog/fmt/fmt.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>
#include <optional>
#include <set>
#include <tuple>
#include <vector>

#include "tools/bench/download.hpp"
#include "tools/bench/fleet.hpp"
#include "tools/bench/modes.hpp"
#include "tools/chaos/chaos.hpp"
#include "tools/chaos/procfs.hpp"

namespace primary::bench {

namespace {

using namespace std::chrono_literals;

void print(const std::string& line) {
  std::fputs(line.c_str(), stdout);
  std::fputc('\n', stdout);
  std::fflush(stdout);
}

int refuse(const std::string& why) {
  std::cerr << "primary-bench: " << why << std::endl;
  return 1;
}

std::string load_average() {
  const std::string text = read_text_file("/proc/loadavg");
  return text.substr(0, text.find(' '));
}

// The supervisor's tree now: RSS per process name and in all, and Redis's
// own count of the memory its data takes.
struct Memory {
  std::map<std::string, std::pair<int, uint64_t>> by_name;  // name -> processes, RSS KiB
  uint64_t rss_kib = 0;
  int64_t redis_used = -1;  // INFO memory used_memory, bytes
};

Memory memory(const ServerStack& stack) {
  Memory m;
  for (const auto& p : sample_tree(stack.pid())) {
    // The executable's name: /proc's comm cuts primary-licensed short.
    const auto info = chaos::proc_info(p.pid);
    if (info && info->state == 'Z') continue;  // a killed child not yet reaped: no memory, not a process of its kind
    auto& [n, kib] = m.by_name[info ? std::filesystem::path(info->exe).filename().string() : p.name];
    ++n;
    kib += p.rss_kib;
    m.rss_kib += p.rss_kib;
  }
  Redis redis = stack.redis();
  m.redis_used = redis_info(redis, "memory", "used_memory").value_or(-1);
  return m;
}

double mib(uint64_t kib) { return static_cast<double>(kib) / 1024.0; }

// RSS growth from `start` to `end` in percent, without the processes named `except`.
double growth_pct(const Memory& start, const Memory& end, const std::string& except = "") {
  const auto sum = [&](const Memory& m) {
    uint64_t kib = m.rss_kib;
    if (auto it = m.by_name.find(except); it != m.by_name.end()) kib -= it->second.second;
    return static_cast<double>(kib);
  };
  return sum(start) > 0 ? 100.0 * (sum(end) / sum(start) - 1) : 0;
}

constexpr double kGrowthTarget = 10.0;  // percent of a kind's RSS at the start

// One process kind's memory over the faults. A kind is compared as a kind:
// processes killed and restarted are new processes at the end; the
// licensing workers are summed.
struct KindMemory {
  std::string exe, key;  // executable name; short name in the figures' keys
  int procs_start = 0, procs_end = 0;
  uint64_t start_kib = 0, end_kib = 0;
  std::optional<double> growth;  // percent; nullopt when the kind was missing at the start or end
  // Redis only: RSS growth beyond its data's (used_memory) growth, percent
  // of its RSS at the start; nullopt when used_memory was not read.
  std::optional<double> beyond_data;
  // The figure the target judges: growth, or for Redis beyond_data.
  std::optional<double> judged() const { return exe == "redis-server" ? beyond_data : growth; }
  bool within() const { return judged() && *judged() <= kGrowthTarget; }
};

std::vector<KindMemory> by_kind(const Memory& start, const Memory& end) {
  static const std::vector<std::pair<std::string, std::string>> kinds = {
      {"primary-server", "server"}, {"primary-broker", "broker"},   {"primary-licensed", "licensed"},
      {"primary-admin", "admin"},   {"primary-updater", "updater"}, {"redis-server", "redis"}};
  std::vector<KindMemory> out;
  for (const auto& [exe, key] : kinds) {
    KindMemory k;
    k.exe = exe;
    k.key = key;
    if (auto it = start.by_name.find(exe); it != start.by_name.end())
      std::tie(k.procs_start, k.start_kib) = it->second;
    if (auto it = end.by_name.find(exe); it != end.by_name.end()) std::tie(k.procs_end, k.end_kib) = it->second;
    if (k.start_kib > 0 && k.procs_end > 0) {
      const double from = static_cast<double>(k.start_kib), to = static_cast<double>(k.end_kib);
      k.growth = 100.0 * (to / from - 1);
      if (exe == "redis-server" && start.redis_used >= 0 && end.redis_used >= 0) {
        const double data_kib = static_cast<double>(end.redis_used - start.redis_used) / 1024.0;
        k.beyond_data = 100.0 * (to - from - data_kib) / from;
      }
    }
    out.push_back(std::move(k));
  }
  return out;
}

std::string pct(const std::optional<double>& v) { return v ? fmt::format("{:.1f}", *v) : std::string("na"); }

double used_mib(int64_t bytes) { return bytes < 0 ? -1.0 : static_cast<double>(bytes) / 1048576.0; }

// The table per kind (the target's), then any other process name seen, the
// tree's sum and Redis's data.
void print_memory(const Memory& start, const Memory& end, const std::vector<KindMemory>& kinds) {
  print(fmt::format("{:<18} {:>16} {:>16} {:>8} {:>8}", "RSS MiB (procs)", "start of faults", "end of faults",
                    "growth%", "target"));
  const auto cell = [](uint64_t kib, int n) {
    return n ? fmt::format("{:.1f} ({})", mib(kib), n) : std::string("-");
  };
  for (const auto& k : kinds) {
    const std::string verdict = k.within() ? "ok" : "OVER";
    print(fmt::format("{:<18} {:>16} {:>16} {:>8} {:>8}", k.exe, cell(k.start_kib, k.procs_start),
                      cell(k.end_kib, k.procs_end), pct(k.growth), verdict));
  }
  std::set<std::string> others;  // process names outside the six kinds, if any
  for (const Memory* m : {&start, &end})
    for (const auto& [name, unused] : m->by_name)
      if (std::none_of(kinds.begin(), kinds.end(), [&](const KindMemory& k) { return k.exe == name; }))
        others.insert(name);
  for (const auto& name : others) {
    const auto at = [&](const Memory& m) {
      const auto it = m.by_name.find(name);
      return it == m.by_name.end() ? std::string("-") : cell(it->second.second, it->second.first);
    };
    print(fmt::format("{:<18} {:>16} {:>16}", name, at(start), at(end)));
  }
  print(fmt::format("{:<18} {:>16.1f} {:>16.1f} {:>8.1f}", "sum (tree)", mib(start.rss_kib), mib(end.rss_kib),
                    growth_pct(start, end)));
  const auto& redis = kinds.back();  // by_kind lists it last
  print(fmt::format("redis-server used_memory (its data): {:.1f} -> {:.1f} MiB; its RSS grew {} MiB, {}% of its "
                    "start beyond the data's growth",
                    used_mib(start.redis_used), used_mib(end.redis_used),
                    redis.growth ? fmt::format("{:.1f}", mib(redis.end_kib) - mib(redis.start_kib)) : "na",
                    pct(redis.beyond_data)));
}

}  // namespace

int run_chaos(const BenchEnv& env, const BenchSettings& s) {
  TempDir dir("primary-bench");
  if (!dir.ok()) return refuse("cannot create a temp dir");
  if (env.keep) dir.keep();
  zmq::context_t ctx(1);
  const std::string load_start = load_average();
  const auto faults = std::chrono::seconds(s.seconds);
  const int64_t licenses = s.computers;
  print(fmt::format("chaos: {} s of faults, a SIGKILL every {}-{} ms, seed {}, {} simulated Clients, {} licenses; "
                    "load average {}",
                    faults.count(), s.kill_min_ms, s.kill_max_ms, s.seed, s.clients, licenses, load_start));

  auto vendor = make_vendor_key(env, dir);
  if (!vendor) return refuse(vendor.error().message);
  auto release = publish_release(env, dir, *vendor + "/vendor.key", int64_t{3} << 20);
  if (!release) return refuse(release.error().message);
  ServerOptions so;
  so.vendor_pub = *vendor + "/vendor.pub";
  so.license_workers = s.license_workers > 0 ? s.license_workers : 2;
  so.front = "tcp://127.0.0.1:" + std::to_string(chaos::free_port());
  so.events = "tcp://127.0.0.1:" + std::to_string(chaos::free_port());
  // The fault test's server: quick worker expiry and restarts, Client
  // intervals of seconds, so that recovery is measurable.
  so.extra_args = {"--no-web", "--update-feed", "file://" + release->feed, "--sync-interval-s", "0",
                   "--updater-workers", "1", "--heartbeat-ms", std::to_string(s.heartbeat_ms),
                   "--restart-max-ms", "1000", "--check-interval-s", "3", "--grace-s", "2",
                   "--unlicensed-interval-s", "1"};
  auto stack = ServerStack::start(ctx, env, dir, so, true);
  if (!stack) return refuse(stack.error().message);
  auto purchased = unlock(ctx, env, dir, (*stack)->front(), licenses);
  if (!purchased) return refuse("unlock: " + purchased.error().message);
  auto synced = sync_and_approve(ctx, (*stack)->front(), *release, 120s);
  if (!synced) return refuse(synced.error().message);
  print(fmt::format("primary-server pid {} on {}, unlocked for {} licenses, release {} {} approved",
                    (*stack)->pid(), (*stack)->front(), *purchased, release->component, release->version));

  chaos::Target target;
  target.supervisor = (*stack)->pid();
  target.front = (*stack)->front();
  target.purchased = *purchased;
  target.component = release->component;
  target.sha256 = release->sha256;
  target.vendor_key = read_text_file(so.vendor_pub);
  target.scratch_dir = dir.path();
  chaos::Options o;
  o.warmup = 10s;
  o.faults = faults;
  o.kill_min = std::chrono::milliseconds(s.kill_min_ms);
  o.kill_max = std::chrono::milliseconds(s.kill_max_ms);
  o.seed = s.seed;
  o.clients = s.clients;
  o.worker_expiry = std::chrono::milliseconds(s.heartbeat_ms * 4);
  o.progress = [](const std::string& line) { print("  " + line); };
  chaos::Run run(ctx, target, o);
  const chaos::Report& r = run.report();
  if (!run.start()) return refuse(r.start_error);
  const Memory start = memory(**stack);
  print(fmt::format("Clients licensed, load running for {} s; faults begin", o.warmup.count() / 1000));
  run.faults();
  run.settle();
  const Memory end = memory(**stack);
  run.verify();
  ::kill((*stack)->pid(), SIGTERM);
  run.orphans(20s);
  const auto code = (*stack)->stop();
  const std::string load_end = load_average();

  for (const auto& line : r.lines()) print(line);
  print(fmt::format("{:<18} {:>6} {:>8} {:>8} {:>8}", "recovery ms", "kills", "p50", "p99", "max"));
  for (const auto& [kind, n] : r.kills_by_kind) {
    const auto rec = r.recovery_ms(kind);
    print(fmt::format("{:<18} {:>6} {:>8.0f} {:>8.0f} {:>8.0f}", kind, n, chaos::percentile(rec, 0.5),
                      chaos::percentile(rec, 0.99), chaos::percentile(rec, 1.0)));
  }
  const auto kinds = by_kind(start, end);
  print_memory(start, end, kinds);
  const double growth = growth_pct(start, end), growth_no_redis = growth_pct(start, end, "redis-server");
  const bool invariants = r.invariants_hold() && code == 0;
  std::string over, over_keys;  // the kinds over the target
  for (const auto& k : kinds) {
    if (k.within()) continue;
    over += fmt::format("{}{} {}{}", over.empty() ? "" : ", ", k.exe,
                        k.judged() ? fmt::format("{:+.1f}%", *k.judged()) : std::string("not measured"),
                        k.exe == "redis-server" ? " beyond its data" : "");
    over_keys += (over_keys.empty() ? "" : ",") + k.key;
  }
  print(fmt::format("primary-server stopped with SIGTERM: {}; load average {} -> {}",
                    code ? "exit " + std::to_string(*code) : std::string("killed"), load_start, load_end));
  print(fmt::format("RSS growth of the whole tree over the faults: {:.1f}% (without redis-server, whose data grows "
                    "with the reservations and the activity log: {:.1f}%)",
                    growth, growth_no_redis));
  print(fmt::format("invariants: {}", invariants ? "hold" : "FAILED"));
  print(fmt::format("target, each process's RSS within {:.0f}% of its start (Redis: beyond the growth of its data): {}",
                    kGrowthTarget, over.empty() ? "met" : "NOT met, over: " + over));

  std::string figures = fmt::format("seed={} minutes={:.1f} kills={}", s.seed, r.fault_seconds / 60.0, r.kills.size());
  for (const auto& kind : chaos::victim_kinds())
    figures += fmt::format(" kills_{}={}", kind, r.kills_by_kind.count(kind) ? r.kills_by_kind.at(kind) : 0);
  int64_t made = 0, failed = 0;
  for (const auto& [kind, c] : r.requests) {
    figures += fmt::format(" {}_made={} {}_failed={}", kind, c.made, kind, c.failed);
    made += c.made;
    failed += c.failed;
  }
  const auto rec = r.recovery_ms();
  figures += fmt::format(
      " requests={} failed={} recovery_p50_ms={:.0f} recovery_p99_ms={:.0f} recovery_max_ms={:.0f} unrecovered={}"
      " acked={} acked_present={} max_reserved={} purchased={} over_cap={} relicensed_ms={} orphans={}"
      " rss_start_mib={:.1f} rss_end_mib={:.1f} rss_growth_pct={:.1f} rss_growth_pct_no_redis={:.1f}",
      made, failed, chaos::percentile(rec, 0.5), chaos::percentile(rec, 0.99), chaos::percentile(rec, 1.0),
      r.unrecovered(), r.acked, r.present, r.max_reserved, r.purchased, r.over_cap,
      r.relicensed ? r.relicensed_ms : -1, r.orphans.size(), mib(start.rss_kib), mib(end.rss_kib), growth,
      growth_no_redis);
  for (const auto& k : kinds)
    figures += fmt::format(" rss_{0}_start_mib={1:.1f} rss_{0}_end_mib={2:.1f} rss_{0}_growth_pct={3}", k.key,
                           mib(k.start_kib), mib(k.end_kib), pct(k.growth));
  figures += fmt::format(" redis_used_start_mib={:.1f} redis_used_end_mib={:.1f} rss_redis_beyond_data_pct={}",
                         used_mib(start.redis_used), used_mib(end.redis_used), pct(kinds.back().beyond_data));
  figures += fmt::format(" rss_target={} rss_over={} invariants={}", over.empty() ? "met" : "NOT_met",
                         over.empty() ? "none" : over_keys, invariants ? "ok" : "FAILED");
  print(figures);
  return invariants ? 0 : 1;
}

}  // namespace primary::bench
