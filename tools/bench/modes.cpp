#include "tools/bench/modes.hpp"

#include <curl/curl.h>
#include <fcntl.h>
#include <spdlog/fmt/fmt.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <map>
#include <regex>
#include <sstream>
#include <thread>

#include "common/codec.hpp"
#include "common/mdp.hpp"
#include "common/process.hpp"
#include "common/schema.hpp"
#include "tools/bench/admin_timing.hpp"
#include "tools/bench/download.hpp"
#include "tools/bench/fleet.hpp"
#include "tools/bench/load.hpp"
#include "tools/chaos/connection_counter.hpp"
#include "tools/chaos/procfs.hpp"

namespace primary::bench {

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

template <class... Args>
void say(fmt::format_string<Args...> f, Args&&... args) {
  fmt::print(f, std::forward<Args>(args)...);
  std::fputc('\n', stdout);
  std::fflush(stdout);
}

int fail(const std::string& message) {
  std::cerr << "primary-bench: " << message << std::endl;
  return 1;
}

double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

std::string describe(const LoadResult& r) {
  std::string s = fmt::format("{:.0f}/s ({} good replies in {:.2f} s; sent {}, errors {}, lost {}",
                              r.rps, r.counted, r.seconds, r.sent, r.errors, r.lost);
  if (r.p99_ms > 0) s += fmt::format("; latency p50 {:.2f} ms p99 {:.2f} ms max {:.2f} ms", r.p50_ms, r.p99_ms, r.max_ms);
  s += ")";
  if (!r.first_error.empty()) s += "\n  first error: " + r.first_error;
  return s;
}

bool clean(const LoadResult& r) { return r.errors == 0 && r.lost == 0; }

uint64_t cpu_ticks(pid_t pid) {
  auto s = sample_tree(pid);
  return s.empty() ? 0 : s.front().cpu_ticks;
}

double pct_of_core(uint64_t ticks, double seconds) {
  return seconds > 0 ? 100.0 * static_cast<double>(ticks) / static_cast<double>(::sysconf(_SC_CLK_TCK)) / seconds
                     : 0;
}

// A temp dir for one run, kept on request.
std::unique_ptr<TempDir> run_dir(const BenchEnv& env) {
  auto dir = std::make_unique<TempDir>("primary-bench");
  if (dir->ok() && env.keep) dir->keep();
  return dir;
}

// The full stack with a vendor key, unlocked for `licenses`.
struct Licensed {
  std::unique_ptr<ServerStack> stack;
  std::string error;
};
Licensed licensed_stack(zmq::context_t& ctx, const BenchEnv& env, TempDir& dir,
                        const BenchSettings& s, int64_t licenses) {
  Licensed out;
  auto vendor = make_vendor_key(env, dir);
  if (!vendor) return {nullptr, vendor.error().message};
  ServerOptions so;
  so.vendor_pub = *vendor + "/vendor.pub";
  so.license_workers = s.license_workers;
  if (s.last_seen_quantum_ms >= 0)
    so.env.push_back("PRIMARY_LAST_SEEN_QUANTUM_MS=" + std::to_string(s.last_seen_quantum_ms));
  const auto t0 = Clock::now();
  auto stack = ServerStack::start(ctx, env, dir, so, true);
  if (!stack) return {nullptr, stack.error().message};
  say("primary-server up in {:.1f} s (pid {}, front {})", since(t0), (*stack)->pid(), (*stack)->front());
  auto purchased = unlock(ctx, env, dir, (*stack)->front(), licenses);
  if (!purchased) return {nullptr, "unlock: " + purchased.error().message};
  say("unlocked serial BENCH-SERIAL for {} licenses", *purchased);
  out.stack = std::move(*stack);
  return out;
}

// A "VmRSS"/"VmHWM"-style field of /proc/PID/status in MiB; 0 when unreadable.
double status_mib(pid_t pid, const std::string& field) {
  const std::string text = read_text_file("/proc/" + std::to_string(pid) + "/status");
  const auto at = text.find(field + ":");
  return at == std::string::npos ? 0 : std::strtod(text.c_str() + at + field.size() + 1, nullptr) / 1024.0;
}

// Minor page faults of a process so far (all threads), field 10 of /proc/PID/stat.
uint64_t minor_faults(pid_t pid) {
  const std::string text = read_text_file("/proc/" + std::to_string(pid) + "/stat");
  const auto paren = text.rfind(')');
  if (paren == std::string::npos) return 0;
  std::istringstream in(text.substr(paren + 2));
  std::string field;
  for (int i = 3; i <= 10 && in >> field; ++i) {
  }
  return std::strtoull(field.c_str(), nullptr, 10);
}

std::optional<double> redis_benchmark_set(TempDir& dir) {
  auto redis = PlainRedis::start(dir);
  if (!redis) {
    std::cerr << "primary-bench: " << redis.error().message << std::endl;
    return std::nullopt;
  }
  const std::vector<std::string> argv = {"redis-benchmark", "-s", (*redis)->socket(), "-t", "set",
                                         "-c", "50", "-n", "200000", "-q"};
  std::string cmd;
  for (const auto& a : argv) cmd += (cmd.empty() ? "" : " ") + a;
  say("running: {}", cmd);
  auto out = run_capture(argv, dir.file("redis-benchmark.log"), 600s);
  if (!out) return std::nullopt;
  // -q prints progress lines separated by \r, then "SET: N requests per second[, p50=...]".
  static const std::regex rps("SET: ([0-9.]+) requests per second");
  std::optional<double> last;
  for (auto it = std::sregex_iterator(out->begin(), out->end(), rps); it != std::sregex_iterator(); ++it)
    last = std::stod((*it)[1].str());
  const auto final_line = out->substr(out->find_last_of('\r') == std::string::npos ? 0 : out->find_last_of('\r') + 1);
  say("redis-benchmark: {}", final_line);
  if (!last) std::cerr << "primary-bench: cannot read redis-benchmark output: " << *out << std::endl;
  return last;
}

}  // namespace

BenchSettings mode_defaults(const std::string& mode) {
  BenchSettings s;
  if (mode == "idle") s.seconds = 60;
  if (mode == "client-idle") s.seconds = 120;
  // Three rounds, each the measurement right after (or before) its
  // reference: this host's speed moves by 15 to 20% from one minute to the
  // next, and a ratio of two figures taken seconds apart moves less than
  // one of figures taken a minute apart.
  if (mode == "echo" || mode == "heartbeat") s.rounds = 3;
  // 8 x 24 heartbeats in flight: the highest rate whose p99 stays under
  // 10 ms here (latency is in-flight / rate; the grid is in
  // docs/benchmarks.md, "heartbeat"). Each licensing worker (128 slots) holds half.
  if (mode == "heartbeat") s.clients = 8, s.window = 24, s.seconds = 10;
  if (mode == "reserve") s.clients = 8, s.window = 16;
  // 0: the heartbeat and reserve modes' shapes for the respective phases.
  if (mode == "scale")
    s.clients = 0, s.window = 0, s.seconds = 8, s.rounds = 3, s.computers = 1000000, s.count = 15000;
  // Every heartbeat rewrites its computer's last-seen time: by default only
  // one a minute per computer does, so the 10,000-computer figure, measured
  // just after each was seen, would be all reads and the 1,000,000 one
  // mostly writes. Compared like this, the two differ by the fleet's size.
  if (mode == "scale") s.last_seen_quantum_ms = 0;
  // 20 Clients taking an update at once, each with UpdateAgent's default
  // window; the updater with its default 8 slots.
  if (mode == "download") s.clients = 20, s.window = 8, s.slots = 8;
  // 10 minutes; clients: simulated Clients, as in the fault test.
  if (mode == "chaos") s.seconds = 600, s.clients = 50, s.computers = 0;
  if (mode == "export") s.computers = 1000000;
  return s;
}

std::chrono::seconds time_limit(const std::string& mode, const BenchSettings& s) {
  int64_t limit = 600;
  if (mode == "echo") limit = (s.plain_workers > 0 ? 3 : 2) * s.rounds * (s.seconds + 1) + 120;
  if (mode == "idle") limit = s.seconds + 180;
  if (mode == "client-idle") limit = 2 * s.seconds + 240;
  if (mode == "heartbeat") limit = s.rounds * (s.seconds + 60) + s.computers / 200 + 900;
  if (mode == "reserve") limit = s.count / 200 + 300;
  if (mode == "scale") limit = 3 * s.computers / 500 + s.count / 50 + 2 * (s.rounds + 1) * (s.seconds + 5) + 900;
  if (mode == "download") limit = 600 + 2 * s.size_mb * s.clients / 4;  // both runs at >= 4 MiB/s
  if (mode == "chaos") limit = s.seconds + 900;
  if (mode == "export") limit = s.computers / 100 + 600;  // fill and both exports at >= 300 rows/s each
  return std::chrono::seconds(limit);
}

// ---------------------------------------------------------------- echo

namespace {

// mmi.service (RFC 8) for `service` on a fresh DEALER: "200", "404", or
// "" when the broker did not answer within `timeout`.
std::string mmi_service(zmq::context_t& ctx, const std::string& front, const std::string& service,
                        std::chrono::milliseconds timeout) {
  zmq::socket_t sock(ctx, zmq::socket_type::dealer);
  sock.set(zmq::sockopt::linger, 0);
  sock.connect(front);
  mdp::Frames f;
  mdp::send_request(sock, svc::kMmiService, service, true);
  zmq::pollitem_t item{sock.handle(), 0, ZMQ_POLLIN, 0};
  if (zmq::poll(&item, 1, timeout) <= 0 || !mdp::recv_frames(sock, f)) return "";
  const auto body = mdp::reply_body(f, svc::kMmiService);
  return body ? std::string(*body) : std::string();
}

}  // namespace

int run_echo(const BenchEnv& env, const BenchSettings& s) {
  auto dir = run_dir(env);
  if (!dir->ok()) return fail("cannot create a temp dir");
  const bool external = !s.front.empty();
  if (external && (s.workers_endpoint.empty() || s.plain_workers == 0))
    return fail("--front needs --workers-endpoint and --plain-workers N (the broker's workers are not ours)");
  zmq::context_t ctx(1);
  const std::string payload(static_cast<size_t>(s.payload), 'x');
  const std::string body = encode_request("echo", {{"payload", Value(payload)}});
  LoadOptions o;
  o.service = "echo";
  o.clients = s.clients;
  o.window = s.window;
  o.threads = s.threads;
  o.warmup = 1s;
  o.duration = std::chrono::seconds(s.seconds);
  o.decode = false;
  const BodyMaker make = [&body](int64_t, int64_t) { return body; };
  const ReplyCheck via_broker_ok = [&](int64_t, const Value& r, std::string&) {
    const Value* p = r.find("payload");
    return reply_ok(r) && p && p->is_str() && p->as_str() == payload;
  };
  const ReplyCheck direct_ok = [&](int64_t, const Value& r, std::string&) {
    const Value* p = r.find("payload");
    return p && p->is_str() && p->as_str() == payload;
  };
  say("echo: {} clients x {} in flight, {} client thread(s), payload {} B, {}; "
      "{} round(s), each {} s per path then {} s direct, measured after 1 s warm-up",
      s.clients, s.window, s.threads, s.payload,
      external ? fmt::format("{} plain RFC 7 echo worker(s) at {}", s.plain_workers, s.workers_endpoint)
               : fmt::format("{} echo worker(s) x {} slots{}", s.workers, s.slots,
                             s.plain_workers ? fmt::format(", and {} plain RFC 7 echo worker(s) on 'echo.plain'",
                                                           s.plain_workers)
                                             : std::string()),
      s.rounds, s.seconds, s.seconds);
  std::unique_ptr<EchoStack> stack;
  std::string front = s.front, workers_ep = s.workers_endpoint;
  if (!external) {
    auto started = EchoStack::start(ctx, env, *dir, s.workers, s.slots);
    if (!started) return fail(started.error().message);
    stack = std::move(*started);
    front = stack->front();
    workers_ep = stack->workers_endpoint();
    say("broker pid {} front {}", stack->broker_pid(), front);
  } else {
    say("broker: the one running at {} (workers {})", front, workers_ep);
  }
  // Plain RFC 7 workers, one thread in this process (not counted in the
  // broker's CPU), on their own service so that the two paths never mix.
  std::unique_ptr<PlainEchoWorkers> plain;
  const std::string plain_service = "echo.plain";
  if (s.plain_workers > 0) {
    plain = std::make_unique<PlainEchoWorkers>(workers_ep, plain_service, s.plain_workers);
    if (!external) {
      if (!wait_workers(ctx, front, plain_service, s.plain_workers, 15s))
        return fail("the plain echo workers did not register with the broker");
    } else {
      // Any RFC 7 broker: MMI says when the first one is in; the rest
      // connected at the same time.
      const auto until = Clock::now() + 15s;
      while (mmi_service(ctx, front, plain_service, 1000ms) != "200")
        if (Clock::now() >= until) return fail("mmi.service never answered 200 for the plain echo workers");
      std::this_thread::sleep_for(500ms);
    }
  }
  DirectEcho server;
  say("direct: DEALER->ROUTER echo, an in-process server thread at {}", server.endpoint());
  const auto workers = stack ? stack->worker_pids() : std::vector<pid_t>();
  const pid_t broker_pid = stack ? stack->broker_pid() : 0;
  std::vector<double> broker_rps, plain_rps, direct_rps, ratios, plain_ratios;
  bool all_clean = true;
  for (int round = 1; round <= s.rounds; ++round) {
    if (!external) {
      o.endpoint = front;
      o.service = "echo";
      uint64_t b0 = cpu_ticks(broker_pid), w0 = 0, c0 = cpu_ticks(::getpid());
      for (pid_t w : workers) w0 += cpu_ticks(w);
      auto t0 = Clock::now();
      const LoadResult broker = run_load(ctx, o, make, via_broker_ok);
      double secs = since(t0);
      uint64_t w1 = 0;
      for (pid_t w : workers) w1 += cpu_ticks(w);
      say("round {}: through the broker: {}", round, describe(broker));
      say("  CPU ({:.1f} s): broker {:.0f}%, echo workers {:.0f}%, bench clients {:.0f}% of one core", secs,
          pct_of_core(cpu_ticks(broker_pid) - b0, secs), pct_of_core(w1 - w0, secs),
          pct_of_core(cpu_ticks(::getpid()) - c0, secs));
      all_clean = all_clean && clean(broker);
      broker_rps.push_back(broker.rps);
    }
    if (plain) {
      o.endpoint = front;
      o.service = plain_service;
      uint64_t b0 = broker_pid ? cpu_ticks(broker_pid) : 0, c0 = cpu_ticks(::getpid());
      const int64_t errors0 = plain->protocol_errors();
      auto t0 = Clock::now();
      const LoadResult r = run_load(ctx, o, make, via_broker_ok);
      double secs = since(t0);
      say("round {}: plain RFC 7 workers: {}", round, describe(r));
      if (broker_pid)
        say("  CPU ({:.1f} s): broker {:.0f}%, bench clients + plain workers {:.0f}% of one core", secs,
            pct_of_core(cpu_ticks(broker_pid) - b0, secs), pct_of_core(cpu_ticks(::getpid()) - c0, secs));
      if (plain->protocol_errors() != errors0) {
        say("  the plain workers got {} message(s) that are not RFC 7", plain->protocol_errors() - errors0);
        all_clean = false;
      }
      all_clean = all_clean && clean(r);
      plain_rps.push_back(r.rps);
    }
    o.endpoint = server.endpoint();
    o.service = "echo";
    const uint64_t c0 = cpu_ticks(::getpid());
    const auto t0 = Clock::now();
    const LoadResult direct = run_load(ctx, o, make, direct_ok);
    const double secs = since(t0);
    say("round {}: direct: {}", round, describe(direct));
    say("  CPU ({:.1f} s): bench clients + echo thread {:.0f}% of one core", secs,
        pct_of_core(cpu_ticks(::getpid()) - c0, secs));
    all_clean = all_clean && clean(direct);
    direct_rps.push_back(direct.rps);
    if (!external) {
      ratios.push_back(direct.rps > 0 ? broker_rps.back() / direct.rps : 0);
      say("round {}: ratio {:.3f}", round, ratios.back());
    }
    if (plain) {
      plain_ratios.push_back(direct.rps > 0 ? plain_rps.back() / direct.rps : 0);
      say("round {}: plain ratio {:.3f}", round, plain_ratios.back());
    }
  }
  // Each round's ratio compares two figures taken seconds apart; the median
  // round stands for the run.
  const double direct_mid = median(direct_rps);
  std::string figures;
  if (!external) {
    const double ratio = median(ratios), broker_mid = median(broker_rps);
    say("medians of {} round(s): broker {:.0f}/s, direct {:.0f}/s, ratio {:.3f} (rounds: {:.3f} to {:.3f})",
        s.rounds, broker_mid, direct_mid, ratio, *std::min_element(ratios.begin(), ratios.end()),
        *std::max_element(ratios.begin(), ratios.end()));
    say("targets: broker >= 100000/s: {}; broker >= 30% of direct: {}", broker_mid >= 100000 ? "met" : "NOT met",
        ratio >= 0.30 ? "met" : "NOT met");
    figures = fmt::format("broker_rps={:.0f} direct_rps={:.0f} ratio={:.3f}", broker_mid, direct_mid, ratio);
  } else {
    figures = fmt::format("direct_rps={:.0f}", direct_mid);
  }
  if (plain) {
    const double plain_mid = median(plain_rps);
    say("plain RFC 7 workers ({}): median {:.0f}/s, {:.3f} of direct{}", s.plain_workers, plain_mid,
        median(plain_ratios),
        external ? std::string() : fmt::format(", {:.3f} of the credited path", plain_mid / std::max(1.0, median(broker_rps))));
    figures += fmt::format(" plain_rps={:.0f} plain_ratio={:.3f}", plain_mid, median(plain_ratios));
  }
  say("{}", figures);
  return all_clean ? 0 : 1;
}

// ---------------------------------------------------------------- idle

int run_idle(const BenchEnv& env, const BenchSettings& s) {
  auto dir = run_dir(env);
  if (!dir->ok()) return fail("cannot create a temp dir");
  zmq::context_t ctx(1);
  auto vendor = make_vendor_key(env, *dir);
  if (!vendor) return fail(vendor.error().message);
  ServerOptions so;
  so.vendor_pub = *vendor + "/vendor.pub";
  so.license_workers = s.license_workers;
  auto stack = ServerStack::start(ctx, env, *dir, so, ::access(env.bin("primary-licensed").c_str(), X_OK) == 0);
  if (!stack) return fail(stack.error().message);
  say("primary-server pid {} up (front {}); settling 3 s, then sampling for {} s", (*stack)->pid(),
      (*stack)->front(), s.seconds);
  std::this_thread::sleep_for(3s);

  const pid_t root = (*stack)->pid();
  const auto before = sample_tree(root);
  const auto t0 = Clock::now();
  std::this_thread::sleep_for(std::chrono::seconds(s.seconds));
  const auto after = sample_tree(root);
  const double secs = since(t0);

  std::map<pid_t, ProcSample> start;
  for (const auto& p : before) start[p.pid] = p;
  uint64_t ticks = 0, rss = 0, pss = 0;
  int changed = 0;
  say("{:>8} {:<22} {:>9} {:>9} {:>8}", "pid", "process", "rss_mib", "pss_mib", "cpu_pct");
  for (const auto& p : after) {
    auto it = start.find(p.pid);
    const bool same = it != start.end() && it->second.name == p.name;
    const uint64_t d = same ? p.cpu_ticks - it->second.cpu_ticks : p.cpu_ticks;
    if (!same) ++changed;
    ticks += d;
    rss += p.rss_kib;
    pss += p.pss_kib;
    say("{:>8} {:<22} {:>9.1f} {:>9.1f} {:>8.3f}{}", p.pid, p.name, p.rss_kib / 1024.0, p.pss_kib / 1024.0,
        pct_of_core(d, secs), same ? "" : "  (started during the window)");
  }
  for (const auto& p : before)
    if (std::none_of(after.begin(), after.end(), [&](const ProcSample& a) { return a.pid == p.pid; })) {
      ++changed;
      say("{:>8} {:<22} exited during the window", p.pid, p.name);
    }
  const double cpu = pct_of_core(ticks, secs);
  say("sum: RSS {:.1f} MiB (PSS {:.1f} MiB, shared pages counted once), CPU {:.3f}% of one core over {:.1f} s "
      "(clock tick {} ms)",
      rss / 1024.0, pss / 1024.0, cpu, secs, 1000 / ::sysconf(_SC_CLK_TCK));
  const auto code = (*stack)->stop();
  say("primary-server stopped with SIGTERM: {}", code ? "exit " + std::to_string(*code) : std::string("killed"));
  say("targets: RSS < 64 MiB: {}; CPU < 1%: {}", rss < 64 * 1024 ? "met" : "NOT met", cpu < 1.0 ? "met" : "NOT met");
  say("rss_mib={:.1f} cpu_pct={:.3f} processes={}", rss / 1024.0, cpu, after.size());
  if (changed) return fail(std::to_string(changed) + " process(es) started or exited during the window");
  return code == 0 ? 0 : 1;
}

// ---------------------------------------------------------------- heartbeat

int run_heartbeat(const BenchEnv& env, const BenchSettings& s) {
  auto dir = run_dir(env);
  if (!dir->ok()) return fail("cannot create a temp dir");
  zmq::context_t ctx(1);
  auto l = licensed_stack(ctx, env, *dir, s, s.computers);
  if (!l.stack) return fail(l.error);
  Fleet fleet;
  int64_t created = 0;
  auto r = fleet.reserve(ctx, l.stack->front(), 0, s.computers, {16, 32, s.threads}, &created);
  say("reserved {} computers: {}", created, describe(r));
  if (!clean(r) || created != s.computers) return fail("reservations failed");
  // Measure the steady state: every Client has already been seen once
  // (a first contact also signs a lease and logs client.licensed).
  auto first = fleet.heartbeat_each(ctx, l.stack->front(), 0, s.computers, {16, 32, s.threads});
  say("first heartbeat of each computer: {}", describe(first));
  if (!clean(first)) return fail("heartbeats failed");
  say("heartbeats: {} clients x {} in flight, {} computers, {} s measured after 1 s warm-up; last seen "
      "rewritten {}; {} round(s), each the heartbeats then the Redis SET reference (the stack idle)",
      s.clients, s.window, s.computers, s.seconds,
      s.last_seen_quantum_ms < 0 ? std::string("once a lease quantum (licensed's default)")
                                 : fmt::format("when {} ms old", s.last_seen_quantum_ms),
      s.rounds);
  Redis redis = l.stack->redis();
  std::vector<double> hb_rps, set_rps, ratios, p50s, p99s;
  for (int round = 1; round <= s.rounds; ++round) {
    const RedisCost cost0 = redis_cost(redis);
    const LoadResult hb =
        fleet.heartbeat(ctx, l.stack->front(), s.computers, s.seconds, {s.clients, s.window, s.threads});
    say("round {}: heartbeats: {}", round, describe(hb));
    say("  {}", describe_redis_cost(cost0, redis_cost(redis), hb.sent));
    if (!clean(hb)) return fail("heartbeats failed");
    auto redis_rps = redis_benchmark_set(*dir);
    if (!redis_rps) return fail("redis-benchmark failed");
    hb_rps.push_back(hb.rps);
    set_rps.push_back(*redis_rps);
    ratios.push_back(hb.rps / *redis_rps);
    p50s.push_back(hb.p50_ms);
    p99s.push_back(hb.p99_ms);
    say("round {}: ratio {:.3f}", round, ratios.back());
  }
  l.stack->stop();
  const double ratio = median(ratios), p99 = median(p99s);
  say("medians of {} round(s): heartbeats {:.0f}/s, Redis SET {:.0f}/s, ratio {:.3f} (rounds: {:.3f} to "
      "{:.3f}), p99 {:.2f} ms (worst round {:.2f} ms)",
      s.rounds, median(hb_rps), median(set_rps), ratio, *std::min_element(ratios.begin(), ratios.end()),
      *std::max_element(ratios.begin(), ratios.end()), p99, *std::max_element(p99s.begin(), p99s.end()));
  say("targets: ratio >= 1.0: {}; p99 < 10 ms: {}", ratio >= 1.0 ? "met" : "NOT met", p99 < 10 ? "met" : "NOT met");
  say("heartbeat_rps={:.0f} p50_ms={:.2f} p99_ms={:.2f} redis_set_rps={:.0f} ratio={:.3f}", median(hb_rps),
      median(p50s), p99, median(set_rps), ratio);
  return 0;
}

// ---------------------------------------------------------------- reserve

int run_reserve(const BenchEnv& env, const BenchSettings& s) {
  auto dir = run_dir(env);
  if (!dir->ok()) return fail("cannot create a temp dir");
  zmq::context_t ctx(1);
  auto l = licensed_stack(ctx, env, *dir, s, s.count);
  if (!l.stack) return fail(l.error);
  say("reserve: {} new computers, {} clients x {} in flight", s.count, s.clients, s.window);
  Fleet fleet;
  int64_t created = 0;
  auto r = fleet.reserve(ctx, l.stack->front(), 0, s.count, {s.clients, s.window, s.threads}, &created);
  say("reservations: {}", describe(r));
  l.stack->stop();
  say("target: >= 10000/s: {}", r.rps >= 10000 ? "met" : "NOT met");
  say("reserve_rps={:.0f} reserved={}", r.rps, created);
  return clean(r) && created == s.count ? 0 : 1;
}

// ---------------------------------------------------------------- scale

namespace {

// One size's side of the scale comparison: its own server stack and fleet,
// and the sums of its measured phases.
struct ScaleSide {
  std::string label;
  std::unique_ptr<TempDir> dir;
  std::unique_ptr<ServerStack> stack;
  Fleet fleet;
  int64_t population = 0;
  LoadResult hb, res;  // sums over the rounds
  RedisCost hb_cost;   // Redis's cost of the heartbeat phases, summed
};

void add_to(LoadResult& sum, const LoadResult& r) {
  sum.sent += r.sent;
  sum.replies += r.replies;
  sum.counted += r.counted;
  sum.errors += r.errors;
  sum.lost += r.lost;
  sum.seconds += r.seconds;
  sum.rps = sum.seconds > 0 ? static_cast<double>(sum.counted) / sum.seconds : 0;
  sum.p99_ms = std::max(sum.p99_ms, r.p99_ms);  // the worst round's
  if (sum.first_error.empty()) sum.first_error = r.first_error;
}

void add_to(RedisCost& sum, const RedisCost& before, const RedisCost& after) {
  sum.cpu_s += after.cpu_s - before.cpu_s;
  sum.script_calls += after.script_calls - before.script_calls;
  sum.script_usec += after.script_usec - before.script_usec;
  sum.aof_rewrites += after.aof_rewrites - before.aof_rewrites;
  sum.rewriting = sum.rewriting || before.rewriting || after.rewriting;
}

}  // namespace

// Two stacks side by side, one holding 10,000 computers and one 1,000,000,
// measured in alternation (rounds, the order swapped each round): this
// host's speed moves by 15 to 50% within minutes, so two figures taken a
// minute and a half apart, as one stack grown from 10,000 to 1,000,000 gave
// them, compared the host's moments as much as the fleet sizes.
int run_scale(const BenchEnv& env, const BenchSettings& s) {
  zmq::context_t ctx(1);
  const auto started = Clock::now();
  const int64_t n = s.computers, m = s.count;
  const int64_t small_n = std::min<int64_t>(10000, n);
  const int rounds = std::max(1, s.rounds);
  ScaleSide small, large;
  small.label = fmt::format("{} computers", small_n);
  large.label = fmt::format("{} computers", n);
  for (ScaleSide* side : {&small, &large}) {
    side->dir = run_dir(env);
    if (!side->dir->ok()) return fail("cannot create a temp dir");
    auto l = licensed_stack(ctx, env, *side->dir, s, (side == &small ? small_n : n) + m);
    if (!l.stack) return fail(l.error);
    side->stack = std::move(l.stack);
  }
  const BenchSettings hb_d = mode_defaults("heartbeat"), res_d = mode_defaults("reserve");
  const LoadShape hb_shape{s.clients ? s.clients : hb_d.clients, s.window ? s.window : hb_d.window, s.threads};
  const LoadShape res_shape{s.clients ? s.clients : res_d.clients, s.window ? s.window : res_d.window, s.threads};
  // 256 requests in flight keep the license workers' batches full; more only
  // queue in the broker, and on a loaded machine past its 5 s deadline.
  const LoadShape fill{16, 16, s.threads};
  int64_t created = 0;
  // Each measured phase starts with no AOF rewrite running: filling to a
  // million computers grows the AOF past Redis's auto-rewrite threshold, and
  // the rewrite child then takes a core for tens of seconds.
  const auto quiesce = [&](ScaleSide& side) {
    Redis redis = side.stack->redis();
    const double waited = wait_background_save(redis, 300s);
    if (waited >= 0.2) say("waited {:.1f} s for the {} stack's AOF rewrite to finish", waited, side.label);
  };
  // Heartbeats on one side for --seconds, printed with Redis's cost of them,
  // which is added to `cost` when there is one.
  const auto heartbeats = [&](ScaleSide& side, const std::string& phase, RedisCost* cost) {
    Redis redis = side.stack->redis();
    const RedisCost before = redis_cost(redis);
    auto hb = side.fleet.heartbeat(ctx, side.stack->front(), side.population, s.seconds, hb_shape);
    const RedisCost after = redis_cost(redis);
    say("{} [{}] heartbeats: {}", phase, side.label, describe(hb));
    say("  {}", describe_redis_cost(before, after, hb.sent));
    if (cost) add_to(*cost, before, after);
    return hb;
  };
  const auto used = [](ScaleSide& side) -> int64_t {
    Redis redis = side.stack->redis();
    return redis_info(redis, "memory", "used_memory").value_or(-1);
  };

  // Admin pages at 1,000 computers (half of them seen), against 1,000,000 below.
  const int64_t tiny = std::min<int64_t>(1000, small_n);
  auto r_tiny = small.fleet.reserve(ctx, small.stack->front(), 0, tiny, fill, &created);
  if (!clean(r_tiny)) return fail("reservations failed");
  small.fleet.heartbeat_each(ctx, small.stack->front(), 0, tiny / 2, fill);
  const auto admin_small = admin_timings(ctx, small.stack->front());
  auto r_rest = small.fleet.reserve(ctx, small.stack->front(), tiny, small_n - tiny, fill, &created);
  if (!clean(r_rest)) return fail("reservations failed");
  auto pass = small.fleet.heartbeat_each(ctx, small.stack->front(), 0, small_n, fill);
  say("[{}] reserved and seen: {}", small.label, describe(pass));

  const int64_t mem0 = used(large);
  if (mem0 < 0) return fail("cannot read INFO memory from the private Redis");
  auto t0 = Clock::now();
  auto r_fill = large.fleet.reserve(ctx, large.stack->front(), 0, n, fill, &created);
  say("filled to {} computers in {:.1f} s ({} clients x {} in flight): {}", n, since(t0), fill.clients, fill.window,
      describe(r_fill));
  if (!clean(r_fill)) return fail("reservations failed");
  const int64_t mem1 = used(large);
  const double per_computer = static_cast<double>(mem1 - mem0) / static_cast<double>(n);
  say("Redis used_memory {} bytes before reserving, {} after: {:.0f} bytes per reserved computer", mem0, mem1,
      per_computer);
  {
    Redis redis = large.stack->redis();
    for (const char* key : {"ps:res", "ps:meta", "ps:active", "ps:events"}) {
      auto u = redis.command({"MEMORY", "USAGE", key, "SAMPLES", "0"});
      if (u && u->is_int()) say("  MEMORY USAGE {}: {} bytes ({:.0f} per reserved computer)", key, u->integer,
                                static_cast<double>(u->integer) / static_cast<double>(n));
    }
  }
  t0 = Clock::now();
  pass = large.fleet.heartbeat_each(ctx, large.stack->front(), 0, n, fill);
  say("first heartbeat of each of the {} in {:.1f} s: {}", n, since(t0), describe(pass));
  if (!clean(pass)) return fail("heartbeats failed");
  const int64_t mem2 = used(large);
  say("Redis used_memory with every computer seen: {} bytes, {:.0f} bytes per computer", mem2,
      static_cast<double>(mem2 - mem0) / static_cast<double>(n));
  small.population = small_n;
  large.population = n;
  // A rewrite now, so that the growth of the AOF during the rounds (tens of
  // MB) stays far from the next automatic one: filling and seeing a million
  // computers leaves the AOF near its rewrite threshold, and a rewrite of
  // the large dataset within a measured phase forks a 500 MB process.
  // Then an unmeasured heartbeat phase on each side: for a while after a
  // fork, the first write to each page of Redis's memory takes a page fault
  // (the page was shared with the rewrite's child); at a million computers
  // that is 120,000 pages, touched at random. The rounds measure the steady
  // state; the warm-up's own figures show the difference.
  for (ScaleSide* side : {&small, &large}) {
    Redis redis = side->stack->redis();
    if (auto r = redis.command({"BGREWRITEAOF"}); !r || r->is_error()) say("BGREWRITEAOF failed; measuring anyway");
    quiesce(*side);
    if (!clean(heartbeats(*side, "warm-up after an AOF rewrite", nullptr))) return fail("heartbeats failed");
  }

  // The measured rounds: heartbeats, then count / rounds new reservations,
  // on each side in turn.
  std::vector<double> hb_ratios, res_ratios;
  const int64_t per_round = std::max<int64_t>(1, m / rounds);
  for (int round = 1; round <= rounds; ++round) {
    std::array<ScaleSide*, 2> order{&small, &large};
    if (round % 2 == 0) std::swap(order[0], order[1]);
    std::array<double, 2> hb_rps{}, res_rps{};
    for (ScaleSide* side : order) {
      quiesce(*side);
      auto hb = heartbeats(*side, fmt::format("round {}", round), &side->hb_cost);
      add_to(side->hb, hb);
      hb_rps[side == &large] = hb.rps;
    }
    for (ScaleSide* side : order) {
      quiesce(*side);
      const int64_t first = side->fleet.size();
      auto r = side->fleet.reserve(ctx, side->stack->front(), first, per_round, res_shape, &created);
      say("round {} [{}] reserve {} more: {}", round, side->label, per_round, describe(r));
      add_to(side->res, r);
      res_rps[side == &large] = r.rps;
    }
    hb_ratios.push_back(hb_rps[0] > 0 ? hb_rps[1] / hb_rps[0] : 0);
    res_ratios.push_back(res_rps[0] > 0 ? res_rps[1] / res_rps[0] : 0);
    say("round {}: heartbeats {:.0f}%, reservations {:.0f}% of the {} rate", round, 100 * hb_ratios.back(),
        100 * res_ratios.back(), small.label);
  }
  const auto summary = [](const LoadResult& r) {
    return fmt::format("{:.0f}/s ({} good replies in {:.2f} s; errors {}, lost {}; worst round's p99 {:.2f} ms)", r.rps,
                       r.counted, r.seconds, r.errors, r.lost, r.p99_ms);
  };
  for (ScaleSide* side : {&small, &large}) {
    say("[{}] all rounds: heartbeats {}", side->label, summary(side->hb));
    say("  {}", describe_redis_cost(RedisCost{}, side->hb_cost, side->hb.sent));
    say("[{}] all rounds: reservations {}", side->label, summary(side->res));
  }

  quiesce(large);
  const double admin_ratio =
      report_admin_timings(admin_small, fmt::format("{} computers", tiny), admin_timings(ctx, large.stack->front()),
                           fmt::format("{} computers", large.fleet.size()));
  say("admin: slowest ratio x{:.2f} (target within 2x): {}", admin_ratio, admin_ratio <= 2.0 ? "met" : "NOT met");
  std::string rss;
  for (const auto& p : sample_tree(large.stack->pid()))
    rss += fmt::format(" {} {:.0f} MiB;", p.name, p.rss_kib / 1024.0);
  say("process RSS at {} computers:{}", large.fleet.size(), rss);
  small.stack->stop();
  large.stack->stop();
  say("scale run took {:.0f} s in all", since(started));

  const double hb_ratio = small.hb.rps > 0 ? large.hb.rps / small.hb.rps : 0;
  const double res_ratio = small.res.rps > 0 ? large.res.rps / small.res.rps : 0;
  say("heartbeats at {} / {}: {:.0f}% over {} alternated rounds (rounds {:.0f}% to {:.0f}%); reservations {:.0f}% "
      "(rounds {:.0f}% to {:.0f}%)",
      n, small_n, 100 * hb_ratio, rounds, 100 * *std::min_element(hb_ratios.begin(), hb_ratios.end()),
      100 * *std::max_element(hb_ratios.begin(), hb_ratios.end()), 100 * res_ratio,
      100 * *std::min_element(res_ratios.begin(), res_ratios.end()),
      100 * *std::max_element(res_ratios.begin(), res_ratios.end()));
  say("targets: <= 400 bytes per computer: {}; heartbeat rate at {} within 20% of {}: {}; reserve rate: {}",
      per_computer <= 400 ? "met" : "NOT met", n, small_n, hb_ratio >= 0.8 ? "met" : "NOT met",
      res_ratio >= 0.8 ? "met" : "NOT met");
  say("bytes_per_computer={:.0f} hb_rps_10k={:.0f} hb_rps_1m={:.0f} hb_ratio={:.3f} reserve_rps_10k={:.0f} "
      "reserve_rps_1m={:.0f} reserve_ratio={:.3f} admin_ratio={:.2f}",
      per_computer, small.hb.rps, large.hb.rps, hb_ratio, small.res.rps, large.res.rps, res_ratio, admin_ratio);
  return clean(small.hb) && clean(large.hb) && clean(small.res) && clean(large.res) ? 0 : 1;
}

}  // namespace primary::bench

// ---------------------------------------------------------------- download

namespace primary::bench {

namespace {

std::string describe(const DownloadResult& r, int clients, int64_t size_mb) {
  std::string s = fmt::format("{:.1f} MiB/s ({} of {} clients x {} MiB verified in {:.2f} s; fastest {:.2f} s, "
                              "slowest {:.2f} s; {} chunk retries",
                              r.mb_s, r.verified, clients, size_mb, r.seconds, r.min_s, r.max_s, r.retries);
  s += ")";
  if (!r.first_error.empty()) s += "\n  first error: " + r.first_error;
  return s;
}

}  // namespace

int run_download(const BenchEnv& env, const BenchSettings& s) {
  auto dir = run_dir(env);
  if (!dir->ok()) return fail("cannot create a temp dir");
  zmq::context_t ctx(1);
  const int64_t size = s.size_mb << 20;
  auto vendor = make_vendor_key(env, *dir);
  if (!vendor) return fail(vendor.error().message);
  auto t0 = Clock::now();
  auto release = publish_release(env, *dir, *vendor + "/vendor.key", size);
  if (!release) return fail(release.error().message);
  say("release {} {}: {} MiB of random bytes, sha256 {}, feed signed in {:.1f} s", release->component,
      release->version, s.size_mb, release->sha256, since(t0));

  DownloadOptions o;
  o.sha256 = release->sha256;
  o.size = size;
  o.clients = s.clients;
  o.window = s.window;
  if (!env.updater_prefix.empty()) o.silence = std::chrono::milliseconds(600000);
  say("download: {} clients x {} chunks of 1 MiB in flight, each fetching all {} MiB and checking its SHA-256; "
      "primary-updater --slots {}",
      s.clients, s.window, s.size_mb, s.slots);

  DownloadResult broker;
  std::string memory;
  {
    ServerOptions so;
    so.vendor_pub = *vendor + "/vendor.pub";
    so.license_workers = s.license_workers;
    // The bench starts the updater itself (feed, sync interval, prefix).
    so.extra_args = {"--updater-workers", "0"};
    t0 = Clock::now();
    auto stack = ServerStack::start(ctx, env, *dir, so, false);
    if (!stack) return fail(stack.error().message);
    UpdaterOptions uo;
    uo.data_dir = (*stack)->data_dir();
    uo.store_dir = dir->file("updates");
    uo.vendor_pub = so.vendor_pub;
    uo.feed_url = "file://" + release->feed;
    uo.slots = s.slots;
    auto updater = start_updater(env, *dir, uo);
    if (!updater) return fail(updater.error().message);
    if (!wait_workers(ctx, (*stack)->front(), "update", s.slots, env.updater_prefix.empty() ? 20s : 120s))
      return fail("primary-updater did not register with the broker:\n" + log_tail(dir->file("updater.log")));
    say("primary-server up with primary-updater pid {} in {:.1f} s (front {})", updater->pid(), since(t0),
        (*stack)->front());
    t0 = Clock::now();
    auto synced = sync_and_approve(ctx, (*stack)->front(), *release, 600s);
    if (!synced) return fail(synced.error().message + "\n" + log_tail(dir->file("updater.log")));
    say("synced from {} and approved in {:.1f} s", uo.feed_url, since(t0));

    pid_t broker_pid = 0, redis_pid = 0;
    for (const auto& p : sample_tree((*stack)->pid())) {
      if (p.name == "primary-broker") broker_pid = p.pid;
      if (p.name == "redis-server") redis_pid = p.pid;
    }
    const pid_t updater_pid = updater->pid();
    const double broker_rss0 = status_mib(broker_pid, "VmRSS"), updater_rss0 = status_mib(updater_pid, "VmRSS");
    const uint64_t b0 = cpu_ticks(broker_pid), u0 = cpu_ticks(updater_pid), r0 = cpu_ticks(redis_pid),
                   c0 = cpu_ticks(::getpid());
    const uint64_t bf0 = minor_faults(broker_pid), uf0 = minor_faults(updater_pid), cf0 = minor_faults(::getpid());
    o.endpoint = (*stack)->front();
    t0 = Clock::now();
    broker = run_downloads(ctx, o);
    const double secs = since(t0);
    say("through the broker and primary-updater: {}", describe(broker, s.clients, s.size_mb));
    say("  CPU over the run ({:.1f} s): broker {:.0f}%, updater {:.0f}%, redis {:.0f}%, bench clients {:.0f}% of one "
        "core",
        secs, pct_of_core(cpu_ticks(broker_pid) - b0, secs), pct_of_core(cpu_ticks(updater_pid) - u0, secs),
        pct_of_core(cpu_ticks(redis_pid) - r0, secs), pct_of_core(cpu_ticks(::getpid()) - c0, secs));
    const double mib = static_cast<double>(s.clients) * static_cast<double>(s.size_mb);
    say("  minor page faults per MiB delivered: broker {:.0f}, updater {:.0f}, bench clients {:.0f} (256 = one fresh "
        "1 MiB buffer)",
        static_cast<double>(minor_faults(broker_pid) - bf0) / mib,
        static_cast<double>(minor_faults(updater_pid) - uf0) / mib,
        static_cast<double>(minor_faults(::getpid()) - cf0) / mib);
    const double broker_rss = status_mib(broker_pid, "VmRSS"), broker_peak = status_mib(broker_pid, "VmHWM");
    const double updater_rss = status_mib(updater_pid, "VmRSS"), updater_peak = status_mib(updater_pid, "VmHWM");
    say("  RSS MiB before -> after (peak over the process's life): broker {:.1f} -> {:.1f} ({:.1f}), updater {:.1f} "
        "-> {:.1f} ({:.1f})",
        broker_rss0, broker_rss, broker_peak, updater_rss0, updater_rss, updater_peak);
    memory = fmt::format("broker_rss_mib={:.1f} broker_peak_mib={:.1f} updater_rss_mib={:.1f} updater_peak_mib={:.1f}",
                         broker_rss, broker_peak, updater_rss, updater_peak);
    updater->signal(SIGTERM);
    if (!updater->wait_exit(env.updater_prefix.empty() ? 10s : 120s)) updater->kill_tree();
    (*stack)->stop();
  }

  DownloadResult direct;
  {
    DirectFileServer server(release->file, release->sha256);
    if (!server.ok()) return fail("cannot open " + release->file);
    o.endpoint = server.endpoint();
    const uint64_t c0 = cpu_ticks(::getpid()), cf0 = minor_faults(::getpid());
    t0 = Clock::now();
    direct = run_downloads(ctx, o);
    const double secs = since(t0);
    say("direct DEALER->ROUTER file server (in-process thread, pread + the same reply encoding, {}): {}",
        server.endpoint(), describe(direct, s.clients, s.size_mb));
    say("  CPU over the run ({:.1f} s): bench clients + server thread {:.0f}% of one core; minor page faults per "
        "MiB: {:.0f}",
        secs, pct_of_core(cpu_ticks(::getpid()) - c0, secs),
        static_cast<double>(minor_faults(::getpid()) - cf0) / (static_cast<double>(s.clients) * static_cast<double>(s.size_mb)));
  }
  const double ratio = direct.mb_s > 0 ? broker.mb_s / direct.mb_s : 0;
  say("target: broker >= 50% of direct: {}", ratio >= 0.5 ? "met" : "NOT met");
  say("broker_mb_s={:.1f} direct_mb_s={:.1f} ratio={:.3f} {}", broker.mb_s, direct.mb_s, ratio, memory);
  return broker.verified == s.clients && direct.verified == s.clients ? 0 : 1;
}

// ---------------------------------------------------------------- client-idle

namespace {

using chaos::ConnectionCounter;
using chaos::context_switches;

// What a phase cost the Client process.
struct ClientPhase {
  double seconds = 0;
  int64_t switches = 0;
  uint64_t ticks = 0;
  double rss_mib = 0;
};

struct ClientSample {
  Clock::time_point at;
  int64_t switches = 0;
  uint64_t ticks = 0;
};
ClientSample sample_client(pid_t pid) { return {Clock::now(), context_switches(pid), cpu_ticks(pid)}; }
ClientPhase phase_between(pid_t pid, const ClientSample& a, const ClientSample& b) {
  return {std::chrono::duration<double>(b.at - a.at).count(), b.switches - a.switches, b.ticks - a.ticks,
          status_mib(pid, "VmRSS")};
}

}  // namespace

int run_client_idle(const BenchEnv& env, const BenchSettings& s) {
  auto dir = run_dir(env);
  if (!dir->ok()) return fail("cannot create a temp dir");
  zmq::context_t ctx(1);
  auto licensed = licensed_stack(ctx, env, *dir, s, 10);
  if (!licensed.stack) return fail(licensed.error);
  ServerStack& stack = *licensed.stack;
  const std::string front = stack.front();

  // One reserved computer and its setup file, as primaryctl setup-info writes it.
  auto reserved = call(ctx, front, "license.control", "reserve", {{"computer", Value("BENCH-CLIENT")}});
  if (!reserved || !reply_ok(*reserved)) return fail("reserve: " + (reserved ? to_json(*reserved) : reserved.error().message));
  auto info = call(ctx, front, "license.control", "setup_info", {{"computer", Value("BENCH-CLIENT")}});
  if (!info || !reply_ok(*info)) return fail("setup_info: " + (info ? to_json(*info) : info.error().message));
  Value setup = Value(Value::Map{});
  for (const auto& [k, v] : info->as_map())
    if (k != "ok" && k != "rid") setup.set(k, v);
  setup.set("endpoints", Value(Value::Array{Value(front)}));
  const std::string setup_file = dir->file("bench-client.json");
  if (!write_file_atomic(setup_file, to_json(setup) + "\n", 0644)) return fail("cannot write " + setup_file);

  // The 4 h check stretched or shrunk to come due `margin` after the
  // licensed phase, so the server-down phase starts with it and the 1 h
  // retries (a quarter of it) follow; no jitter, so they can be counted.
  const double margin = std::max(10.0, s.seconds / 10.0);
  const double check_s = s.seconds + margin, retry_s = check_s / 4;
  const std::string scale = fmt::format("{:.9f}", check_s / 14400);
  const std::vector<std::string> argv = {env.bin("primary-client"), "--setup", setup_file, "--time-scale", scale,
                                         "--jitter", "0"};
  std::string cmd;
  for (const auto& a : argv) cmd += (cmd.empty() ? "" : " ") + a;
  say("running: {}", cmd);
  say("(check every {:.1f} s instead of 4 h, retry every {:.2f} s instead of 1 h, as --time-scale {})", check_s,
      retry_s, scale);
  const std::string out = dir->file("client.out");
  Child client = Child::start(argv, out);
  const auto t0 = Clock::now();
  while (read_text_file(out).find(" licensed verified") == std::string::npos) {
    if (!client.alive() || since(t0) > 30) return fail("primary-client did not become licensed:\n" + log_tail(out));
    std::this_thread::sleep_for(20ms);
  }
  const auto licensed_at = Clock::now();  // the first contact ended just before
  std::this_thread::sleep_for(1s);        // its socket is gone
  const pid_t pid = client.pid();

  say("phase 1: licensed, server up, {} s", s.seconds);
  const ClientSample a1 = sample_client(pid);
  std::this_thread::sleep_for(std::chrono::seconds(s.seconds));
  const ClientSample b1 = sample_client(pid);
  const ClientPhase p1 = phase_between(pid, a1, b1);

  const auto code = stack.stop();
  say("primary-server stopped with SIGTERM: {}", code ? "exit " + std::to_string(*code) : std::string("killed"));
  ConnectionCounter counter(std::stoi(front.substr(front.rfind(':') + 1)));
  if (!counter.ok()) return fail("cannot listen on the front door's port " + front);
  say("phase 2: server down, connections to {} counted, {} s", front, s.seconds);
  const ClientSample a2 = sample_client(pid);
  std::this_thread::sleep_for(std::chrono::seconds(s.seconds));
  const ClientSample b2 = sample_client(pid);
  const int attempts = counter.count();
  const ClientPhase p2 = phase_between(pid, a2, b2);
  // Contacts due at licensed_at + check + k * retry during the count.
  int scheduled = 0;
  for (int k = 0; k < 100000; ++k) {
    const auto due = licensed_at + std::chrono::duration_cast<Clock::duration>(
                                       std::chrono::duration<double>(check_s + k * retry_s));
    if (due > b2.at) break;
    if (due >= a2.at) ++scheduled;
  }
  const bool went_lost = read_text_file(out).find(" licensed -> lost ") != std::string::npos;
  client.signal(SIGTERM);
  client.wait_exit(10s);

  const double tick_ms = 1000.0 / static_cast<double>(::sysconf(_SC_CLK_TCK));
  say("{:<22} {:>8} {:>9} {:>11} {:>13} {:>10} {:>9} {:>8}", "phase", "seconds", "wake-ups", "wake-ups/s",
      "wake-ups/min", "cpu_ticks", "cpu_pct", "rss_mib");
  for (const auto& [name, p] : {std::pair<const char*, const ClientPhase&>{"licensed, server up", p1},
                                {"server down", p2}})
    say("{:<22} {:>8.1f} {:>9} {:>11.4f} {:>13.2f} {:>10} {:>9.4f} {:>8.1f}", name, p.seconds, p.switches,
        static_cast<double>(p.switches) / p.seconds, 60.0 * static_cast<double>(p.switches) / p.seconds, p.ticks,
        pct_of_core(p.ticks, p.seconds), p.rss_mib);
  say("server down: {} connection attempt(s) counted, {} contact(s) scheduled in the phase; the Client {} "
      "(clock tick {:.0f} ms)",
      attempts, scheduled, went_lost ? "went lost" : "did NOT go lost", tick_ms);
  const double idle_per_min = 60.0 * static_cast<double>(p1.switches) / p1.seconds;
  const double rss = std::max(p1.rss_mib, p2.rss_mib);
  say("targets: <= 1 wake-up/min licensed idle: {}; one connection attempt per scheduled contact: {}; RSS <= 8 MiB: {}",
      idle_per_min <= 1.0 ? "met" : "NOT met", attempts == scheduled ? "met" : "NOT met", rss <= 8.0 ? "met" : "NOT met");
  say("idle_wakeups_per_min={:.3f} idle_cpu_ticks={} down_wakeups_per_min={:.3f} down_cpu_ticks={} attempts={} "
      "scheduled={} rss_mib={:.1f}",
      idle_per_min, p1.ticks, 60.0 * static_cast<double>(p2.switches) / p2.seconds, p2.ticks, attempts, scheduled,
      rss);
  return went_lost ? 0 : 1;
}

}  // namespace primary::bench

// ---------------------------------------------------------------- export

namespace primary::bench {

namespace {

// Bytes and lines of a download or a child's stdout, as they stream by.
struct Counted {
  int64_t bytes = 0, rows = 0;
  void add(const char* p, size_t n) {
    bytes += static_cast<int64_t>(n);
    rows += std::count(p, p + n, '\n');
  }
};

size_t keep_body(char* p, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(p, size * n);
  return size * n;
}
size_t count_body(char* p, size_t size, size_t n, void* out) {
  static_cast<Counted*>(out)->add(p, size * n);
  return size * n;
}

// One HTTP exchange on `curl` (its cookies kept between calls); the status.
long http(CURL* curl, const std::string& url, const std::string* post, curl_write_callback write, void* out) {
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L);
  if (post) {
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, post->c_str());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, static_cast<long>(post->size()));
  }
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, write);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, out);
  if (curl_easy_perform(curl) != CURLE_OK) return 0;
  long status = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  return status;
}

struct ChildRun {
  Counted out;
  int status = -1;
  double seconds = 0, peak_rss_mib = 0;  // the child's VmHWM, last read
};

// Runs argv with stdout counted (stderr to `log`), reading the child's VmHWM
// as its output arrives (at most every 10 ms). Not getrusage()/wait4()'s
// ru_maxrss: it keeps the RSS of the image before exec(), the forked bench,
// whose fleet alone is hundreds of MiB at 1,000,000 computers.
std::optional<ChildRun> run_counted(const std::vector<std::string>& argv, const std::string& log) {
  int fds[2];
  if (::pipe(fds) != 0) return std::nullopt;
  const auto t0 = Clock::now();
  const pid_t pid = ::fork();
  if (pid < 0) return std::nullopt;
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    sigset_t all;
    sigfillset(&all);
    ::sigprocmask(SIG_UNBLOCK, &all, nullptr);
    ::dup2(fds[1], 1);
    const int err = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (err >= 0) ::dup2(err, 2);
    ::close(fds[0]);
    ::close(fds[1]);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  ::close(fds[1]);
  ChildRun run;
  std::vector<char> buf(1 << 16);
  auto sampled = Clock::now() - 1s;
  for (;;) {
    const ssize_t n = ::read(fds[0], buf.data(), buf.size());
    if (n > 0) run.out.add(buf.data(), static_cast<size_t>(n));
    else if (n == 0 || errno != EINTR) break;
    if (Clock::now() - sampled >= 10ms) {
      sampled = Clock::now();
      run.peak_rss_mib = std::max(run.peak_rss_mib, status_mib(pid, "VmHWM"));
    }
  }
  ::close(fds[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  run.seconds = since(t0);
  run.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return run;
}

}  // namespace

int run_export(const BenchEnv& env, const BenchSettings& s) {
  auto dir = run_dir(env);
  if (!dir->ok()) return fail("cannot create a temp dir");
  zmq::context_t ctx(1);
  auto l = licensed_stack(ctx, env, *dir, s, s.computers);
  if (!l.stack) return fail(l.error);
  const std::string data = l.stack->data_dir();
  const std::string password = "primary-bench export";
  if (!run_capture({"/bin/sh", "-c", "printf '%s\\n' \"$0\" | \"$1\" web-password --data-dir \"$2\" >/dev/null",
                    password, env.bin("primaryctl"), data},
                   dir->file("web-password.log"), 30s))
    return fail("primaryctl web-password failed: " + log_tail(dir->file("web-password.log")));

  // The fleet: every computer reserved, one in ten seen once (a state, a
  // version, a peer and times in its row).
  Fleet fleet;
  int64_t created = 0;
  auto t0 = Clock::now();
  const LoadShape fill{16, 16, s.threads};
  auto r = fleet.reserve(ctx, l.stack->front(), 0, s.computers, fill, &created);
  say("reserved {} computers in {:.1f} s: {}", created, since(t0), describe(r));
  if (!clean(r) || created != s.computers) return fail("reservations failed");
  t0 = Clock::now();
  const int64_t seen = s.computers / 10;
  auto hb = fleet.heartbeat_each(ctx, l.stack->front(), 0, seen, fill);
  say("first heartbeat of {} of them in {:.1f} s: {}", seen, since(t0), describe(hb));
  if (!clean(hb)) return fail("heartbeats failed");

  // The console, started by primary-server at the first connection.
  std::string base;
  const auto web_deadline = Clock::now() + 30s;
  while ((base = read_text_file(data + "/run/web.address")).empty() && Clock::now() < web_deadline)
    std::this_thread::sleep_for(100ms);
  while (!base.empty() && std::isspace(static_cast<unsigned char>(base.back()))) base.pop_back();
  if (base.empty()) return fail("the console wrote no run/web.address");
  curl_global_init(CURL_GLOBAL_ALL);
  std::unique_ptr<CURL, void (*)(CURL*)> curl(curl_easy_init(), curl_easy_cleanup);
  curl_easy_setopt(curl.get(), CURLOPT_COOKIEFILE, "");  // keep the session cookie
  curl_easy_setopt(curl.get(), CURLOPT_TIMEOUT, 3600L);
  std::string page;
  if (http(curl.get(), base + "/login", nullptr, keep_body, &page) != 200) return fail("GET /login failed");
  static const std::regex csrf_re(R"re(name="csrf" value="([^"]+)")re");
  std::smatch m;
  if (!std::regex_search(page, m, csrf_re)) return fail("no CSRF token on /login");
  const std::string form = "csrf=" + m[1].str() + "&password=" + std::regex_replace(password, std::regex(" "), "+");
  page.clear();
  if (const long st = http(curl.get(), base + "/login", &form, keep_body, &page); st != 303)
    return fail("POST /login answered " + std::to_string(st));
  pid_t web = 0;
  for (const auto& p : sample_tree(l.stack->pid()))
    if (p.name == "primary-web") web = p.pid;
  if (!web) return fail("no primary-web process under primary-server");

  // VmHWM may already hold a peak of the console's start; VmRSS sampled
  // every 20 ms during the export shows the export's own.
  const double hwm0 = status_mib(web, "VmHWM"), rss0 = status_mib(web, "VmRSS");
  std::atomic<bool> exporting{true};
  double rss_peak = rss0;
  std::thread sampler([&] {
    while (exporting) {
      rss_peak = std::max(rss_peak, status_mib(web, "VmRSS"));
      std::this_thread::sleep_for(20ms);
    }
  });
  Counted csv;
  t0 = Clock::now();
  const long st = http(curl.get(), base + "/computers.csv", nullptr, count_body, &csv);
  const double csv_s = since(t0);
  exporting = false;
  sampler.join();
  const double hwm1 = status_mib(web, "VmHWM"), rss1 = status_mib(web, "VmRSS");
  say("console GET /computers.csv: HTTP {}, {} rows (with the header), {} bytes in {:.2f} s, {:.0f} rows/s", st,
      csv.rows, csv.bytes, csv_s, csv.rows / std::max(csv_s, 1e-9));
  say("console (pid {}) VmHWM {:.1f} MiB, VmRSS {:.1f} MiB before; VmHWM {:.1f} MiB, VmRSS {:.1f} MiB after; "
      "VmRSS at most {:.1f} MiB during the export", web, hwm0, rss0, hwm1, rss1, rss_peak);
  if (st != 200) return fail("the export answered HTTP " + std::to_string(st));

  auto ctl = run_counted({env.bin("primaryctl"), "--server", l.stack->front(), "computers", "--csv"},
                         dir->file("primaryctl.log"));
  if (!ctl) return fail("cannot run primaryctl");
  say("primaryctl computers --csv: exit {}, {} rows, {} bytes in {:.2f} s, {:.0f} rows/s, VmHWM {:.1f} MiB",
      ctl->status, ctl->out.rows, ctl->out.bytes, ctl->seconds, ctl->out.rows / std::max(ctl->seconds, 1e-9),
      ctl->peak_rss_mib);
  if (ctl->status != 0) return fail("primaryctl failed: " + log_tail(dir->file("primaryctl.log")));
  say("console_rows={} console_bytes={} console_s={:.2f} console_rows_per_s={:.0f} console_hwm_before_mib={:.1f} "
      "console_rss_before_mib={:.1f} console_hwm_after_mib={:.1f} console_rss_after_mib={:.1f} "
      "console_rss_peak_mib={:.1f} ctl_rows={} ctl_bytes={} ctl_s={:.2f} ctl_rows_per_s={:.0f} ctl_peak_rss_mib={:.1f}",
      csv.rows, csv.bytes, csv_s, csv.rows / std::max(csv_s, 1e-9), hwm0, rss0, hwm1, rss1, rss_peak, ctl->out.rows,
      ctl->out.bytes, ctl->seconds, ctl->out.rows / std::max(ctl->seconds, 1e-9), ctl->peak_rss_mib);
  const auto code = l.stack->stop();
  return code == 0 && csv.rows == s.computers + 1 && ctl->out.rows == s.computers + 1 ? 0 : 1;
}

}  // namespace primary::bench
