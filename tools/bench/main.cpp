// primary-bench: benchmarks of the broker and of the whole server. See
// docs/benchmarks.md for the modes and the figures they produce.
#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <random>

#include "common/config.hpp"
#include "common/process.hpp"
#include "tools/bench/children.hpp"
#include "tools/bench/modes.hpp"

int main(int argc, char** argv) {
  using namespace primary;
  using namespace primary::bench;
  Config cfg("primary-bench", "Benchmarks of the Primary Server (broker echo, idle cost, heartbeats, "
                              "reservations, scale, update downloads, random SIGKILLs); the last output line is key=value "
                              "figures");
  std::string mode;
  cfg.app()
      .add_option("mode", mode, "echo | idle | heartbeat | reserve | scale | download | chaos | client-idle | export")
      ->required()
      ->check(CLI::IsMember({"echo", "idle", "heartbeat", "reserve", "scale", "download", "chaos", "client-idle", "export"}));
  cfg.add_int("clients", 0, 0, 4096, "Client connections (0: the mode's default)");
  cfg.add_int("window", 0, 0, 100000, "Requests in flight per connection (0: the mode's default)");
  cfg.add_int("threads", 1, 1, 64, "Client poll threads sharing the connections");
  cfg.add_int("seconds", 0, 0, 86400, "Measured seconds (0: the mode's default)");
  cfg.add_int("rounds", 0, 0, 100,
              "echo/heartbeat: rounds, each the measurement then its reference; scale: rounds alternating the "
              "two fleet sizes (0: the mode's default, 3)");
  cfg.add_int("payload", 32, 0, 1 << 20, "echo: payload bytes");
  cfg.add_int("workers", 1, 1, 64, "echo: echo worker processes");
  cfg.add_int("plain-workers", 0, 0, 1024,
              "echo: also measure this many plain RFC 7 echo workers (one request each, no credit, no batch; "
              "threads of the bench) beside the credited path");
  cfg.add_string("front", "",
                 "echo: drive this already-running broker's front door instead of starting one (any RFC 7 "
                 "broker; needs --workers-endpoint and --plain-workers)");
  cfg.add_string("workers-endpoint", "", "echo: with --front, that broker's workers endpoint");
  cfg.add_int("slots", 64, 1, 1024,
              "echo: concurrent requests (credit) per echo worker (default: clients x window, at most "
              "1024); download: primary-updater --slots (8)");
  cfg.add_int("size", 0, 0, 16384, "download: size of the release file in MiB (0: 64)");
  cfg.add_int("computers", 0, 0, 10000000, "heartbeat/scale/export: reserved computers (0: the mode's default)");
  cfg.add_int("count", 0, 0, 10000000,
              "reserve: reservations to make; scale: reservations per rate measurement (0: default)");
  cfg.add_int("license-workers", 0, 0, 64, "primary-licensed processes (0: primary-server's default)");
  cfg.add_int("last-seen-quantum-ms", -1, -1, 3600000,
              "heartbeat/reserve/scale: primary-licensed --last-seen-quantum-ms (-1: its default; "
              "0: every heartbeat writes; scale: 0 unless given)");
  cfg.add_int("minutes", 0, 0, 7 * 1440, "chaos: minutes of faults (0: 10; --seconds instead for a short run)");
  cfg.add_int("kill-min-ms", 2000, 100, 3600000, "chaos: shortest time between two SIGKILLs");
  cfg.add_int("kill-max-ms", 6000, 100, 3600000, "chaos: longest time between two SIGKILLs");
  cfg.add_int("seed", 0, 0, INT64_MAX, "chaos: seed of the kills and the load (0: a random one, printed)");
  cfg.add_int("heartbeat-ms", 200, 10, 600000, "chaos: primary-server --heartbeat-ms (worker expiry)");
  cfg.add_string("bin-dir", "", "Directory of the primary-* executables (default: next to primary-bench)");
  cfg.add_string("log-level", "warn", "Log level of the server processes under test");
  cfg.add_string("broker-prefix", "",
                 "echo: command words run before the broker, e.g. 'valgrind --tool=callgrind "
                 "--callgrind-out-file=/tmp/broker.cg'");
  cfg.add_string("updater-prefix", "", "download: command words run before primary-updater (a profiler)");
  cfg.add_flag("keep", "Keep the temporary directory (logs, data) and print its path");
  cfg.add_int("timeout-s", 0, 0, 7 * 86400, "Abort after this long (0: a bound derived from the mode)");
  cfg.app().footer(
      "Mode defaults:\n"
      "  echo       --clients 4 --window 64 --seconds 5 --rounds 3 --payload 32 --workers 1 --slots 256\n"
      "             (slots: clients x window unless given) --plain-workers 0\n"
      "  idle       --seconds 60\n"
      "  heartbeat  --clients 8 --window 24 --seconds 10 --rounds 3 --computers 10000\n"
      "  reserve    --clients 8 --window 16 --count 20000\n"
      "  scale      --computers 1000000 --count 15000 --seconds 8 --rounds 3 (a 10,000-computer stack\n"
      "             and a --computers one, measured in alternation; phases use the heartbeat and\n"
      "             reserve shapes unless --clients/--window are given; --count reservations per size)\n"
      "  download   --clients 20 --window 8 --size 64 --slots 8 (chunks of 1 MiB; window = chunks in\n"
      "             flight per client)\n"
      "  client-idle --seconds 120 (per phase: licensed with the server up, then with it stopped)\n"
      "  export     --computers 1000000 (one in ten seen; then the console's /computers.csv and\n"
      "             primaryctl computers --csv, with the console's VmHWM/VmRSS and primaryctl's peak RSS)\n"
      "  chaos      --minutes 10 --clients 50 --kill-min-ms 2000 --kill-max-ms 6000 --heartbeat-ms 200\n"
      "             --computers 100 per second of faults (licenses; clients = simulated Clients)\n"
      "Exit codes: 0 measured; 1 the stack did not start or requests failed; 2 bad arguments;\n"
      "3 time limit; 128+N killed by signal N (children and temp dir are cleaned up in all cases).");
  cfg.parse(argc, argv);

  BenchSettings s = mode_defaults(mode);
  const auto pick = [&](const char* name, auto& field) {
    if (cfg.given(name) && cfg.integer(name) > 0) field = static_cast<std::remove_reference_t<decltype(field)>>(cfg.integer(name));
  };
  pick("clients", s.clients);
  pick("window", s.window);
  pick("threads", s.threads);
  pick("seconds", s.seconds);
  pick("rounds", s.rounds);
  pick("payload", s.payload);
  pick("workers", s.workers);
  pick("slots", s.slots);
  pick("plain-workers", s.plain_workers);
  s.front = cfg.str("front");
  s.workers_endpoint = cfg.str("workers-endpoint");
  pick("computers", s.computers);
  pick("count", s.count);
  pick("license-workers", s.license_workers);
  pick("size", s.size_mb);
  if (cfg.given("last-seen-quantum-ms")) s.last_seen_quantum_ms = cfg.integer("last-seen-quantum-ms");
  // An echo worker that can hold every request in flight: with fewer slots
  // the rest wait in the broker and go out one per reply (64 slots for 256
  // in flight: ~60,000 round trips/s; 256: ~110,000, docs/benchmarks.md, "echo").
  if (mode == "echo" && !(cfg.given("slots") && cfg.integer("slots") > 0))
    s.slots = std::min(1024, s.clients * s.window);
  if (cfg.given("payload") && cfg.integer("payload") == 0) s.payload = 0;
  if (mode == "chaos") {
    if (cfg.integer("minutes") > 0 && !cfg.given("seconds")) s.seconds = static_cast<int>(cfg.integer("minutes") * 60);
    if (s.computers == 0) s.computers = int64_t{100} * s.seconds;
    s.kill_min_ms = cfg.integer("kill-min-ms");
    s.kill_max_ms = std::max(s.kill_min_ms, cfg.integer("kill-max-ms"));
    s.heartbeat_ms = cfg.integer("heartbeat-ms");
    s.seed = cfg.integer("seed") > 0 ? static_cast<uint64_t>(cfg.integer("seed")) : std::random_device{}() | 1u;
  }

  BenchEnv env;
  env.bin_dir = cfg.str("bin-dir").empty() ? self_dir() : std::filesystem::absolute(cfg.str("bin-dir")).string();
  env.log_level = cfg.str("log-level");
  env.keep = cfg.flag("keep");
  env.broker_prefix = split_list(cfg.str("broker-prefix"), ' ');
  env.updater_prefix = split_list(cfg.str("updater-prefix"), ' ');

  const auto limit = cfg.integer("timeout-s") > 0 ? std::chrono::seconds(cfg.integer("timeout-s"))
                                                  : time_limit(mode, s);
  start_watchdog(limit);  // before any other thread exists
  if (mode == "echo") return run_echo(env, s);
  if (mode == "idle") return run_idle(env, s);
  if (mode == "heartbeat") return run_heartbeat(env, s);
  if (mode == "reserve") return run_reserve(env, s);
  if (mode == "download") return run_download(env, s);
  if (mode == "chaos") return run_chaos(env, s);
  if (mode == "client-idle") return run_client_idle(env, s);
  if (mode == "export") return run_export(env, s);
  return run_scale(env, s);
}
