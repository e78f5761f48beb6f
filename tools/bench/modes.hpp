// The benchmark modes of primary-bench. Each prints what it did and ends
// with one line of space-separated key=value figures; each returns the
// process exit code (0 measured, 1 the system under test failed).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "tools/bench/stack.hpp"

namespace primary::bench {

struct BenchSettings {
  int clients = 4, window = 64, threads = 1, seconds = 5;
  int rounds = 1;  // echo, heartbeat, scale: measurements alternated with their reference
  int payload = 32, workers = 1, slots = 64;  // echo
  // echo: plain RFC 7 echo workers measured beside the credited ones (0:
  // none); a running broker to drive instead of starting one (then only
  // the plain workers are measured).
  int plain_workers = 0;
  std::string front, workers_endpoint;
  int64_t computers = 10000, count = 20000;   // licensing
  int license_workers = 0;                    // 0: primary-server's default
  int64_t last_seen_quantum_ms = -1;          // primary-licensed's; -1: its default
  int64_t size_mb = 64;                       // download: release file size, MiB
  int64_t kill_min_ms = 2000, kill_max_ms = 6000, heartbeat_ms = 200;  // chaos
  uint64_t seed = 0;                                                   // chaos: 0 random
};

// Defaults that differ by mode, for settings not given on the command line.
BenchSettings mode_defaults(const std::string& mode);
// An upper bound on the mode's run time, for the watchdog.
std::chrono::seconds time_limit(const std::string& mode, const BenchSettings& s);

int run_echo(const BenchEnv& env, const BenchSettings& s);
int run_idle(const BenchEnv& env, const BenchSettings& s);
int run_heartbeat(const BenchEnv& env, const BenchSettings& s);
int run_reserve(const BenchEnv& env, const BenchSettings& s);
int run_scale(const BenchEnv& env, const BenchSettings& s);
int run_download(const BenchEnv& env, const BenchSettings& s);
int run_chaos(const BenchEnv& env, const BenchSettings& s);  // chaos.cpp
// One primary-client --setup at rest: licensed for --seconds, then as long
// with the server stopped; its wake-ups, CPU and RSS, and the connection
// attempts counted on the server's port against the contacts scheduled.
int run_client_idle(const BenchEnv& env, const BenchSettings& s);
// --computers reserved (one in ten seen), then the console's /computers.csv
// (logged in) and `primaryctl computers --csv`: rows, bytes, time, the
// console's VmHWM/VmRSS before and after, primaryctl's peak RSS.
int run_export(const BenchEnv& env, const BenchSettings& s);

}  // namespace primary::bench
