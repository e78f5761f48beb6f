// primary-bench chaos: the fault-injection run of tests/fault_test
// (tools/chaos) for minutes instead of seconds, with its figures: kills per
// kind, requests made and failed per kind, recovery times, the invariants
// checked at the end, orphans, and the RSS of the supervisor's tree at the
// start and end of the faults.
#include <signal.h>
#include <spdlog/fmt/fmt.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>

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

void print_memory(const Memory& start, const Memory& end) {
  print(fmt::format("{:<18} {:>16} {:>16}", "RSS MiB", "start of faults", "end of faults"));
  std::map<std::string, int> names;
  for (const auto& [name, v] : start.by_name) names[name];
  for (const auto& [name, v] : end.by_name) names[name];
  for (const auto& [name, unused] : names) {
    const auto cell = [&](const Memory& m) {
      const auto it = m.by_name.find(name);
      return it == m.by_name.end() ? std::string("-")
                                   : fmt::format("{:.1f} ({})", mib(it->second.second), it->second.first);
    };
    print(fmt::format("{:<18} {:>16} {:>16}", name, cell(start), cell(end)));
  }
  print(fmt::format("{:<18} {:>16.1f} {:>16.1f}", "sum", mib(start.rss_kib), mib(end.rss_kib)));
  print(fmt::format("Redis used_memory (its data): {:.1f} -> {:.1f} MiB", start.redis_used / 1048576.0,
                    end.redis_used / 1048576.0));
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
  print_memory(start, end);
  const double growth = growth_pct(start, end), growth_no_redis = growth_pct(start, end, "redis-server");
  const bool invariants = r.invariants_hold() && code == 0;
  print(fmt::format("primary-server stopped with SIGTERM: {}; load average {} -> {}",
                    code ? "exit " + std::to_string(*code) : std::string("killed"), load_start, load_end));
  print(fmt::format("RSS growth over the faults: {:.1f}% (without redis-server, whose data grows with the "
                    "reservations and the activity log: {:.1f}%)",
                    growth, growth_no_redis));
  print(fmt::format("invariants: {}; target RSS growth <= 10%: {}", invariants ? "hold" : "FAILED",
                    growth <= 10.0 ? "met" : "NOT met"));

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
      " rss_start_mib={:.1f} rss_end_mib={:.1f} rss_growth_pct={:.1f} rss_growth_pct_no_redis={:.1f} invariants={}",
      made, failed, chaos::percentile(rec, 0.5), chaos::percentile(rec, 0.99), chaos::percentile(rec, 1.0),
      r.unrecovered(), r.acked, r.present, r.max_reserved, r.purchased, r.over_cap,
      r.relicensed ? r.relicensed_ms : -1, r.orphans.size(), mib(start.rss_kib), mib(end.rss_kib), growth,
      growth_no_redis, invariants ? "ok" : "FAILED");
  print(figures);
  return invariants ? 0 : 1;
}

}  // namespace primary::bench
